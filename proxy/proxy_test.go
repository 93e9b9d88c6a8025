package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// backend is a real HTTPS server standing in for a cluster's API server in
// these unit tests (the end-to-end suite uses a real kube-apiserver). It
// records what reached it, so the tests can check what the proxy sent.
type backend struct {
	*httptest.Server
	mu          sync.Mutex
	lastHeader  http.Header
	lastURI     string
	watchEvents chan string
	watchGone   chan struct{}
	listGate    chan struct{}
	// slowArrived gets a value (when there is room) as a list of the
	// namespace "slow" reaches the backend.
	slowArrived chan struct{}
	pods        int
	// bodyStarted gets a value when an upload's first bytes arrive.
	bodyStarted chan struct{}
	uploads     atomic.Int32
}

func newBackend(t *testing.T) *backend {
	b := &backend{watchEvents: make(chan string), watchGone: make(chan struct{}, 100), pods: 1200, listGate: make(chan struct{}),
		slowArrived: make(chan struct{}, 16), bodyStarted: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/namespaces/default/configmaps", func(w http.ResponseWriter, r *http.Request) {
		b.uploads.Add(1)
		first := make([]byte, 1)
		n, _ := io.ReadFull(r.Body, first)
		b.bodyStarted <- struct{}{}
		rest, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, `{"received":%d}`, int64(n)+rest)
	})
	mux.HandleFunc("/api/v1/namespaces/default/pods/echo", func(w http.ResponseWriter, r *http.Request) {
		b.record(r)
		http.SetCookie(w, &http.Cookie{Name: "evil", Value: "1"})
		w.Header().Set("Content-Type", "application/json")
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, `{"kind":"Pod","method":%q,"body":%q}`, r.Method, body)
	})
	mux.HandleFunc("/api/v1/pods", func(w http.ResponseWriter, r *http.Request) {
		b.record(r)
		if r.URL.Query().Get("watch") == "1" {
			b.serveWatch(w, r)
			return
		}
		b.serveList(w, r)
	})
	mux.HandleFunc("/api/v1/namespaces/slow/pods", func(w http.ResponseWriter, r *http.Request) {
		select {
		case b.slowArrived <- struct{}{}:
		default:
		}
		<-b.listGate
		b.serveList(w, r)
	})
	mux.HandleFunc("/api/v1/namespaces/default/pods/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/api/v1/namespaces/default/pods/denied/exec", func(w http.ResponseWriter, r *http.Request) {
		b.record(r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`)
	})
	mux.HandleFunc("/api/v1/namespaces/default/pods/moved/exec", func(w http.ResponseWriter, r *http.Request) {
		b.record(r)
		http.Redirect(w, r, "/api/v1/namespaces/default/pods/echo/exec", http.StatusFound)
	})
	mux.HandleFunc("/api/v1/namespaces/default/pods/echo/exec", func(w http.ResponseWriter, r *http.Request) {
		b.record(r)
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
		rw.Flush()
		// Echo until the client half-closes, then say goodbye and close:
		// this checks that half-close crosses the proxy.
		data, _ := io.ReadAll(rw)
		rw.Write([]byte(strings.ToUpper(string(data)) + "|bye"))
		rw.Flush()
	})
	b.Server = httptest.NewUnstartedServer(mux)
	b.Server.EnableHTTP2 = false
	b.StartTLS()
	t.Cleanup(b.Close)
	return b
}

func (b *backend) record(r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastHeader = r.Header.Clone()
	b.lastURI = r.RequestURI
}

func (b *backend) last() (http.Header, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastHeader, b.lastURI
}

func (b *backend) serveWatch(w http.ResponseWriter, r *http.Request) {
	defer func() { b.watchGone <- struct{}{} }()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	w.(http.Flusher).Flush()
	for {
		select {
		case ev, ok := <-b.watchEvents:
			if !ok {
				return
			}
			fmt.Fprintf(w, `{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":%q}}}`+"\n", ev)
			w.(http.Flusher).Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// serveList answers with b.pods pods, honouring limit and continue (the
// continue token is simply the next index).
func (b *backend) serveList(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	from, _ := strconv.Atoi(r.URL.Query().Get("continue"))
	to := b.pods
	if limit > 0 && from+limit < to {
		to = from + limit
	}
	var items []string
	for i := from; i < to; i++ {
		items = append(items, fmt.Sprintf(`{"metadata":{"name":"pod-%04d","namespace":"ns-%d","labels":{"app":"a%d"}},"spec":{"replicas":%d}}`, i, i%3, i%5, i%7))
	}
	next := ""
	if to < b.pods {
		next = strconv.Itoa(to)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"42","continue":%q},"items":[%s]}`, next, strings.Join(items, ","))
}

type front struct {
	url    string
	proxy  *Proxy
	server *fasthttp.Server
	// revoked is what the identity's StillAllowed reads, inverted.
	revoked atomic.Bool
}

// newFront serves the proxy the way the gateway does: route on the raw
// URI, act for a fixed identity, which stays allowed until f.revoked is
// set.
func newFront(t *testing.T, b *backend, opts Options) *front {
	t.Helper()
	pool := NewPool(PoolOptions{DialTimeout: 2 * time.Second})
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Certificate().Raw})
	if err := pool.Set(Cluster{Name: "dev", Server: b.URL, CAData: caPEM, Token: "cluster-token"}); err != nil {
		t.Fatal(err)
	}
	if err := pool.Set(Cluster{Name: "down", Server: "https://127.0.0.1:1", CAData: caPEM}); err != nil {
		t.Fatal(err)
	}
	opts.Pool = pool
	p := New(opts)
	f := &front{proxy: p}
	id := Identity{User: "berth:alice", Groups: []string{"dev", "berth:members"}, Extra: map[string][]string{"berth.dev/client-ip": {"127.0.0.1"}},
		StillAllowed: func() bool { return !f.revoked.Load() }}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			target, err := ParseTarget(ctx.RequestURI())
			if err != nil {
				WriteStatus(ctx, 400, err.Error())
				return
			}
			p.Serve(ctx, target, id)
		},
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		// As the gateway serves it: request bodies stream, and no Server
		// header is added.
		StreamRequestBody:     true,
		NoDefaultServerHeader: true,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	f.url, f.server = "http://"+ln.Addr().String(), srv
	return f
}

func TestIdentityHeaders(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{})
	req, _ := http.NewRequest(http.MethodPost, f.url+"/proxy/clusters/dev/api/v1/namespaces/default/pods/echo?fieldSelector=a%3Db&x=1", strings.NewReader(`{"a":1}`))
	req.Header.Set("Authorization", "Bearer berth-user-token")
	req.Header.Set("Cookie", "berth_session=abc")
	req.Header.Set("Impersonate-User", "system:admin")
	req.Header.Add("Impersonate-Group", "system:masters")
	req.Header.Set("Impersonate-Extra-Scopes", "all")
	req.Header.Set("X-Remote-User", "root")
	req.Header.Set("X-Remote-Group", "system:masters")
	// Front-proxy names a cluster may configure, trace context the
	// kubelet would follow, and the cluster's audit id.
	req.Header.Set("X-Forwarded-User", "root")
	req.Header.Set("X-Forwarded-Groups", "system:masters")
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("Tracestate", "x=1")
	req.Header.Set("Baggage", "tenant=other")
	req.Header.Set("Audit-ID", "chosen")
	req.Header.Set("X-Custom", "kept")
	req.Header.Set("X-Hop", "dropped")
	// Naming our own headers in Connection must not remove them.
	req.Header.Set("Connection", "Impersonate-User, Authorization, X-Hop")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"body":"{\"a\":1}"`) {
		t.Fatalf("echo: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Set-Cookie") != "" {
		t.Error("cluster Set-Cookie reached the client")
	}
	h, uri := b.last()
	if uri != "/api/v1/namespaces/default/pods/echo?fieldSelector=a%3Db&x=1" {
		t.Errorf("raw URI changed: %q", uri)
	}
	checks := map[string][]string{
		"Authorization":                           {"Bearer cluster-token"},
		"Impersonate-User":                        {"berth:alice"},
		"Impersonate-Group":                       {"dev", "berth:members"},
		"Impersonate-Extra-Berth.dev%2fclient-Ip": {"127.0.0.1"},
		"X-Custom":                                {"kept"},
	}
	for k, want := range checks {
		got := h.Values(k)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"Cookie", "X-Remote-User", "X-Remote-Group", "Impersonate-Extra-Scopes", "X-Hop",
		"X-Forwarded-User", "X-Forwarded-Groups", "Traceparent", "Tracestate", "Baggage", "Audit-Id"} {
		if v := h.Values(k); len(v) > 0 {
			t.Errorf("%s reached the cluster: %q", k, v)
		}
	}
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "impersonate-extra-") && !strings.Contains(strings.ToLower(k), "client-ip") {
			t.Errorf("unexpected extra %s", k)
		}
	}
}

func TestUpstreamErrors(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{RequestTimeout: 300 * time.Millisecond})
	tests := []struct {
		path   string
		code   int
		reason string
	}{
		{"/proxy/clusters/down/api/v1/pods", 503, "ServiceUnavailable"},
		{"/proxy/clusters/dev/api/v1/namespaces/default/pods/slow", 504, "Timeout"},
		{"/proxy/clusters/nope/api/v1/pods", 404, "NotFound"},
		{"/proxy/clusters/dev/api/v1/pods?pageSize=0", 400, "BadRequest"},
		{"/proxy/clusters/dev/api/v1/namespaces/default/pods/echo?sortOrder=asc", 400, "BadRequest"},
	}
	for _, tt := range tests {
		resp, err := http.Get(f.url + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Kind, Reason, Message string
			Code                  int
		}
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if resp.StatusCode != tt.code || st.Kind != "Status" || st.Code != tt.code || st.Reason != tt.reason {
			t.Errorf("%s: %d %+v, want %d %s", tt.path, resp.StatusCode, st, tt.code, tt.reason)
		}
		if strings.Contains(st.Message, "127.0.0.1") {
			t.Errorf("%s: message leaks the cluster address: %q", tt.path, st.Message)
		}
	}
}

