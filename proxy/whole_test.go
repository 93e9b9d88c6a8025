package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

// TestSmallBodyReadWhole: a response body of known length up to smallBody
// is read whole before the client is answered. The client gets exactly
// the cluster's body, the upstream connection is reused, and a body that
// ends early is a 502 rather than a truncated answer, its connection
// discarded; a larger body still streams.
func TestSmallBodyReadWhole(t *testing.T) {
	small := strings.Repeat("s", 100)
	edge := strings.Repeat("e", smallBody)
	large := strings.Repeat("l", smallBody+1)
	var conns atomic.Int32
	mux := http.NewServeMux()
	serve := func(path, body string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		})
	}
	serve("/api/v1/namespaces/default/configmaps/small", small)
	serve("/api/v1/namespaces/default/configmaps/edge", edge)
	serve("/api/v1/namespaces/default/configmaps/large", large)
	serve("/api/v1/namespaces/default/configmaps/empty", "")
	mux.HandleFunc("/api/v1/namespaces/default/configmaps/short", partialBody(nil))
	b := &backend{Server: httptest.NewUnstartedServer(mux)}
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	b.EnableHTTP2 = false
	b.StartTLS()
	t.Cleanup(b.Close)
	rec := newCountingObserver()
	f := newFront(t, b, Options{Observer: rec})

	get := func(name string) (int, string) {
		t.Helper()
		resp, err := http.Get(f.url + "/proxy/clusters/dev/api/v1/namespaces/default/configmaps/" + name)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: reading the body: %v", name, err)
		}
		if resp.Header.Get("Content-Type") != "application/json" && resp.StatusCode == 200 {
			t.Errorf("%s: Content-Type %q", name, resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct{ name, want string }{
		{"small", small}, {"edge", edge}, {"large", large}, {"empty", ""}, {"small", small}, {"edge", edge},
	} {
		if code, body := get(tc.name); code != 200 || body != tc.want {
			t.Errorf("%s: %d, %d bytes; want 200 and the cluster's %d bytes", tc.name, code, len(body), len(tc.want))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the cluster saw %d connections for six sequential requests, want 1 (reused)", n)
	}
	var before int32
	code, body := get("short")
	if code != http.StatusBadGateway || strings.Contains(body, "partial") || !strings.Contains(body, "ended its response early") {
		t.Errorf("a body ending early: %d %q, want 502 saying so and nothing of the partial body", code, body)
	}
	// The cut connection is gone; the next one is dialled and then kept.
	for i := range 3 {
		if code, body := get("small"); code != 200 || body != small {
			t.Errorf("after a body ended early: %d, %d bytes", code, len(body))
		}
		if i == 0 {
			before = conns.Load()
		}
	}
	if n := conns.Load(); n != before || n != 2 {
		t.Errorf("%d connections after the cut one (%d before the last two requests), want 2 and reuse", n, before)
	}
	// The metrics count what the client got: the cut body as the 502.
	if got, want := rec.all(), []int{200, 200, 200, 200, 200, 200, 502, 200, 200, 200}; !slices.Equal(got, want) {
		t.Errorf("observed codes %v, want %v", got, want)
	}
}

func TestReadWhole(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    io.Reader
		n       int
		want    string
		wantErr error
	}{
		{"exact", strings.NewReader("hello"), 5, "hello", nil},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader("hello")), 5, "hello", nil},
		{"data with EOF", iotest.DataErrReader(strings.NewReader("hello")), 5, "hello", nil},
		{"empty", strings.NewReader(""), 0, "", nil},
		{"short", strings.NewReader("hel"), 5, "", io.ErrUnexpectedEOF},
		{"long", strings.NewReader("hello!"), 5, "", errLongerBody},
		{"failing", iotest.ErrReader(io.ErrClosedPipe), 5, "", io.ErrClosedPipe},
		{"no progress", zeroReader{}, 5, "", io.ErrNoProgress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readWhole(tc.body, make([]byte, 0, tc.n+1), tc.n)
			if !errors.Is(err, tc.wantErr) || !bytes.Equal(got, []byte(tc.want)) {
				t.Errorf("readWhole: %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// zeroReader reads nothing, forever, without an error.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// TestSmallBodyStalls: a cluster that sends the headers and part of a
// small body, then nothing, is cut at the request timeout: 504, as for
// any round trip that takes too long, and nothing of the partial body.
func TestSmallBodyStalls(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/namespaces/default/configmaps/stall", partialBody(release))
	b := &backend{Server: httptest.NewUnstartedServer(mux)}
	b.EnableHTTP2 = false
	b.StartTLS()
	t.Cleanup(b.Close)
	t.Cleanup(func() { close(release) })
	rec := newCountingObserver()
	f := newFront(t, b, Options{RequestTimeout: 200 * time.Millisecond, Observer: rec})
	resp, err := http.Get(f.url + "/proxy/clusters/dev/api/v1/namespaces/default/configmaps/stall")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusGatewayTimeout || strings.Contains(string(body), "partial") || !strings.Contains(string(body), "did not answer in time") {
		t.Errorf("a stalled small body: %d %q, want 504 saying so", resp.StatusCode, body)
	}
	if got := rec.all(); !slices.Equal(got, []int{504}) {
		t.Errorf("observed codes %v, want [504]", got)
	}
}

// partialBody answers with a Content-Length of 100 and only the first
// bytes of such a body, then closes the connection — after release is
// closed, when it is not nil (a cluster that stalls mid-body).
func partialBody(release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(rw, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"partial\":")
		rw.Flush()
		if release != nil {
			<-release
		}
	}
}
