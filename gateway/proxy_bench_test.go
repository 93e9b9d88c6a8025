package gateway

import (
	"bytes"
	"encoding/base64"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/internal/tlstest"
)

// BenchmarkProxySmallGET is the whole gateway's request path in process:
// the server's handler chain (request id, security headers, metrics,
// access log, recovery, method check, edge, CORS), authentication of a
// JWT kept on its connection, membership, the proxy rate limit with the
// limits proxybench sets, impersonation, and one round trip to a fasthttp
// HTTPS cluster in the same process answering ~1 KB of JSON. Only the
// client connection is missing: the request context is built in memory
// on one connection that stays open. It is the in-process counterpart of
// `make bench-proxy`'s small GET, without its machine noise; allocs/op
// include the cluster's own few.
func BenchmarkProxySmallGET(b *testing.B) {
	cluster := startBenchCluster(b)
	ag := startAuthOn(b, map[string]string{
		"BERTH_RATE_LIMITS_PROXY_REQUESTS": "100000000", "BERTH_RATE_LIMITS_PROXY_PER": "1s", "BERTH_RATE_LIMITS_PROXY_BURST": "100000000",
		"BERTH_RATE_LIMITS_PROXY_USER_REQUESTS": "100000000", "BERTH_RATE_LIMITS_PROXY_USER_PER": "1s", "BERTH_RATE_LIMITS_PROXY_USER_BURST": "100000000",
	}, runningClock())
	admin := ag.login(b, "admin", adminPassword).AccessToken
	ag.must(b, 201, "POST", "/api/v1/clusters", map[string]any{
		"name": "bench", "server": cluster.url, "token": "bench-cluster-token",
		"certificate_authority_data": base64.StdEncoding.EncodeToString(cluster.caPEM),
	}, bearer(admin))
	ag.secret("bench-cluster-token")
	ag.createUser(b, admin, "viewer", "viewer-Password-0001")
	ag.must(b, 201, "POST", "/api/v1/clusters/bench/members", map[string]any{"user": "viewer", "role": "view"}, bearer(admin))
	token := ag.login(b, "viewer", "viewer-Password-0001").AccessToken

	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("/proxy/clusters/bench/api/v1/namespaces/default")
	req.Header.SetHost("berth.example")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kubectl/v1.31.14 (linux/amd64) kubernetes/abcdef0")
	req.Header.Set("Authorization", "Bearer "+token)
	handler := ag.server.Handler
	conn := &benchConn{}
	var ctx fasthttp.RequestCtx
	serve := func() {
		ctx.Init2(conn, nil, false)
		req.CopyTo(&ctx.Request)
		handler(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusOK || !bytes.Equal(ctx.Response.Body(), benchClusterBody) {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		ctx.Response.Reset()
	}
	// The access line is written (to the test's buffer, emptied now and
	// then so that its growth is not measured; berth serve writes to a
	// flushed buffer of fixed size).
	before := ag.logs.Len()
	serve()
	if ag.logs.Len() == before {
		b.Fatal("no access line was written")
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		serve()
		if n++; n%1024 == 0 {
			ag.logs.Reset()
		}
	}
}

// benchConn is a kept-alive client connection that is never read or
// written: the handler reads only its addresses.
// Its addresses are made once, as a real connection's are.
type benchConn struct{ net.Conn }

var benchRemote, benchLocal = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}

func (*benchConn) RemoteAddr() net.Addr { return benchRemote }
func (*benchConn) LocalAddr() net.Addr  { return benchLocal }

// benchClusterBody is a ~1 KB Namespace, like the proxy package's
// benchmark and proxybench's static backend answer.
var benchClusterBody = []byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"default","uid":"0c8d6f6e-4b7c-4a55-9e39-3c7b1b5c2d11","resourceVersion":"196","creationTimestamp":"2025-01-01T00:00:00Z","labels":{"kubernetes.io/metadata.name":"default"},"annotations":{` +
	string(bytes.Repeat([]byte(`"bench.berth.dev/annotation":"0123456789012345678901234567890123456789",`), 11)) +
	`"bench.berth.dev/last":"0123456789012345678901234567890123456789"}},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}`)

type benchCluster struct {
	url   string
	caPEM []byte
}

// startBenchCluster serves /version (for the gateway's connection check)
// and the small object over TLS with fasthttp.
func startBenchCluster(b *testing.B) benchCluster {
	b.Helper()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		switch string(ctx.Path()) {
		case "/version":
			ctx.SetBodyString(`{"major":"1","minor":"31","gitVersion":"v1.31.14"}`)
		case "/api/v1/namespaces/default":
			ctx.Response.SetBodyRaw(benchClusterBody)
		default:
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			ctx.SetBodyString(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
		}
	}}
	ln, caPEM := tlstest.Listen(b)
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown() })
	return benchCluster{url: "https://" + ln.Addr().String(), caPEM: caPEM}
}