func TestListPostProcessing(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{ListChunkSize: 500})
	get := func(q string) (int, map[string]any) {
		resp, err := http.Get(f.url + "/proxy/clusters/dev/api/v1/pods?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	names := func(out map[string]any) []string {
		var n []string
		for _, it := range out["items"].([]any) {
			n = append(n, it.(map[string]any)["metadata"].(map[string]any)["name"].(string))
		}
		return n
	}

	// Plain list: untouched, no total, the cluster's own paging.
	code, out := get("limit=3")
	if code != 200 || out["total"] != nil || len(out["items"].([]any)) != 3 {
		t.Fatalf("plain list changed: %d total=%v", code, out["total"])
	}
	// Filtered, sorted, paged across three upstream chunks.
	code, out = get("selector=metadata.namespace=ns-1,metadata.labels.app=a2&sortName=metadata.name&sortOrder=desc&pageSize=5&pageNum=2")
	if code != 200 {
		t.Fatalf("list: %d %v", code, out)
	}
	var want []string
	for i := 1199; i >= 0; i-- {
		if i%3 == 1 && i%5 == 2 {
			want = append(want, fmt.Sprintf("pod-%04d", i))
		}
	}
	if int(out["total"].(float64)) != len(want) {
		t.Errorf("total %v, want %d", out["total"], len(want))
	}
	if got := names(out); strings.Join(got, ",") != strings.Join(want[5:10], ",") {
		t.Errorf("page 2 = %v, want %v", got, want[5:10])
	}
	md := out["metadata"].(map[string]any)
	if md["continue"] != nil && md["continue"] != "" {
		t.Errorf("continue token leaked into the result: %v", md["continue"])
	}
	_, uri := b.last()
	if strings.Contains(uri, "selector=") || strings.Contains(uri, "pageSize") || !strings.Contains(uri, "limit=500") {
		t.Errorf("Berth's parameters reached the cluster or chunking missing: %q", uri)
	}
	// Numbers sort as numbers.
	code, out = get("sortName=spec.replicas&sortFunc=number&pageSize=1000&selector=metadata.namespace=ns-0")
	reps := []float64{}
	for _, it := range out["items"].([]any) {
		reps = append(reps, it.(map[string]any)["spec"].(map[string]any)["replicas"].(float64))
	}
	if code != 200 || !sort.Float64sAreSorted(reps) || len(reps) != 400 {
		t.Errorf("number sort: %d %d items sorted=%v", code, len(reps), sort.Float64sAreSorted(reps))
	}
	// A page past the end is empty, not an error.
	code, out = get("pageSize=100&pageNum=99")
	if code != 200 || len(out["items"].([]any)) != 0 || int(out["total"].(float64)) != 1200 {
		t.Errorf("past the end: %d %v", code, out["total"])
	}
	// Too large → 413 Status.
	small := newFront(t, b, Options{ListChunkSize: 500})
	small.proxy.opts.ListLimits.MaxItems = 700
	resp, _ := http.Get(small.url + "/proxy/clusters/dev/api/v1/pods?pageSize=5")
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("oversized list: %d, want 413", resp.StatusCode)
	}
}

