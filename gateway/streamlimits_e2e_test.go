package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// One member floods a cluster with watches and with request bodies that
// trickle in: the watches past the member's limit get 429 with
// Retry-After (and are counted), the slow bodies are cut with 408, and
// another member's kubectl get through Berth succeeds every time
// throughout. The ordinary pool has four connections, fewer than the open
// watches (bob's three and dave's three) and the slow bodies, so streams
// or slow bodies that held its connections would show.
func TestStreamFloodLeavesClusterReachable(t *testing.T) {
	e := startE2EWith(t, map[string]string{
		"BERTH_PROXY_MAX_CONNS_PER_CLUSTER":   "4",
		"BERTH_PROXY_MAX_STREAMS_PER_USER":    "3",
		"BERTH_PROXY_MAX_STREAMS_PER_CLUSTER": "8",
		"BERTH_LIMITS_BODY_READ_WINDOW":       "2s",
	})
	for _, u := range []string{"bob", "carol", "dave"} {
		e.createUser(t, e.admin, u, u+"-password-12345", "user")
		e.must(t, 201, "POST", "/api/v1/clusters/e2e/members", map[string]any{"user": u, "role": "view"}, bearer(e.admin))
	}
	bob := e.login(t, "bob", "bob-password-12345").AccessToken
	dave := e.login(t, "dave", "dave-password-12345").AccessToken
	e.secret(bob, dave)
	carol := e.kubeconfigFor(t, "carol", e.login(t, "carol", "carol-password-12345").AccessToken)
	carolGets := func(when string) {
		t.Helper()
		if out, err := e.kubectl(t, carol, "", "get", "configmaps", "-n", "default", "-o", "name"); err != nil {
			t.Fatalf("carol's get %s: %v %s", when, err, out)
		}
	}
	carolGets("before the flood")

	// Bob's watches: three open, the next three refused; then dave's
	// three: six open watches, more than the ordinary pool holds.
	watchURL := e.http + "/proxy/clusters/e2e/api/v1/namespaces/default/configmaps?watch=1"
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var refused int
	for i := range 9 {
		who := bob
		if i >= 6 {
			who = dave
		}
		req, _ := http.NewRequest("GET", watchURL, nil)
		req.Header.Set("Authorization", "Bearer "+who)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		switch {
		case (i < 3 || i >= 6) && resp.StatusCode == 200:
		case i >= 3 && i < 6 && resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "":
			body, _ := io.ReadAll(resp.Body)
			if !strings.Contains(string(body), `"reason":"TooManyRequests"`) {
				t.Errorf("refused watch: %s", body)
			}
			refused++
		default:
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			t.Fatalf("watch %d: %d %s", i, resp.StatusCode, body)
		}
		carolGets(fmt.Sprintf("after watch %d", i))
	}
	e.waitWatches(t, 6)

	// Bob's slow bodies: more than the ordinary pool's connections, each
	// a byte every half second.
	const slow = 6
	u, _ := url.Parse(e.http)
	codes := make(chan int, slow)
	var stop sync.WaitGroup
	quit := make(chan struct{})
	for range slow {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "POST /proxy/clusters/e2e/api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n", u.Host, bob)
		stop.Add(1)
		go func() {
			defer stop.Done()
			for {
				select {
				case <-quit:
					return
				case <-time.After(500 * time.Millisecond):
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		go func() {
			conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for i := range 4 {
		carolGets(fmt.Sprintf("while bob's bodies trickle (%d)", i))
	}
	for range slow {
		if code := <-codes; code != 408 {
			t.Errorf("a slow body: %d, want 408", code)
		}
	}
	close(quit)
	stop.Wait()
	carolGets("after the flood")

	// A malformed chunked body is the client's fault: 400, counted as a
	// 400, not logged as the cluster's failure.
	resp, body := rawRequest(t, e.http, "POST /proxy/clusters/e2e/api/v1/namespaces/default/configmaps HTTP/1.1\nAuthorization: Bearer "+bob+
		"\nContent-Type: application/json\nTransfer-Encoding: chunked", "zz\r\n{}\r\n0\r\n\r\n")
	if resp.StatusCode != 400 || !strings.Contains(body, `"reason":"BadRequest"`) {
		t.Errorf("malformed chunked body: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(e.logs.String(), "proxy upstream error") {
		t.Errorf("a client's body failure was logged as the cluster's")
	}

	_, m := e.scrape(t, e.scraper)
	for _, want := range []string{
		`berth_proxy_streams_refused_total{cluster="e2e",kind="watch",limit="principal"} 3`,
		`berth_proxy_requests_total{cluster="e2e",code="408",method="POST"} 6`,
		`berth_proxy_requests_total{cluster="e2e",code="400",method="POST"} 1`,
	} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if refused != 3 {
		t.Errorf("refused %d watches, want 3", refused)
	}
	// Nothing was created by the cut bodies.
	if out := e.mustKubectl(t, carol, "", "get", "configmaps", "-n", "default", "-o", "name"); strings.Count(out, "configmap/") > 1 {
		t.Errorf("configmaps after the cut bodies: %s", out)
	}
}

// After the API server restarts, Berth's pooled connections to it are
// dead; the first request through Berth must still succeed (sent again
// once on a fresh connection), not answer that the cluster is unreachable.
func TestFirstRequestAfterAPIServerRestart(t *testing.T) {
	e := startE2E(t)
	akc := e.kubeconfigFor(t, "admin", e.admin)
	for i := range 2 {
		// Several connections in the pool: kubectl runs a few requests.
		e.mustKubectl(t, akc, "", "get", "namespaces", "-o", "name")
		if err := e.env.RestartAPIServer(context.Background()); err != nil {
			t.Fatal(err)
		}
		status, body, _ := e.call(t, "GET", "/proxy/clusters/e2e/api/v1/namespaces/default", nil, bearer(e.admin))
		if status != 200 {
			t.Fatalf("first request after restart %d: %d %s", i, status, body)
		}
		if out := e.mustKubectl(t, akc, "", "get", "namespace", "default", "-o", "name"); strings.TrimSpace(out) != "namespace/default" {
			t.Fatalf("kubectl after restart %d: %s", i, out)
		}
	}
}

// When Berth ends a watch because access was withdrawn, kubectl get -w
// prints why (the ERROR event's Status: reason and message) instead of
// stopping without a word: 401 Unauthorized when the credential no
// longer works, 403 Forbidden when the membership is gone. (kubectl 1.31
// still exits 0: get --watch ignores the error it prints.)
func TestWithdrawnWatchTellsKubectlWhy(t *testing.T) {
	e := startE2EWith(t, map[string]string{"BERTH_PROXY_STREAM_RECHECK_INTERVAL": "1h"})
	akc := e.kubeconfigFor(t, "admin", e.admin)
	e.mustKubectl(t, akc, "", "create", "namespace", "watched")
	e.createUser(t, e.admin, "bob", "bob-password-12345", "user")
	member := decode[struct{ ID string }](t, e.must(t, 201, "POST", "/api/v1/clusters/e2e/members",
		map[string]any{"user": "bob", "role": "view"}, bearer(e.admin))).ID
	bob := e.login(t, "bob", "bob-password-12345").AccessToken
	e.secret(bob)

	watch := func(withdraw func(), want ...string) {
		t.Helper()
		kc := e.kubeconfigFor(t, "bob", bob)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := e.kubectlCmd(ctx, kc, "-n", "watched", "get", "configmaps", "-w")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		e.waitWatches(t, 1)
		withdraw()
		if err := cmd.Wait(); ctx.Err() != nil {
			t.Fatalf("the watch went on after access was withdrawn: %v %s", err, out.String())
		}
		e.waitWatches(t, 0)
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("kubectl printed %q, want it to say %q", out.String(), w)
			}
		}
	}
	watch(func() {
		keys := decode[struct{ Items []struct{ ID string } }](t, e.must(t, 200, "GET", "/api/v1/auth/api-keys", nil, bearer(bob)))
		e.must(t, 204, "DELETE", "/api/v1/auth/api-keys/"+keys.Items[0].ID, nil, bearer(bob))
	}, "Unauthorized", `access to cluster "e2e" was withdrawn: credential no longer valid`)
	watch(func() {
		e.must(t, 204, "DELETE", "/api/v1/clusters/e2e/members/"+member, nil, bearer(e.admin))
	}, "Forbidden", `access to cluster "e2e" was withdrawn: no longer reaches the cluster`)
}
