package proxy

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// A pooled connection the cluster has dropped (it restarted) fails the
// next request before any response byte: a GET is sent again once, on a
// fresh connection, and succeeds. A request the cluster received and then
// dropped without answering is retried once if it is a GET, and never if
// it is a POST or PATCH, which may have changed something.
func TestRetryOnDeadPooledConnection(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{RequestTimeout: 10 * time.Second})
	var mu sync.Mutex
	seen := map[string]int{}
	b.Server.Config.Handler.(*http.ServeMux).HandleFunc("/api/v1/namespaces/default/configmaps/drop", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method]++
		mu.Unlock()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // received, never answered
		}
	})
	get := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, f.url+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	echo := "/proxy/clusters/dev/api/v1/namespaces/default/pods/echo"
	for i := range 3 {
		if code, body := get("GET", echo); code != 200 {
			t.Fatalf("warm-up %d: %d %s", i, code, body)
		}
		// Every pooled connection dies, as when the API server restarts.
		b.CloseClientConnections()
		if code, body := get("GET", echo); code != 200 {
			t.Fatalf("first GET after the cluster dropped its connections (%d): %d %s", i, code, body)
		}
	}

	drop := "/proxy/clusters/dev/api/v1/namespaces/default/configmaps/drop"
	for _, m := range []string{"GET", "POST", "PATCH"} {
		code, body := get(m, drop)
		if code != 503 || !strings.Contains(body, "ServiceUnavailable") {
			t.Errorf("%s never answered: %d %s", m, code, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["GET"] != 2 || seen["POST"] != 1 || seen["PATCH"] != 1 {
		t.Errorf("requests that reached the cluster: %v, want GET twice (one retry), POST and PATCH once", seen)
	}
}

// A watch ended because its caller lost access ends with a JSON ERROR
// event carrying a Status, then a clean end of the stream, so client-go
// reports why instead of seeing a normal end.
func TestWithdrawnWatchEndsWithErrorEvent(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(f.url + "/proxy/clusters/dev/api/v1/pods?watch=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	b.watchEvents <- "first"
	if line, err := r.ReadString('\n'); err != nil || !strings.Contains(line, "first") {
		t.Fatalf("watch: %q %v", line, err)
	}
	f.revoked.Store(true)
	if n := f.proxy.Pool().Recheck(); n != 1 {
		t.Fatalf("Recheck ended %d streams, want 1", n)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("the stream did not end cleanly: %v (read %q)", err, rest)
	}
	var ev struct {
		Type   string
		Object struct {
			Kind, Status, Reason, Message string
			Code                          int
		}
	}
	if err := json.Unmarshal(rest, &ev); err != nil || !strings.HasSuffix(string(rest), "}\n") {
		t.Fatalf("last event: %q %v", rest, err)
	}
	if ev.Type != "ERROR" || ev.Object.Kind != "Status" || ev.Object.Status != "Failure" || ev.Object.Code != 403 ||
		ev.Object.Reason != "Forbidden" || !strings.Contains(ev.Object.Message, "withdrawn") {
		t.Errorf("last event: %+v", ev)
	}
}

// errReader is an upstream stream that gives data, then err.
type errReader struct {
	data string
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// However the cut upstream read ends (an error, or io.EOF when the cut
// races the read), a withdrawn watch ends with the event; never in the
// middle of an event, and never when the stream was not withdrawn.
func TestWithdrawnStreamEnding(t *testing.T) {
	ev := string(errorEvent(403, "gone"))
	tests := []struct {
		name, data string
		err        error
		withdrawn  bool
		want       string
		wantErr    error
	}{
		{"cut with an error", `{"type":"ADDED"}` + "\n", errClientGone, true, `{"type":"ADDED"}` + "\n" + ev, nil},
		{"cut reported as EOF", `{"type":"ADDED"}` + "\n", io.EOF, true, `{"type":"ADDED"}` + "\n" + ev, nil},
		{"cut mid-event", `{"type":"ADD`, errClientGone, true, `{"type":"ADD`, errClientGone},
		{"client gone", `{"type":"ADDED"}` + "\n", errClientGone, false, `{"type":"ADDED"}` + "\n", errClientGone},
		{"normal end", `{"type":"ADDED"}` + "\n", io.EOF, false, `{"type":"ADDED"}` + "\n", nil},
	}
	for _, tt := range tests {
		b := &responseBody{stream: &errReader{data: tt.data, err: tt.err}, withdrawal: func() []byte { return []byte(ev) }}
		b.withdrawn.Store(tt.withdrawn)
		var got strings.Builder
		buf := make([]byte, 7) // small reads: events span several
		var err error
		for range 1000 {
			var n int
			n, err = b.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if err == io.EOF {
			err = nil
		}
		if got.String() != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: %q %v, want %q %v", tt.name, got.String(), err, tt.want, tt.wantErr)
		}
	}
}

// A TLS failure is answered like any other unreachable cluster, 503
// ServiceUnavailable, its message naming the kind of failure and no
// address.
func TestUntrustedClusterCertificate(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{})
	// The system roots do not sign the test server's certificate.
	if err := f.proxy.Pool().Set(Cluster{Name: "untrusted", Server: b.URL}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(f.url + "/proxy/clusters/untrusted/api/v1/pods")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	code, reason, msg := statusOf(t, resp)
	if resp.StatusCode != 503 || code != 503 || reason != "ServiceUnavailable" || !strings.Contains(msg, "server certificate not trusted") || strings.Contains(msg, "127.0.0.1") {
		t.Errorf("untrusted certificate: %d %d %s %q", resp.StatusCode, code, reason, msg)
	}
}