// Each watch event reaches the client while the stream is still open, and
// a client that leaves releases the backend stream and every goroutine.
func TestWatchStreamsAndReleases(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	var baseline int
	for cycle := 0; cycle < 26; cycle++ {
		if cycle == 1 {
			// After one warm-up cycle: the servers' accept loops and
			// fasthttp's worker-pool cleaner have started by now.
			baseline = runtime.NumGoroutine()
		}
		resp, err := client.Get(f.url + "/proxy/clusters/dev/api/v1/pods?watch=1")
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(resp.Body)
		for i := 0; i < 2; i++ {
			name := fmt.Sprintf("c%d-e%d", cycle, i)
			b.watchEvents <- name
			line, err := r.ReadString('\n')
			if err != nil || !strings.Contains(line, name) {
				t.Fatalf("cycle %d: event %q not delivered while streaming: %q %v", cycle, name, line, err)
			}
		}
		resp.Body.Close() // the client goes away while the cluster is quiet
		select {
		case <-b.watchGone:
		case <-time.After(10 * time.Second):
			t.Fatalf("cycle %d: backend watch not released after the client left", cycle)
		}
	}
	// Goroutines return to the baseline (bounded wait, not a timing test).
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline+5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline+5 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines grew from %d to %d after 25 watch cycles:\n%s", baseline, n, buf[:runtime.Stack(buf, true)])
	}
}

