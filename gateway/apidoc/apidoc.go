// Package apidoc holds the OpenAPI 3.1 description of Berth's management
// API (openapi.yaml, written by hand) and serves it as JSON at
// GET /api/v1/openapi.json.
//
// The document is kept true by tests, not by generation: the gateway's
// route test compares it with the router both ways, and every request a
// handler test makes through gateway/internal/apitest is validated
// against it, with its answer.
package apidoc

import (
	"bytes"
	"crypto/sha256"
	_ "embed" // the document
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"
	"gopkg.in/yaml.v3"

	"github.com/berthgw/berth/gateway/fault"
)

//go:embed openapi.yaml
var source []byte

// YAML is the document as written.
func YAML() []byte { return source }

// The JSON form is made on first use, not at start: most gateways never
// serve it, and the YAML parse costs a few milliseconds.
var converted struct {
	once sync.Once
	json []byte
	etag string
	err  error
}

// JSON returns the document as JSON and its strong ETag (a digest of the
// JSON), converting it on first use.
func JSON() (doc []byte, etag string, err error) {
	c := &converted
	c.once.Do(func() {
		c.json, c.err = toJSON(source)
		if c.err == nil {
			sum := sha256.Sum256(c.json)
			c.etag = `"` + hex.EncodeToString(sum[:16]) + `"`
		}
	})
	return c.json, c.etag, c.err
}

// toJSON converts a YAML document whose mapping keys are all strings.
func toJSON(src []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	v, err := stringKeys(v, "")
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return b.Bytes(), nil
}

// stringKeys makes every mapping of v a map[string]any, refusing keys
// that are not strings: an unquoted 200 as a response key would be an
// integer in YAML, and JSON has only string keys.
func stringKeys(v any, at string) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			e, err := stringKeys(e, at+"/"+k)
			if err != nil {
				return nil, err
			}
			x[k] = e
		}
		return x, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			s, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: key %v is not a string (quote it)", at, k)
			}
			e, err := stringKeys(e, at+"/"+s)
			if err != nil {
				return nil, err
			}
			out[s] = e
		}
		return out, nil
	case []any:
		for i, e := range x {
			e, err := stringKeys(e, fmt.Sprintf("%s/%d", at, i))
			if err != nil {
				return nil, err
			}
			x[i] = e
		}
		return x, nil
	}
	return v, nil
}

// Handle serves GET /api/v1/openapi.json: public (the document holds no
// secret and no configuration), revalidated by ETag on every use so an
// upgrade shows at once.
func Handle(ctx *fasthttp.RequestCtx) error {
	doc, etag, err := JSON()
	if err != nil {
		return fault.Wrap(fault.Internal, err, "the API document is unreadable")
	}
	h := &ctx.Response.Header
	h.Set(fasthttp.HeaderETag, etag)
	h.Set(fasthttp.HeaderCacheControl, "public, no-cache")
	if matches(string(ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch)), etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return nil
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(doc)
	return nil
}

// matches reports whether an If-None-Match value names etag (weak
// comparison, RFC 9110 section 13.1.2).
func matches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
