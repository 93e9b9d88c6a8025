package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Real failures, produced by a real fasthttp client, are named by their
// kind; the message never carries the address.
func TestShortNetErrorNamesRealFailures(t *testing.T) {
	// Nothing listens on port 1, and no test can take it: a closed
	// listener's port, used before, was refused only until another test
	// run in parallel was given it.
	const refusedAddr = "127.0.0.1:1"
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer plain.Close()
	untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are the point
	untrusted.StartTLS()
	defer untrusted.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	for _, tc := range []struct {
		name, url string
		tls       bool
		want      string
	}{
		{"refused", "http://" + refusedAddr + "/", false, "connection refused"},
		{"unknown host", "http://berth-test.invalid/", false, "host not found"},
		{"TLS to a plain server", "https://" + strings.TrimPrefix(plain.URL, "http://") + "/", true, "TLS handshake failed"},
		{"untrusted certificate", untrusted.URL + "/", true, "server certificate not trusted"},
		{"no answer", "http://" + silent.Addr().String() + "/", false, "timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &fasthttp.Client{TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}}
			err := c.DoTimeout(requestTo(tc.url), &fasthttp.Response{}, 300*time.Millisecond)
			if err == nil {
				t.Fatal("no error")
			}
			got := shortNetError(err)
			if got != tc.want {
				t.Errorf("shortNetError(%v) = %q, want %q", err, got, tc.want)
			}
			if strings.Contains(got, "127.0.0.1") {
				t.Errorf("the address leaked: %q", got)
			}
		})
	}
}

func requestTo(url string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(url)
	return req
}
