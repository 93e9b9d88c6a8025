package proxy

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/deploy/bench/podgen"
	"github.com/berthgw/berth/internal/tlstest"
)

// Benchmarks of Proxy.Serve in process: the request context is built in
// memory (no client connection), the cluster is a fasthttp HTTPS server on
// 127.0.0.1 in the same process, so B/op and allocs/op include the
// backend's few allocations. The out-of-process comparison with nginx and
// httputil.ReverseProxy, through the whole gateway, is deploy/bench
// (`make bench-proxy`); see docs/benchmarks.md.

// benchSmallBody is a ~1 KB JSON object, like a small API object.
var benchSmallBody = []byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"default","uid":"0c8d6f6e-4b7c-4a55-9e39-3c7b1b5c2d11","resourceVersion":"196","creationTimestamp":"2025-01-01T00:00:00Z","labels":{"kubernetes.io/metadata.name":"default"},"annotations":{` +
	strings.TrimSuffix(strings.Repeat(`"bench.berth.dev/annotation":"0123456789012345678901234567890123456789",`, 12), ",") +
	`}},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}`)

// benchPods caches generated pods per count.
var benchPods sync.Map // int -> [][]byte

// benchChunks caches the list chunks served, by "n/from/to".
var benchChunks sync.Map // string -> []byte

// startBenchBackend serves the small object and chunked pod lists
// (/api/v1/namespaces/pods-<n>/pods, honouring limit and continue) over
// TLS, and returns a proxy whose cluster "bench" is that server.
func startBenchBackend(b *testing.B) *Proxy {
	b.Helper()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		path := string(ctx.Path())
		if path == "/api/v1/namespaces/default" {
			ctx.SetContentType("application/json")
			ctx.SetBody(benchSmallBody)
			return
		}
		rest, ok := strings.CutPrefix(path, "/api/v1/namespaces/pods-")
		n, err := strconv.Atoi(strings.TrimSuffix(rest, "/pods"))
		if !ok || err != nil || n <= 0 {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			return
		}
		v, ok := benchPods.Load(n)
		if !ok {
			v, _ = benchPods.LoadOrStore(n, podgen.Items(n, uint64(n)))
		}
		items := v.([][]byte)
		args := ctx.QueryArgs()
		from := min(max(args.GetUintOrZero("continue"), 0), n)
		to := n
		if limit := args.GetUintOrZero("limit"); limit > 0 {
			to = min(from+limit, n)
		}
		cont := ""
		if to < n {
			cont = strconv.Itoa(to)
		}
		// Chunks are built once and sent without a copy, so that B/op is
		// (nearly) the proxy's alone.
		key := fmt.Sprintf("%d/%d/%d", n, from, to)
		chunk, ok := benchChunks.Load(key)
		if !ok {
			chunk, _ = benchChunks.LoadOrStore(key, podgen.AppendList(nil, items[from:to], cont, n-to))
		}
		ctx.SetContentType("application/json")
		ctx.Response.SetBodyRaw(chunk.([]byte))
	}}
	ln, caPEM := tlstest.Listen(b)
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown() })
	pool := NewPool(PoolOptions{})
	if err := pool.Set(Cluster{Name: "bench", Server: "https://" + ln.Addr().String(), CAData: caPEM, Token: "cluster-token"}); err != nil {
		b.Fatal(err)
	}
	return New(Options{Pool: pool, RequestTimeout: time.Minute})
}

// benchIdentity is what the gateway asserts for a view member.
var benchIdentity = Identity{User: "berth:bench", Groups: []string{"berth:role:view"},
	Extra: map[string][]string{"berth.dev/client-ip": {"127.0.0.1"}, "berth.dev/auth-method": {"jwt"}}}

// benchClientConn is a kept-alive client connection that sends nothing
// more: a read waits until a read deadline is set, as on a socket, which
// is what the list path's watch for a departed client (watchListClient)
// relies on.
type benchClientConn struct {
	net.Conn // never called: the request context is built in memory
	mu       sync.Mutex
	wake     chan struct{} // closed by a deadline set, renewed by clearing it
}

var benchClientAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

func (c *benchClientConn) RemoteAddr() net.Addr { return benchClientAddr }
func (c *benchClientConn) LocalAddr() net.Addr  { return benchClientAddr }

func (c *benchClientConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case t.IsZero() || c.wake == nil:
		c.wake = make(chan struct{})
		if !t.IsZero() {
			close(c.wake)
		}
	default:
		select {
		case <-c.wake:
		default:
			close(c.wake)
		}
	}
	return nil
}

func (c *benchClientConn) Read([]byte) (int, error) {
	c.mu.Lock()
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	wake := c.wake
	c.mu.Unlock()
	<-wake
	return 0, os.ErrDeadlineExceeded
}

// benchClient is the one client connection every benchmark request comes
// on.
var benchClient = &benchClientConn{}

// serveOnce runs one request through p and drains the answer, returning
// the status and the body's length.
func serveOnce(b *testing.B, p *Proxy, ctx *fasthttp.RequestCtx, req *fasthttp.Request) (int, int) {
	ctx.Init2(benchClient, nil, false)
	req.CopyTo(&ctx.Request)
	t, err := ParseTarget(ctx.RequestURI())
	if err != nil {
		b.Fatal(err)
	}
	p.Serve(ctx, t, benchIdentity)
	n := len(ctx.Response.Body())
	if s := ctx.Response.BodyStream(); s != nil {
		m, err := io.Copy(io.Discard, s)
		if err != nil {
			b.Fatal(err)
		}
		n = int(m)
		_ = ctx.Response.CloseBodyStream()
	}
	code := ctx.Response.StatusCode()
	ctx.Response.Reset()
	return code, n
}

func benchRequest(uri string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(uri)
	req.Header.Set("Host", "berth.example")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kubectl/v1.31.14 (linux/amd64) kubernetes/abcdef0")
	req.Header.Set("Authorization", "Bearer the-callers-token-for-berth")
	return req
}

// BenchmarkServeSmallGET forwards a GET answered with ~1 KB of JSON: header
// filtering, impersonation headers, one round trip on a pooled TLS
// connection, the body streamed back.
func BenchmarkServeSmallGET(b *testing.B) {
	p := startBenchBackend(b)
	req := benchRequest("/proxy/clusters/bench/api/v1/namespaces/default")
	defer fasthttp.ReleaseRequest(req)
	var ctx fasthttp.RequestCtx
	if code, n := serveOnce(b, p, &ctx, req); code != 200 || n != len(benchSmallBody) {
		b.Fatalf("status %d, %d bytes", code, n)
	}
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, p, &ctx, req)
	}
}

// BenchmarkServeList sorts and pages 10 000 realistic pods (~4 KB each),
// fetched by the proxy in chunks of 500: the whole list call as a client
// sees it, minus the client connection. peak-heap figures through the real
// gateway are in docs/benchmarks.md.
func BenchmarkServeList(b *testing.B) {
	p := startBenchBackend(b)
	const pods = 10_000
	for _, c := range []struct{ name, query string }{
		{"newest-first-page", "sortName=metadata.creationTimestamp&sortOrder=desc&sortFunc=time&pageSize=20"},
		{"by-name-last-page", fmt.Sprintf("pageSize=100&pageNum=%d", pods/100)},
	} {
		b.Run(fmt.Sprintf("%d/%s", pods, c.name), func(b *testing.B) {
			req := benchRequest(fmt.Sprintf("/proxy/clusters/bench/api/v1/namespaces/pods-%d/pods?%s", pods, c.query))
			defer fasthttp.ReleaseRequest(req)
			var ctx fasthttp.RequestCtx
			if code, _ := serveOnce(b, p, &ctx, req); code != 200 {
				b.Fatalf("status %d", code)
			}
			b.ReportAllocs()
			for b.Loop() {
				serveOnce(b, p, &ctx, req)
			}
		})
	}
}
