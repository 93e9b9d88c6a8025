package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"

	"slices"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// countingObserver records what the proxy reports, for the assertions on
// metrics.
type countingObserver struct {
	nopObserver
	mu      sync.Mutex
	refused map[string]int // "kind/limit"
	codes   map[int]int
	seq     []int // the codes in the order reported
}

func newCountingObserver() *countingObserver {
	return &countingObserver{refused: map[string]int{}, codes: map[int]int{}}
}

func (o *countingObserver) Request(_, _ string, code int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.codes[code]++
	o.seq = append(o.seq, code)
}

// all returns the codes reported so far, in order.
func (o *countingObserver) all() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seq)
}

func (o *countingObserver) StreamRefused(_, kind, limit string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refused[kind+"/"+limit]++
}

func (o *countingObserver) count(m func(*countingObserver) int) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return m(o)
}

// newLimitedFront is newFront with pool options, and a principal per
// request taken from the X-Test-User header (the gateway takes it from the
// authenticated caller).
func newLimitedFront(t *testing.T, b *backend, popts PoolOptions, opts Options) (string, *Proxy, *countingObserver) {
	t.Helper()
	popts.DialTimeout = 2 * time.Second
	pool := NewPool(popts)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Certificate().Raw})
	if err := pool.Set(Cluster{Name: "dev", Server: b.URL, CAData: caPEM, Token: "cluster-token"}); err != nil {
		t.Fatal(err)
	}
	obs := newCountingObserver()
	opts.Pool, opts.Observer = pool, obs
	p := New(opts)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			target, err := ParseTarget(ctx.RequestURI())
			if err != nil {
				WriteStatus(ctx, 400, err.Error())
				return
			}
			user := string(ctx.Request.Header.Peek("X-Test-User"))
			p.Serve(ctx, target, Identity{User: "berth:" + user, StreamKey: user})
		},
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		StreamRequestBody: true,
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: ReadTimeoutForBody(h, opts.BodyRate)}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String(), p, obs
}

// openWatch opens a watch as user; a 200 stays open until the test ends.
func openWatch(t *testing.T, url, user string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/proxy/clusters/dev/api/v1/pods?watch=1", nil)
	req.Header.Set("X-Test-User", user)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// statusOf decodes a Kubernetes Status answer.
func statusOf(t *testing.T, resp *http.Response) (code int, reason, message string) {
	t.Helper()
	var st struct {
		Kind, Reason, Message string
		Code                  int
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" {
		t.Fatalf("%d: not a Status: %s", resp.StatusCode, body)
	}
	return st.Code, st.Reason, st.Message
}

// Streams are limited per principal and per cluster (429 with Retry-After
// past either, counted), upgrades count too, a place is given back when a
// stream ends, and ordinary requests keep working while the limits are
// full: streams never take the connections of the ordinary pool, which
// here has only two.
func TestStreamLimits(t *testing.T) {
	b := newBackend(t)
	url, p, obs := newLimitedFront(t, b, PoolOptions{MaxConnsPerCluster: 2, Streams: StreamLimits{PerCluster: 4, PerPrincipal: 2, RetryAfter: 7 * time.Second}}, Options{RequestTimeout: 10 * time.Second})

	ordinary := func(i int) {
		t.Helper()
		req, _ := http.NewRequest("GET", url+"/proxy/clusters/dev/api/v1/namespaces/default/pods/echo", nil)
		req.Header.Set("X-Test-User", "bob")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("ordinary request %d while streams are open: %d %s", i, resp.StatusCode, body)
		}
	}
	refused := func(resp *http.Response, who, limit string) {
		t.Helper()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
			t.Fatalf("%s's stream over the %s limit: %d Retry-After %q", who, limit, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if code, reason, _ := statusOf(t, resp); code != 429 || reason != "TooManyRequests" {
			t.Fatalf("%s's refused stream: %d %s", who, code, reason)
		}
	}

	var alice []*http.Response
	for i := range 2 {
		resp := openWatch(t, url, "alice")
		if resp.StatusCode != 200 {
			t.Fatalf("alice's watch %d: %d", i, resp.StatusCode)
		}
		alice = append(alice, resp)
		ordinary(i)
	}
	refused(openWatch(t, url, "alice"), "alice", "principal")
	conn, _, up := rawUpgradeAs(t, url, "alice", "/proxy/clusters/dev/api/v1/namespaces/default/pods/echo/exec?command=sh")
	conn.Close()
	if up.StatusCode != 429 {
		t.Fatalf("alice's exec over her limit: %d", up.StatusCode)
	}
	// Others still have room, up to the cluster's limit; an exec session
	// counts as a stream.
	if resp := openWatch(t, url, "carol"); resp.StatusCode != 200 {
		t.Fatalf("carol's watch: %d", resp.StatusCode)
	}
	execConn, _, up := rawUpgradeAs(t, url, "dave", "/proxy/clusters/dev/api/v1/namespaces/default/pods/echo/exec?command=sh")
	defer execConn.Close()
	if up.StatusCode != 101 {
		t.Fatalf("dave's exec: %d", up.StatusCode)
	}
	refused(openWatch(t, url, "erin"), "erin", "cluster")
	for i := range 5 {
		ordinary(10 + i)
	}
	if n := obs.count(func(o *countingObserver) int { return o.refused["watch/principal"] }); n != 1 {
		t.Errorf("refused watches counted over the principal limit: %d, want 1", n)
	}
	if n := obs.count(func(o *countingObserver) int { return o.refused["upgrade/principal"] + o.refused["watch/cluster"] }); n != 2 {
		t.Errorf("other refusals counted: %d, want 2", n)
	}

	// One of alice's watches ends: her place (and the cluster's) is given
	// back, once the proxy has seen the client go (bounded wait).
	alice[0].Body.Close()
	<-b.watchGone
	u := p.Pool().get("dev")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		u.liveMu.Lock()
		n := u.count.by["alice"]
		u.liveMu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice still counted with %d streams", n)
		}
	}
	if resp := openWatch(t, url, "alice"); resp.StatusCode != 200 {
		t.Fatalf("alice's watch after one ended: %d", resp.StatusCode)
	}
}