func rawUpgrade(t *testing.T, f *front, path string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	return rawUpgradeAs(t, f.url, "", path)
}

func TestUpgrade(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{})

	// Accepted: bytes flow both ways and the client's half-close reaches
	// the cluster, whose answer still comes back.
	conn, br, resp := rawUpgrade(t, f, "/proxy/clusters/dev/api/v1/namespaces/default/pods/echo/exec?command=sh")
	if resp.StatusCode != 101 || resp.Header.Get("X-Stream-Protocol-Version") != "v4.channel.k8s.io" {
		t.Fatalf("upgrade: %d %v", resp.StatusCode, resp.Header)
	}
	h, _ := b.last()
	if h.Get("Impersonate-User") != "berth:alice" || h.Get("Upgrade") != "SPDY/3.1" {
		t.Errorf("upgrade request headers: %v", h)
	}
	conn.Write([]byte("hello"))
	conn.(*net.TCPConn).CloseWrite()
	rest, _ := io.ReadAll(br)
	conn.Close()
	if string(rest) != "HELLO|bye" {
		t.Errorf("spliced stream: %q", rest)
	}

	// Refused: the cluster's 403 comes back unchanged and the connection
	// is closed, never reused.
	conn, br, resp = rawUpgrade(t, f, "/proxy/clusters/dev/api/v1/namespaces/default/pods/denied/exec")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || !strings.Contains(string(body), `"reason":"Forbidden"`) {
		t.Errorf("refused upgrade: %d %s", resp.StatusCode, body)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection left open after a refused upgrade: %v", err)
	}
	conn.Close()
}

// A redirect answering an upgrade goes back to the client as it is: the
// proxy never follows it (the new location would get the gateway's
// credentials), and the connection is closed.
func TestUpgradeRedirectNotFollowed(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{})
	conn, br, resp := rawUpgrade(t, f, "/proxy/clusters/dev/api/v1/namespaces/default/pods/moved/exec")
	defer conn.Close()
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/api/v1/namespaces/default/pods/echo/exec" {
		t.Errorf("redirect: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, uri := b.last(); !strings.Contains(uri, "/moved/exec") {
		t.Errorf("the proxy followed the redirect to %q", uri)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection left open after a redirected upgrade: %v", err)
	}
}

func TestTLSConfigRejectsBadCA(t *testing.T) {
	if _, err := TLSConfig(Cluster{CAData: []byte("not pem")}); err == nil {
		t.Error("bad CA accepted")
	}
	if _, err := TLSConfig(Cluster{ClientCertData: []byte("x"), ClientKeyData: []byte("y")}); err == nil {
		t.Error("bad client certificate accepted")
	}
	cfg, err := TLSConfig(Cluster{})
	if err != nil || cfg.MinVersion != tls.VersionTLS12 || len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != "http/1.1" {
		t.Errorf("default TLS config: %+v %v", cfg, err)
	}
}

// Post-processed lists hold a whole list in memory, so only so many run at
// once; the next gets 429 with Retry-After instead of queueing.
func TestConcurrentListCap(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{MaxConcurrentLists: 1})
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(f.url + "/proxy/clusters/dev/api/v1/namespaces/slow/pods?pageSize=5")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	// Wait (bounded) until the first list holds the only slot.
	for i := 0; i < 500 && len(f.proxy.lists) == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get(f.url + "/proxy/clusters/dev/api/v1/pods?pageSize=5")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second list: %d Retry-After=%q, want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(b.listGate)
	if code := <-done; code != 200 {
		t.Errorf("first list: %d", code)
	}
}

