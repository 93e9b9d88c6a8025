package proxy

import (
	"bufio"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// newFleetFront serves the fleet path for members dev and dev2 (both on
// b) and down (unreachable), as the gateway does.
func newFleetFront(t *testing.T, b *backend, opts Options) string {
	t.Helper()
	return newFleetFrontWith(t, b, opts, "")
}

// newFleetFrontWith is newFleetFront with one more member, hung, at
// hungURL when it is not "".
func newFleetFrontWith(t *testing.T, b *backend, opts Options, hungURL string) string {
	t.Helper()
	pool := NewPool(PoolOptions{DialTimeout: 2 * time.Second})
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Certificate().Raw})
	for _, c := range []Cluster{
		{Name: "dev", Server: b.URL, CAData: caPEM, Token: "t"},
		{Name: "dev2", Server: b.URL, CAData: caPEM, Token: "t"},
		{Name: "down", Server: "https://127.0.0.1:1", CAData: caPEM},
		{Name: "hung", Server: cmpOr(hungURL, "https://127.0.0.1:1"), CAData: caPEM},
	} {
		if err := pool.Set(c); err != nil {
			t.Fatal(err)
		}
	}
	opts.Pool = pool
	p := New(opts)
	var members []FleetMember
	names := []string{"dev", "dev2", "down"}
	if hungURL != "" {
		names = append(names, "hung")
	}
	for _, c := range names {
		members = append(members, FleetMember{Cluster: c, Identity: Identity{User: "berth:alice", StreamKey: "alice", StillAllowed: func() bool { return true }}})
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ft, err := ParseFleetTarget(ctx.RequestURI())
			if err != nil {
				WriteStatus(ctx, 400, err.Error())
				return
			}
			ms := members
			if who := string(ctx.Request.Header.Peek("X-Test-User")); who != "" {
				ms = slices.Clone(members)
				for i := range ms {
					ms[i].Identity.StreamKey = who
				}
			}
			p.ServeFleet(ctx, ft, ms)
		},
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, NoDefaultServerHeader: true,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// waitGoroutines fails t if the goroutines do not come back to baseline
// (+slack) within a bounded wait: a leak check, not a timing test.
func waitGoroutines(t *testing.T, baseline int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline+5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline+5 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines grew from %d to %d after %s:\n%s", baseline, n, what, buf[:runtime.Stack(buf, true)])
	}
}

// TestFleetWatchClientLeaves: a client that leaves a fleet watch (mid-
// event, or while every cluster is quiet) ends every cluster's watch and
// every goroutine the merge started.
func TestFleetWatchClientLeaves(t *testing.T) {
	b := newBackend(t)
	url := newFleetFront(t, b, Options{})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var baseline int
	for cycle := range 16 {
		if cycle == 1 {
			baseline = runtime.NumGoroutine()
		}
		resp, err := client.Get(url + "/proxy/fleet/api/v1/pods?watch=1&selector=metadata.name%3Dx")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Warning"), `\"down\"`) {
			t.Fatalf("cycle %d: %d, Warning %q", cycle, resp.StatusCode, resp.Header.Get("Warning"))
		}
		b.watchEvents <- "x"
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || !strings.Contains(line, `"berth.dev/cluster":"dev`) {
			t.Fatalf("cycle %d: %q %v", cycle, line, err)
		}
		resp.Body.Close()
		for range 2 { // both clusters' watches end
			select {
			case <-b.watchGone:
			case <-time.After(10 * time.Second):
				t.Fatalf("cycle %d: a cluster's watch outlived the client", cycle)
			}
		}
	}
	waitGoroutines(t, baseline, "15 fleet watches the client left")
}

// TestFleetListClientLeaves: a client that leaves while a fleet list's
// clusters are sending their lists stops every fetch (the clusters see
// Berth hang up); nothing stays behind.
func TestFleetListClientLeaves(t *testing.T) {
	lb := newListBackend(t, 10)
	url := newFleetFront(t, lb.backend, Options{RequestTimeout: time.Minute, ListTimeBudget: time.Minute, FleetClusterTime: time.Minute})
	var baseline int
	for cycle := range 8 {
		if cycle == 1 {
			baseline = runtime.NumGoroutine()
		}
		conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte("GET /proxy/fleet/api/v1/namespaces/stall/pods HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		for range 2 { // dev's and dev2's lists stall half-way
			select {
			case <-lb.stallHit:
			case <-time.After(10 * time.Second):
				t.Fatalf("cycle %d: the list never reached both clusters", cycle)
			}
		}
		conn.Close()
		for range 2 {
			select {
			case <-lb.stallGone:
			case <-time.After(10 * time.Second):
				t.Fatalf("cycle %d: a cluster's list outlived the client", cycle)
			}
		}
	}
	waitGoroutines(t, baseline, "7 fleet lists the client left")
}

