package apitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/berthgw/berth/gateway/apidoc"
	"github.com/berthgw/berth/gateway/identity"
)

func init() {
	// Answers that are files, not data: checked as text.
	for _, ct := range []string{"text/x-shellscript", "application/x-pem-file", "application/openmetrics-text"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
}

// The document is loaded once per test binary, with kin-openapi, which
// validates OpenAPI 3.1 documents and checks 3.1 schemas as JSON Schema
// 2020-12.
var spec struct {
	once   sync.Once
	doc    *openapi3.T
	routes []docRoute
	err    error
}

// docRoute is one operation of the document.
type docRoute struct {
	method, path string
	segments     []string
	literals     int
	item         *openapi3.PathItem
	op           *openapi3.Operation
}

// OpenAPI returns the API document (gateway/apidoc), loaded and validated,
// failing the test if it does not load.
func OpenAPI(t testing.TB) *openapi3.T {
	t.Helper()
	loadSpec()
	if spec.err != nil {
		t.Fatalf("the OpenAPI document: %v", spec.err)
	}
	return spec.doc
}

func loadSpec() {
	spec.once.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(apidoc.YAML())
		if err != nil {
			spec.err = err
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			spec.err = err
			return
		}
		spec.doc = doc
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				r := docRoute{method: method, path: path, segments: strings.Split(path, "/"), item: item, op: op}
				for _, s := range r.segments {
					if !strings.HasPrefix(s, "{") {
						r.literals++
					}
				}
				spec.routes = append(spec.routes, r)
			}
		}
		// The most literal template wins, as in the router.
		sort.Slice(spec.routes, func(i, j int) bool { return spec.routes[i].literals > spec.routes[j].literals })
	})
}

// match finds the operation of method and path, with the path's
// parameters.
func match(method, path string) (*docRoute, map[string]string) {
	segs := strings.Split(path, "/")
	for i := range spec.routes {
		r := &spec.routes[i]
		if r.method != method || len(r.segments) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for k, s := range r.segments {
			switch {
			case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && segs[k] != "":
				params[s[1:len(s)-1]] = segs[k]
			case s != segs[k]:
				ok = false
			}
			if !ok {
				break
			}
		}
		if ok {
			return r, params
		}
	}
	return nil, nil
}

// CheckExchange validates one request the test made and the answer it got
// against the API document, failing the test on a mismatch. A request the
// document describes as valid must be answered as the document says; a
// request it describes as invalid (a missing field, a wrong type, no
// credential where one is needed) must be refused with a 4xx in the
// error body. Paths the document does not describe (the Kubernetes proxy,
// a test's own routes) are not checked; the route test checks that the
// document covers the router.
func CheckExchange(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	loadSpec()
	if spec.err != nil {
		t.Fatalf("the OpenAPI document: %v", spec.err)
	}
	r, params := match(req.Method, req.URL.Path)
	if r == nil {
		return
	}
	copied := req.Clone(context.Background())
	copied.Body = io.NopCloser(bytes.NewReader(reqBody))
	copied.ContentLength = int64(len(reqBody))
	opts := &openapi3filter.Options{
		AuthenticationFunc:                authenticated,
		RejectWhenRequestBodyNotSpecified: true,
		IncludeResponseStatus:             true,
	}
	in := &openapi3filter.RequestValidationInput{
		Request: copied, PathParams: params, Options: opts,
		Route: &routers.Route{Spec: spec.doc, Server: spec.doc.Servers[0], Path: r.path, PathItem: r.item, Method: r.method, Operation: r.op},
	}
	where := fmt.Sprintf("%s %s (document: %s %s) answered %d", req.Method, req.URL.RequestURI(), r.method, r.path, status)
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if reqErr != nil && (status < 400 || status > 499) {
		t.Errorf("OpenAPI: %s, but the document says the request is invalid: %v", where, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("OpenAPI: %s: the answer does not match the document: %v\nbody: %.600s", where, err, body)
		return
	}
	// ValidateResponse accepts any body where the document names none.
	if resp := r.op.Responses.Status(status); resp != nil && len(resp.Value.Content) == 0 && len(body) > 0 {
		t.Errorf("OpenAPI: %s with a body the document does not describe: %.200s", where, body)
	}
}

// errNoCredential is what authenticated reports for a scheme the request
// does not use.
var errNoCredential = errors.New("no credential of this scheme")

// authenticated tells whether the request carries a credential of the
// scheme; whether the credential is good is the server's business (a bad
// one is a documented 401).
func authenticated(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	auth := req.Header.Get("Authorization")
	bearer := len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ")
	s := in.SecurityScheme
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer") && in.SecuritySchemeName == "apiKey":
		if bearer && strings.HasPrefix(strings.TrimSpace(auth[7:]), identity.APIKeyPrefix) {
			return nil
		}
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"), s.Type == "oauth2":
		if bearer && !strings.HasPrefix(strings.TrimSpace(auth[7:]), identity.APIKeyPrefix) {
			return nil
		}
	case s.Type == "apiKey" && s.In == "cookie":
		if _, err := req.Cookie(s.Name); err == nil {
			return nil
		}
	case s.Type == "mutualTLS":
		if req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
			return nil
		}
	}
	return errNoCredential
}