// The gateway calling as itself sends no Impersonate-* header at all, not
// an empty user; a caller's identity is always sent whole.
func TestSetIdentity(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   Identity
		want map[string][]string
	}{
		{"gateway itself", Identity{}, map[string][]string{"Impersonate-User": nil, "Impersonate-Group": nil}},
		{"a caller", Identity{User: "berth:alice", Groups: []string{"berth:role:view", "berth:group:ops"}, Extra: map[string][]string{"berth.dev/client-ip": {"10.0.0.1"}}},
			map[string][]string{"Impersonate-User": {"berth:alice"}, "Impersonate-Group": {"berth:role:view", "berth:group:ops"}, "Impersonate-Extra-berth.dev%2Fclient-ip": {"10.0.0.1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			setIdentity(&h, bearerHeader("gw-token"), tc.id)
			if got := string(h.Peek("Authorization")); got != "Bearer gw-token" {
				t.Errorf("Authorization %q", got)
			}
			for name, want := range tc.want {
				var got []string
				for _, v := range h.PeekAll(name) {
					got = append(got, string(v))
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// openStreams opens a watch (and reads its first event) and an exec
// session through f.
func openStreams(t *testing.T, f *front, b *backend) (watch *bufio.Reader, execConn net.Conn, exec *bufio.Reader) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(f.url + "/proxy/clusters/dev/api/v1/pods?watch=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	watch = bufio.NewReader(resp.Body)
	b.watchEvents <- "first"
	if line, err := watch.ReadString('\n'); err != nil || !strings.Contains(line, "first") {
		t.Fatalf("watch: %q %v", line, err)
	}
	execConn, exec, up := rawUpgrade(t, f, "/proxy/clusters/dev/api/v1/namespaces/default/pods/echo/exec?command=sh")
	t.Cleanup(func() { execConn.Close() })
	if up.StatusCode != 101 {
		t.Fatalf("upgrade: %d", up.StatusCode)
	}
	return watch, execConn, exec
}

// waitEnded waits (bounded, not a timing check) for the watch and the exec
// session to end, and for the cluster to see its watch released.
func waitEnded(t *testing.T, b *backend, watch, exec io.Reader, why string) {
	t.Helper()
	for what, r := range map[string]io.Reader{"watch": watch, "exec": exec} {
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, r); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s still open after %s", what, why)
		}
	}
	select {
	case <-b.watchGone:
	case <-time.After(10 * time.Second):
		t.Fatal("the cluster's watch was not released")
	}
}

// Removing or re-registering a cluster ends the watches and upgrades
// running on it: they must not live on with a server and credentials the
// gateway no longer holds for that name.
func TestStreamsEndWhenClusterChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *front, b *backend) error
	}{
		{"removed", func(f *front, _ *backend) error { f.proxy.Pool().Remove("dev"); return nil }},
		{"detached", func(f *front, _ *backend) error { f.proxy.Pool().Detach("dev"); return nil }},
		{"re-registered", func(f *front, b *backend) error {
			caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Certificate().Raw})
			return f.proxy.Pool().Set(Cluster{Name: "dev", Server: b.URL, CAData: caPEM, Token: "rotated-token"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t)
			f := newFront(t, b, Options{})
			watch, _, exec := openStreams(t, f, b)
			if err := tt.change(f, b); err != nil {
				t.Fatal(err)
			}
			waitEnded(t, b, watch, exec, "the change")

			// New requests use the new settings (or find no cluster).
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := client.Get(f.url + "/proxy/clusters/dev/api/v1/namespaces/default/pods/echo")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h, _ := b.last()
			switch tt.name {
			case "removed", "detached":
				if resp.StatusCode != 404 {
					t.Errorf("removed cluster answered %d", resp.StatusCode)
				}
			default:
				if resp.StatusCode != 200 || h.Get("Authorization") != "Bearer rotated-token" {
					t.Errorf("after re-registering: %d, Authorization %q", resp.StatusCode, h.Get("Authorization"))
				}
			}
		})
	}
}