// TestListSlotsPerUser: one user cannot take every list slot
// (proxy.max_concurrent_lists) with slow lists, fleet lists above all,
// and starve everyone else's lists: they get at most half of them.
func TestListSlotsPerUser(t *testing.T) {
	lb := newListBackend(t, 10)
	url := newFleetFront(t, lb.backend, Options{MaxConcurrentLists: 4, RequestTimeout: time.Minute, ListTimeBudget: time.Minute, FleetClusterTime: time.Minute})
	open := func(who string) net.Conn {
		conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.Write([]byte("GET /proxy/fleet/api/v1/namespaces/stall/pods HTTP/1.1\r\nHost: x\r\nX-Test-User: " + who + "\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	stalled := func(what string) {
		for range 2 { // both clusters
			select {
			case <-lb.stallHit:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s never reached the clusters", what)
			}
		}
	}
	open("alice")
	stalled("alice's first list")
	open("alice")
	stalled("alice's second list")
	third := open("alice")
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("alice's third list: %d, want 429", resp.StatusCode)
	}
	open("bob")
	stalled("bob's list, while alice holds half the slots,")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestFleetWatchHungCluster: a cluster that takes the watch's connection
// and never answers does not hold a fleet watch, or the stream slots it
// took on every other cluster, for as long as it hangs: after
// FleetClusterTime it is left out (504, named in a Warning) and the rest
// stream; and its stuck request gives its slot back when it ends.
func TestFleetWatchHungCluster(t *testing.T) {
	release := make(chan struct{})
	ended := make(chan struct{}, 16)
	hung := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { ended <- struct{}{} }()
		select { // takes the request, answers nothing
		case <-release:
		case <-r.Context().Done():
		}
	}))
	hung.EnableHTTP2 = false
	hung.StartTLS() // httptest's one certificate: the pool's CA trusts it
	t.Cleanup(hung.Close)
	b := newBackend(t)
	url := newFleetFrontWith(t, b, Options{FleetClusterTime: 300 * time.Millisecond}, hung.URL)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url + "/proxy/fleet/api/v1/pods?watch=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(strings.Join(resp.Header.Values("Warning"), " "), `\"hung\" left out (504)`) {
		t.Fatalf("%d, Warning %q", resp.StatusCode, resp.Header.Values("Warning"))
	}
	b.watchEvents <- "x"
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.Contains(line, `"name":"x"`) {
		t.Fatalf("the other clusters do not stream: %q %v", line, err)
	}
	resp.Body.Close()
	for range 2 {
		<-b.watchGone
	}
	close(release) // the stuck request ends now
	<-ended
}

// TestFleetListLeftBeforeHeaders: a client that leaves a fleet list while
// a cluster has not even sent its response headers gives the list slot
// back then, not when that cluster answers or its FleetClusterTime is spent.
func TestFleetListLeftBeforeHeaders(t *testing.T) {
	b := newBackend(t)
	t.Cleanup(func() { close(b.listGate) })
	url := newFleetFront(t, b, Options{MaxConcurrentLists: 1, FleetClusterTime: time.Minute, RequestTimeout: time.Minute, ListTimeBudget: time.Minute})
	list := func(who, path string) int {
		req, _ := http.NewRequest("GET", url+path, nil)
		req.Header.Set("X-Test-User", who)
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("GET /proxy/fleet/api/v1/namespaces/slow/pods HTTP/1.1\r\nHost: x\r\nX-Test-User: alice\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Alice's list holds the one slot once it reaches a cluster (the slot
	// is taken before any fetch); bob's list is refused while it does.
	select {
	case <-b.slowArrived:
	case <-time.After(10 * time.Second):
		t.Fatal("alice's list never reached the clusters")
	}
	if code := list("bob", "/proxy/fleet/api/v1/pods?pageSize=1"); code != http.StatusTooManyRequests {
		t.Fatalf("bob's list while alice's holds the one slot: %d, want 429", code)
	}
	// Bounded wait: after she leaves, until the slot is free again.
	conn.Close()
	for i := 0; list("bob", "/proxy/fleet/api/v1/pods?pageSize=1") != http.StatusOK; i++ {
		if i == 200 {
			t.Fatal("the slot of a list whose client left stays taken while a cluster has not answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