// rawUpgradeAs opens an upgrade to url's path as user (none when empty).
func rawUpgradeAs(t *testing.T, url, user, path string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	u, _ := neturl.Parse(url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	userHeader := ""
	if user != "" {
		userHeader = "X-Test-User: " + user + "\r\n"
	}
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\n%sConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n", path, u.Host, userHeader)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

// A body that stops coming, or trickles, is cut after one window with 408
// (the client's fault), long before the server's 30 s read timeout, and
// counted as a 408; a malformed chunked body is a 400, not the cluster's
// "unreachable". Both in the handler (chunked) and in the server's own
// first read of a declared body. A body that never gets going never
// takes a connection to the cluster.
func TestSlowAndMalformedBodies(t *testing.T) {
	b := newBackend(t)
	url, _, obs := newLimitedFront(t, b, PoolOptions{}, Options{BodyRate: BodyRate{MinBytes: 1024, Window: 300 * time.Millisecond}})
	u, _ := neturl.Parse(url)
	send := func(head, body string, trickle bool) *http.Response {
		t.Helper()
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /proxy/clusters/dev/api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: %s\r\n%s\r\n%s", u.Host, head, body)
		stop := make(chan struct{})
		defer close(stop)
		if trickle {
			// A byte of chunk data every 100 ms: under 1 KiB a window.
			go func() {
				fmt.Fprintf(conn, "1000\r\n")
				for {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
						if _, err := conn.Write([]byte("x")); err != nil {
							return
						}
					}
				}
			}()
		}
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer (%q): %v", head, err)
		}
		body2, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(body2))
		return resp
	}
	go func() {
		for range b.bodyStarted { // the cluster may see the start of a chunked body
		}
	}()

	tests := []struct {
		name, head, body string
		trickle          bool
		code             int
		reason           string
	}{
		{"chunked, nothing sent", "Transfer-Encoding: chunked\r\n", "", false, 408, "Timeout"},
		{"chunked, trickling", "Transfer-Encoding: chunked\r\n", "", true, 408, "Timeout"},
		{"chunked, malformed", "Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n", false, 400, "BadRequest"},
		{"chunked, ended early", "Transfer-Encoding: chunked\r\n", "10\r\nabc", false, 408, "Timeout"},
	}
	for _, tt := range tests {
		resp := send(tt.head, tt.body, tt.trickle)
		code, reason, msg := statusOf(t, resp)
		if resp.StatusCode != tt.code || code != tt.code || reason != tt.reason {
			t.Errorf("%s: %d %s %q, want %d %s", tt.name, resp.StatusCode, reason, msg, tt.code, tt.reason)
		}
	}
	if n := b.uploads.Load(); n != 0 {
		t.Errorf("bodies that never got going reached the cluster %d times", n)
	}
	if n := obs.count(func(o *countingObserver) int { return o.codes[502] + o.codes[503] + o.codes[504] }); n != 0 {
		t.Errorf("client body failures counted as cluster errors: %d", n)
	}
	if n := obs.count(func(o *countingObserver) int { return o.codes[408] + o.codes[400] }); n != len(tests) {
		t.Errorf("client body failures counted: %d, want %d", n, len(tests))
	}

	// A declared body: the server reads its first bytes itself, under one
	// window too.
	resp := send("Content-Length: 5000\r\n", "abc", false)
	if resp.StatusCode != 408 {
		body, _ := io.ReadAll(resp.Body)
		t.Errorf("declared body that stops: %d %s", resp.StatusCode, body)
	}
	// A body that keeps up passes.
	resp = send("Content-Length: 3\r\n", "abc", false)
	if code, body := resp.StatusCode, must(io.ReadAll(resp.Body)); code != 200 || string(body) != `{"received":3}` {
		t.Errorf("small body: %d %s", code, body)
	}
	resp = send("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", false)
	if code, body := resp.StatusCode, must(io.ReadAll(resp.Body)); code != 200 || string(body) != `{"received":5}` {
		t.Errorf("small chunked body: %d %s", code, body)
	}
}

func must[T any](v T, _ error) T { return v }