// A detached cluster frees its name at once, yet its handle keeps reaching
// the old server with the old credentials, whatever takes the name next.
func TestDetachedClusterStillAnswersItsHandle(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{})
	pool := f.proxy.Pool()
	if pool.Detach("nope") != nil {
		t.Error("Detach of an unknown cluster returned a handle")
	}
	d := pool.Detach("dev")
	if d == nil || pool.Has("dev") {
		t.Fatalf("after Detach: handle %v, pool has dev %v", d, pool.Has("dev"))
	}
	defer d.Close()
	other := newBackend(t)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate().Raw})
	if err := pool.Set(Cluster{Name: "dev", Server: other.URL, CAData: caPEM, Token: "new-token"}); err != nil {
		t.Fatal(err)
	}
	id := Identity{User: "berth:system:sweeper", Groups: []string{"berth:cluster-admin"}}
	code, body, err := d.Do("GET", "/api/v1/namespaces/default/pods/echo", id, "", nil, 5*time.Second)
	if err != nil || code != 200 || !strings.Contains(string(body), `"kind":"Pod"`) {
		t.Fatalf("detached Do: %d %s %v", code, body, err)
	}
	h, _ := b.last()
	if h.Get("Authorization") != "Bearer cluster-token" || h.Get("Impersonate-User") != "berth:system:sweeper" {
		t.Errorf("detached Do reached the old cluster with Authorization %q, Impersonate-User %q",
			h.Get("Authorization"), h.Get("Impersonate-User"))
	}
	if h, _ := other.last(); h != nil {
		t.Errorf("detached Do reached the cluster that took the name: %v", h)
	}
	if code, _, err := pool.Do("dev", "GET", "/api/v1/namespaces/default/pods/echo", id, "", nil, 5*time.Second); err != nil || code != 200 {
		t.Fatalf("the new dev: %d %v", code, err)
	}
	if h, _ := other.last(); h.Get("Authorization") != "Bearer new-token" {
		t.Errorf("the pool's dev is not the new cluster: %q", h.Get("Authorization"))
	}
}

// Recheck ends the streams whose identity is no longer allowed, and only
// those: a stream still allowed keeps delivering.
func TestRecheckEndsRefusedStreams(t *testing.T) {
	b := newBackend(t)
	rec := newCountingObserver()
	f := newFront(t, b, Options{Observer: rec})
	watch, execConn, exec := openStreams(t, f, b)

	if n := f.proxy.Pool().Recheck(); n != 0 {
		t.Fatalf("Recheck with access intact ended %d streams", n)
	}
	b.watchEvents <- "still-allowed"
	if line, err := watch.ReadString('\n'); err != nil || !strings.Contains(line, "still-allowed") {
		t.Fatalf("watch after a passing recheck: %q %v", line, err)
	}
	// The exec session is still open: a read waits instead of ending. (A
	// stream ended by Recheck is closed before Recheck returns.)
	execConn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := exec.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("exec after a passing recheck: %v, want a read timeout", err)
	}
	execConn.SetReadDeadline(time.Time{})

	f.revoked.Store(true)
	if n := f.proxy.Pool().Recheck(); n != 2 {
		t.Fatalf("Recheck after revocation ended %d streams, want 2", n)
	}
	waitEnded(t, b, watch, exec, "its access was withdrawn")
	// Both let go of their place on the upstream (bounded wait: the
	// server closes the watch's body after the read fails).
	u := f.proxy.Pool().get("dev")
	for deadline := time.Now().Add(10 * time.Second); len(u.streams()) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d ended streams still tracked", len(u.streams()))
		}
	}

	// Withdrawn before a stream opens (here, before the request: the
	// gateway's own check would refuse it; the proxy's check covers a
	// withdrawal while the cluster is being asked): 403, nothing streams.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	before := len(rec.all())
	resp, err := client.Get(f.url + "/proxy/clusters/dev/api/v1/pods?watch=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), `"kind":"Status"`) || !strings.Contains(string(body), "withdrawn") {
		t.Errorf("watch opened after withdrawal: %d %s", resp.StatusCode, body)
	}
	// Counted as the refusal the client got, once.
	if got := rec.all()[before:]; !slices.Equal(got, []int{403}) {
		t.Errorf("watch opened after withdrawal observed as %v, want [403]", got)
	}
	conn, br, up := rawUpgrade(t, f, "/proxy/clusters/dev/api/v1/namespaces/default/pods/echo/exec?command=sh")
	defer conn.Close()
	rest, _ := io.ReadAll(br)
	if up.StatusCode != 403 {
		t.Errorf("exec opened after withdrawal: %d %s", up.StatusCode, rest)
	}
	if n := len(u.streams()); n != 0 {
		t.Errorf("%d refused streams tracked", n)
	}
}

