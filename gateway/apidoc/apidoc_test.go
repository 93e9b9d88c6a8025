package apidoc

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/valyala/fasthttp"
	"gopkg.in/yaml.v3"
)

// The JSON served is the YAML written, value for value.
func TestJSONIsTheYAML(t *testing.T) {
	doc, etag, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON, fromYAML any
	if err := json.Unmarshal(doc, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(YAML(), &fromYAML); err != nil {
		t.Fatal(err)
	}
	// Round-trip the YAML through JSON so numbers compare as float64.
	again, _ := json.Marshal(fromYAML)
	fromYAML = nil
	if err := json.Unmarshal(again, &fromYAML); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, fromYAML) {
		t.Error("the JSON differs from the YAML")
	}
	if len(etag) != 34 || etag[0] != '"' {
		t.Errorf("etag %s", etag)
	}
	if v := fromJSON.(map[string]any)["openapi"]; v != "3.1.0" {
		t.Errorf("openapi %v", v)
	}
}

func TestNonStringKeysRefused(t *testing.T) {
	if _, err := toJSON([]byte("paths:\n  /x:\n    get:\n      responses:\n        200: {description: ok}\n")); err == nil {
		t.Error("an integer key was accepted")
	}
}

func TestHandleETag(t *testing.T) {
	_, etag, _ := JSON()
	for _, tc := range []struct {
		ifNoneMatch string
		status      int
	}{
		{"", 200},
		{etag, 304},
		{"W/" + etag, 304},
		{`"other", ` + etag, 304},
		{"*", 304},
		{`"other"`, 200},
	} {
		var ctx fasthttp.RequestCtx
		if tc.ifNoneMatch != "" {
			ctx.Request.Header.Set("If-None-Match", tc.ifNoneMatch)
		}
		if err := Handle(&ctx); err != nil {
			t.Fatal(err)
		}
		r := &ctx.Response
		if r.StatusCode() != tc.status || string(r.Header.Peek("ETag")) != etag {
			t.Errorf("If-None-Match %q: %d etag %q", tc.ifNoneMatch, r.StatusCode(), r.Header.Peek("ETag"))
		}
		if tc.status == 304 && len(r.Body()) != 0 || tc.status == 200 && !json.Valid(r.Body()) {
			t.Errorf("If-None-Match %q: body %.40q", tc.ifNoneMatch, r.Body())
		}
	}
}

// BenchmarkConvert is the one-time cost of the first GET
// /api/v1/openapi.json (the YAML parsed and encoded as JSON).
func BenchmarkConvert(b *testing.B) {
	for b.Loop() {
		if _, err := toJSON(YAML()); err != nil {
			b.Fatal(err)
		}
	}
}
