package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rawRequest writes head (and body) on a new connection to the gateway's
// HTTP listener and reads the first response, waiting at most a minute.
func rawRequest(t *testing.T, base, head, body string) (*http.Response, string) {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "%s\r\nHost: %s\r\n\r\n%s", strings.ReplaceAll(strings.TrimSpace(head), "\n", "\r\n"), u.Host, body)
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to %q: %v", head, err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(data)
}

// A client that announces a body over the limit and waits for 100 Continue
// is refused with 413 at once, before it sends a byte of it, on the API
// and on the proxy; one under the limit is asked for its body.
func TestExpectContinueOverLimitRefusedFirst(t *testing.T) {
	ag := startAuth(t, map[string]string{"BERTH_LIMITS_MAX_BODY_BYTES": "4096"})
	for _, path := range []string{"/api/v1/auth/login", "/proxy/clusters/any/api/v1/namespaces/default/configmaps"} {
		resp, _ := rawRequest(t, ag.http, fmt.Sprintf("POST %s HTTP/1.1\nContent-Type: application/json\nExpect: 100-continue\nContent-Length: 5000000", path), "")
		if resp.StatusCode != 413 {
			t.Errorf("%s: %d, want 413 before the body", path, resp.StatusCode)
		}
		resp, _ = rawRequest(t, ag.http, fmt.Sprintf("POST %s HTTP/1.1\nContent-Type: application/json\nExpect: 100-continue\nContent-Length: 2", path), "")
		if resp.StatusCode != 100 {
			t.Errorf("%s under the limit: %d, want 100 Continue", path, resp.StatusCode)
		}
	}
}

// A body that stops coming is cut after limits.body_read_window with 408,
// though the read timeout is ten minutes: declared or chunked, on the API
// and on the proxy.
func TestStalledBodyCutAfterOneWindow(t *testing.T) {
	ag := startAuth(t, map[string]string{"BERTH_LIMITS_READ_TIMEOUT": "10m", "BERTH_LIMITS_BODY_READ_WINDOW": "1s"})
	admin := ag.login(t, "admin", adminPassword).AccessToken
	ag.secret(admin)
	for _, tt := range []struct{ name, head, body string }{
		{"api declared", "POST /api/v1/auth/login HTTP/1.1\nContent-Type: application/json\nContent-Length: 100", `{"user`},
		{"api chunked", "POST /api/v1/auth/login HTTP/1.1\nContent-Type: application/json\nTransfer-Encoding: chunked", "10\r\n{\"user"},
		{"proxy declared", "POST /proxy/clusters/any/api/v1/namespaces/default/configmaps HTTP/1.1\nAuthorization: Bearer " + admin + "\nContent-Length: 100", `{"kind`},
	} {
		resp, body := rawRequest(t, ag.http, tt.head, tt.body)
		if resp.StatusCode != 408 {
			t.Errorf("%s: %d %s, want 408", tt.name, resp.StatusCode, body)
		}
	}
}