// A watch is not an ordinary request: it outlives the request timeout,
// which still cuts a slow ordinary request.
func TestStreamOutlivesRequestTimeout(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{RequestTimeout: 200 * time.Millisecond})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	resp, err := client.Get(f.url + "/proxy/clusters/dev/api/v1/pods?watch=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	// Quiet for several request timeouts, then an event.
	time.Sleep(time.Second)
	select {
	case b.watchEvents <- "late":
	case <-time.After(10 * time.Second):
		t.Fatal("the cluster's watch is gone: cut by the request timeout")
	}
	got := make(chan string, 1)
	go func() { line, _ := r.ReadString('\n'); got <- line }()
	select {
	case line := <-got:
		if !strings.Contains(line, "late") {
			t.Fatalf("watch cut by the request timeout: %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event never reached the client")
	}

	slow, err := client.Get(f.url + "/proxy/clusters/dev/api/v1/namespaces/default/pods/slow")
	if err != nil {
		t.Fatal(err)
	}
	slow.Body.Close()
	if slow.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("slow ordinary request: %d, want 504", slow.StatusCode)
	}
}

// A request body streams to the cluster: the cluster has its first bytes
// before the client has sent the rest. Bodies over MaxRequestBodyBytes are
// refused with 413, before the cluster is contacted when the length is
// declared.
func TestRequestBodyStreams(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{MaxRequestBodyBytes: 4 << 20})
	url := f.url + "/proxy/clusters/dev/api/v1/namespaces/default/configmaps"

	pr, pw := io.Pipe()
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Post(url, "application/json", pr) // chunked: no length
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- result{code: resp.StatusCode, body: string(body)}
	}()
	half := bytes.Repeat([]byte("x"), 1<<20)
	if _, err := pw.Write(half); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.bodyStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("the cluster saw nothing of the body while the client was still sending: it is buffered")
	}
	pw.Write(half)
	pw.Close()
	r := <-done
	if r.err != nil || r.code != 200 || r.body != fmt.Sprintf(`{"received":%d}`, 2<<20) {
		t.Fatalf("streamed upload: %d %q %v", r.code, r.body, r.err)
	}

	// Over the bound, declared or chunked. Raw connections: the proxy
	// answers before the client has sent everything, which Go's client
	// reports as a write error rather than the 413.
	u, _ := neturl.Parse(url)
	over := func(chunked bool) *http.Response {
		t.Helper()
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if chunked {
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n", u.Path, u.Host)
			go func() {
				chunk := bytes.Repeat([]byte("y"), 64<<10)
				for range 80 { // 5 MiB
					if _, err := fmt.Fprintf(conn, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
						return
					}
				}
				fmt.Fprint(conn, "0\r\n\r\n")
			}()
		} else {
			// The server reads the body's first 8 KiB before any handler
			// runs; send a little more than that, never the whole.
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s", u.Path, u.Host, 5<<20, bytes.Repeat([]byte("z"), 16<<10))
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to an oversized body (chunked %v): %v", chunked, err)
		}
		resp.Body.Close()
		return resp
	}
	before := b.uploads.Load()
	if resp := over(false); resp.StatusCode != 413 || b.uploads.Load() != before {
		t.Errorf("declared 5 MiB: %d, cluster contacted %d times", resp.StatusCode, b.uploads.Load()-before)
	}
	go func() { <-b.bodyStarted }() // the cluster does see the start of a chunked body
	if resp := over(true); resp.StatusCode != 413 {
		t.Errorf("chunked 5 MiB: %d", resp.StatusCode)
	}
}

// EndStreams, for a shutdown, ends every open stream whoever holds it and
// leaves the cluster usable: a new watch opens afterwards.
func TestEndStreamsForShutdown(t *testing.T) {
	b := newBackend(t)
	f := newFront(t, b, Options{})
	watch, _, exec := openStreams(t, f, b)
	if n := f.proxy.Pool().EndStreams(); n != 2 {
		t.Fatalf("EndStreams ended %d streams, want 2", n)
	}
	waitEnded(t, b, watch, exec, "the shutdown")
	if n := f.proxy.Pool().EndStreams(); n != 0 {
		t.Errorf("a second EndStreams ended %d", n)
	}
	if !f.proxy.Pool().Has("dev") {
		t.Fatal("EndStreams removed the cluster")
	}
	watch2, _, _ := openStreams(t, f, b)
	b.watchEvents <- "after-shutdown-pass"
	if line, err := watch2.ReadString('\n'); err != nil || !strings.Contains(line, "after-shutdown-pass") {
		t.Fatalf("a watch opened after EndStreams: %q %v", line, err)
	}
}

