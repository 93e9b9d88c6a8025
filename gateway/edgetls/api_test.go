package edgetls

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
)

// Without a manager (no TLS listener) the certificate list is empty, and
// paging parameters are not checked.
func TestHandleCertificatesWithoutManager(t *testing.T) {
	for _, uri := range []string{"/api/v1/tls/certificates", "/api/v1/tls/certificates?page_size=0"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(uri)
		httpapi.Serve(nil, (*Manager)(nil).HandleCertificates)(&ctx)
		if ctx.Response.StatusCode() != 200 || string(ctx.Response.Body()) != `{"items":[],"total":0,"page":1,"page_size":20}`+"\n" {
			t.Errorf("%s: %d %s", uri, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// A manager's list is paged, and a bad page is refused with 400.
func TestHandleCertificatesPaging(t *testing.T) {
	db, box := testDB(t)
	m, err := New(Options{DB: db, Box: box, Mode: ModeSelfSigned})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	tests := []struct {
		uri    string
		status int
		body   string
	}{
		{"/api/v1/tls/certificates?page_size=0", 400, "page_size must be a whole number from 1 to 500"},
		{"/api/v1/tls/certificates?page=x", 400, "page must be a whole number"},
		{"/api/v1/tls/certificates", 200, `"page_size":20`},
	}
	for _, tt := range tests {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(tt.uri)
		httpapi.Serve(nil, m.HandleCertificates)(&ctx)
		if ctx.Response.StatusCode() != tt.status || !strings.Contains(string(ctx.Response.Body()), tt.body) {
			t.Errorf("%s: %d %s, want %d with %s", tt.uri, ctx.Response.StatusCode(), ctx.Response.Body(), tt.status, tt.body)
		}
	}
}