// dropped decides on bytes without case, as the string version did: every
// spelling of a refused name is refused, and names that merely resemble
// one pass.
func TestDroppedHeaders(t *testing.T) {
	for name, want := range map[string]bool{
		"Authorization": true, "AUTHORIZATION": true, "cookie": true, "Host": true, "Content-Length": true,
		"X-Request-Id": true, "Audit-ID": true, "audit-id": true, "Audit-Ids": false, "x-forwarded-for": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
		"X-Real-Ip": true, "Forwarded": true, "Impersonate-User": true, "impersonate-extra-scopes": true,
		"IMPERSONATE-": true, "X-Remote-User": true, "x-remote-group": true, "Connection": true, "Keep-Alive": true,
		"Proxy-Connection": true, "Proxy-Authorization": true, "TE": true, "Trailer": true, "Transfer-Encoding": true,
		"Upgrade": true, "Accept": false, "User-Agent": false, "Impersonate": false, "X-Remote": false,
		"Authorizations": false, "Hosts": false, "Kubectl-Command": false, "Content-Type": false, "Te-": false,
		// Front-proxy header names clusters configure, and trace context.
		"X-Forwarded-User": true, "x-forwarded-groups": true, "X-Forwarded-Extra-Scopes": true, "X-Forwarded": false,
		"Traceparent": true, "tracestate": true, "Baggage": true, "Traceparents": false,
	} {
		if got := dropped([]byte(name)); got != want {
			t.Errorf("dropped(%q) = %v, want %v", name, got, want)
		}
	}
}

// Headers named in Connection are dropped whatever their case or spacing;
// "upgrade" there drops nothing, and the identity set afterwards stays.
func TestCopyRequestHeadersConnectionNamed(t *testing.T) {
	var src, dst fasthttp.RequestHeader
	src.DisableNormalizing()
	raw := "GET /api HTTP/1.1\r\nHost: b\r\nConnection:  X-Secret ,UPGRADE,, keep-alive\r\nConnection: x-other\r\n" +
		"x-secret: 1\r\nX-Other: 2\r\nUpgrade: SPDY/3.1\r\nAccept: application/json\r\nX-Secretive: 3\r\nAudit-Id: chosen-by-client\r\n\r\n"
	if err := src.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	dst.DisableNormalizing()
	copyRequestHeaders(&dst, &src, false)
	setIdentity(&dst, bearerHeader("t"), Identity{User: "berth:u", AuditID: "berth-request-id"})
	for name, want := range map[string]string{"x-secret": "", "X-Other": "", "Accept": "application/json", "X-Secretive": "3", "Upgrade": "", "Impersonate-User": "berth:u"} {
		if got := string(dst.Peek(name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// The cluster's audit id is the gateway's, never the client's.
	var ids []string
	for k, v := range dst.All() {
		if strings.EqualFold(string(k), "Audit-ID") {
			ids = append(ids, string(v))
		}
	}
	if !slices.Equal(ids, []string{"berth-request-id"}) {
		t.Errorf("Audit-ID headers sent: %q, want only the gateway's", ids)
	}
}

func BenchmarkCopyRequestHeaders(b *testing.B) {
	var src fasthttp.RequestHeader
	src.SetRequestURI("/api/v1/namespaces/default")
	for _, kv := range [][2]string{{"Host", "berth.example"}, {"Authorization", "Bearer xyz"}, {"Accept", "application/json, */*"},
		{"User-Agent", "kubectl/v1.31.14 (linux/amd64) kubernetes/abcdef"}, {"Kubectl-Command", "kubectl get"}, {"Kubectl-Session", "0f1e2d3c"}, {"Accept-Encoding", "gzip"}} {
		src.Add(kv[0], kv[1])
	}
	id := Identity{User: "berth:bench", Groups: []string{"berth:role:view"},
		Extra: map[string][]string{"berth.dev/client-ip": {"127.0.0.1"}, "berth.dev/auth-method": {"jwt"}, "berth.dev/request-id": {"0123456789abcdef01234567"}}}
	auth := bearerHeader("gateway-token")
	var dst fasthttp.RequestHeader // reused, as the pooled request's is
	b.ReportAllocs()
	for b.Loop() {
		dst.Reset()
		dst.DisableNormalizing()
		copyRequestHeaders(&dst, &src, false)
		setIdentity(&dst, auth, id)
	}
}
