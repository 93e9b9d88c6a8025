package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// bigConfigMaps creates n ConfigMaps of about size bytes each in namespace
// ns, the collection of issue 15.3's cost attacks (there, 600 of 100 KB).
func (e *e2eCluster) bigConfigMaps(t *testing.T, kc, ns string, n, size int) {
	t.Helper()
	e.mustKubectl(t, kc, "", "create", "namespace", ns)
	blob := strings.Repeat("a", size)
	// In batches: one request per object would be slow, one for all too
	// large for the API server's request limit.
	for from := 0; from < n; from += 10 {
		var b strings.Builder
		b.WriteString("apiVersion: v1\nkind: List\nitems:\n")
		for i := from; i < min(from+10, n); i++ {
			fmt.Fprintf(&b, "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: big-%03d, namespace: %s}\n  data: {blob: %s}\n", i, ns, blob)
		}
		e.mustKubectl(t, kc, b.String(), "create", "-f", "-")
	}
}

// metric returns the value of the exposition line that starts with
// series (name and labels), or -1 if there is none.
func (e *e2eCluster) metric(t *testing.T, series string) float64 {
	t.Helper()
	_, m := e.scrape(t, e.scraper)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	found := re.FindSubmatch(m)
	if found == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(found[1]), 64)
	if err != nil {
		t.Fatalf("metric %s: %v", series, err)
	}
	return v
}

// waitMetric waits (bounded, not a timing check) until series has value v.
func (e *e2eCluster) waitMetric(t *testing.T, series string, v float64) {
	t.Helper()
	got := -1.0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = e.metric(t, series); got == v {
			return
		}
	}
	t.Fatalf("%s is %v; want %v", series, got, v)
}

// Issue 15.3 and 24.4 through a real gateway and a real kube-apiserver:
// selector bounds, the memory budget for all lists, lists abandoned when
// their client leaves, watch spellings the API server takes for a watch,
// and near-miss warnings that kubectl prints.
func TestProxyListCostEndToEnd(t *testing.T) {
	const budget = 32 << 20
	e := startE2EWith(t, map[string]string{"BERTH_PROXY_LIST_MEMORY_BUDGET": strconv.Itoa(budget)})
	kc := e.kubeconfigFor(t, "admin", e.admin)
	// 60 ConfigMaps of 100 KB: 6 MB, one chunk of the proxy's 500.
	e.bigConfigMaps(t, kc, "costly", 60, 100<<10)
	const coll = "/proxy/clusters/e2e/api/v1/namespaces/costly/configmaps"
	get := func(q string) (int, string, http.Header) {
		status, body, hdr := e.call(t, "GET", coll+"?"+q, nil, bearer(e.admin))
		return status, string(body), hdr
	}

	t.Run("selector bounds", func(t *testing.T) {
		long := "data.blob~" + strings.Repeat("a", 999) + "b"
		if status, body, _ := get("pageSize=5&selector=" + long); status != 400 || !strings.Contains(body, "longer than 256 bytes") || strings.Contains(body, strings.Repeat("a", 100)) {
			t.Errorf("1 000-byte ~ value: %d %.300s", status, body)
		}
		terms := strings.TrimSuffix(strings.Repeat("metadata.name~big,", 17), ",")
		if status, body, _ := get("selector=" + terms); status != 400 || !strings.Contains(body, "at most 16") {
			t.Errorf("17 terms: %d %.300s", status, body)
		}
		// The hardest search the bounds allow still answers (15 values of
		// 255 bytes that almost match everywhere in 100 KB of "a").
		var vals []string
		for i := range 15 {
			vals = append(vals, strings.Repeat("a", 254)+string(rune('b'+i)))
		}
		if status, body, _ := get("pageSize=5&selector=data.blob~" + strings.Join(vals, "|")); status != 200 || !strings.Contains(body, `"total":0`) {
			t.Errorf("hostile selector within the bounds: %d %.300s", status, body)
		}
		if status, body, _ := get("pageSize=5&selector=data.blob~AAAA"); status != 200 || !strings.Contains(body, `"total":60`) {
			t.Errorf("case-insensitive ~: %d %.300s", status, body)
		}
	})

	t.Run("memory budget", func(t *testing.T) {
		// Each list holds its 6 MB chunk (an 8 MiB buffer, 12 MiB while
		// it grows) and its page: more lists than the budget holds run at
		// once, so some are told to retry.
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, body, hdr := get("pageSize=10&sortOrder=desc")
				mu.Lock()
				defer mu.Unlock()
				codes[status]++
				switch {
				case status == 200 && !strings.Contains(body, `"total":60`):
					t.Errorf("list: %.300s", body)
				case status == 429 && hdr.Get("Retry-After") == "":
					t.Errorf("429 without Retry-After")
				case status != 200 && status != 429:
					t.Errorf("status %d: %.300s", status, body)
				}
			}()
		}
		wg.Wait()
		if codes[200] == 0 {
			t.Errorf("no list succeeded: %v", codes)
		}
		e.waitMetric(t, "berth_proxy_list_memory_bytes", 0)
		peak := e.metric(t, "berth_proxy_list_memory_peak_bytes")
		if limit := e.metric(t, "berth_proxy_list_memory_budget_bytes"); limit != budget || peak > limit || peak < 6<<20 {
			t.Errorf("peak %v, budget %v: want one list's chunk counted and never past the budget", peak, limit)
		}
		// A 429 comes from the memory budget or from max_concurrent_lists;
		// the metric counts the first kind.
		busy := e.metric(t, `berth_proxy_lists_stopped_total{reason="memory_busy"}`)
		if busy < 0 || busy > float64(codes[429]) {
			t.Errorf("memory_busy %v for %d answers 429", busy, codes[429])
		}
		t.Logf("statuses %v, refused for memory %v, peak %v of %v", codes, busy, peak, float64(budget))
		// Alone, a list keeping all 60 items (6 MB, besides its buffer)
		// fits the budget.
		if status, body, _ := get("pageSize=60&sortName=metadata.name"); status != 200 {
			t.Errorf("a list within the budget: %d %.300s", status, body)
		}
	})

	t.Run("client gone", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.http, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s?pageSize=10&selector=data.blob~zzz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", coll, e.admin)
		conn.Close()
		e.waitMetric(t, `berth_proxy_lists_stopped_total{reason="client_gone"}`, 1)
		e.waitMetric(t, "berth_proxy_list_memory_bytes", 0)
		// The slot is free again.
		if status, body, _ := get("pageSize=1"); status != 200 {
			t.Errorf("list after the abandoned one: %d %.300s", status, body)
		}
	})

	t.Run("keep-alive over TLS", func(t *testing.T) {
		// Watching for the client to leave reads the TLS connection in
		// the background; the connection must serve the next requests
		// afterwards. Three lists on one HTTPS connection:
		reused := 0
		for i := range 3 {
			trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
				if ci.Reused {
					reused++
				}
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET",
				e.https+coll+"?pageSize=2&sortName=metadata.name&pageNum="+strconv.Itoa(i+1), nil)
			req.Header.Set("Authorization", "Bearer "+e.admin)
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf(`"big-%03d"`, 2*i); resp.StatusCode != 200 || !strings.Contains(string(body), want) {
				t.Fatalf("list %d over TLS: %d %.200s", i, resp.StatusCode, body)
			}
		}
		if reused < 2 {
			t.Errorf("%d of 2 later lists reused the connection", reused)
		}
	})

	t.Run("watch spellings", func(t *testing.T) {
		// With list parameters a watch is refused at once; four of them
		// (max_concurrent_lists) do not lock list queries.
		var wg sync.WaitGroup
		for _, w := range []string{"watch=yes", "watch=TRUE", "watch=", "watch"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if status, body, _ := get("pageSize=5&" + w); status != 400 || !strings.Contains(body, "watch") {
					t.Errorf("%s with pageSize: %d %.300s", w, status, body)
				}
			}()
		}
		wg.Wait()
		if status, body, _ := get("pageSize=1&selector=metadata.name=big-001"); status != 200 || !strings.Contains(body, `"total":1`) {
			t.Errorf("list after the watches: %d %.300s", status, body)
		}

		// Alone, watch=TRUE is a stream: counted, and ended when the
		// caller's access is withdrawn.
		e.createUser(t, e.admin, "wanda", "wanda-password-1234", "user")
		member := decode[struct{ ID string }](t, e.must(t, 201, "POST", "/api/v1/clusters/e2e/members",
			map[string]any{"user": "wanda", "role": "view"}, bearer(e.admin)))
		wanda := e.login(t, "wanda", "wanda-password-1234").AccessToken
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", e.http+"/proxy/clusters/e2e/api/v1/namespaces/costly/configmaps?watch=TRUE&resourceVersion=0&labelSelector=none%3Dnone", nil)
		req.Header.Set("Authorization", "Bearer "+wanda)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("watch=TRUE: %d %s", resp.StatusCode, body)
		}
		e.waitWatches(t, 1)
		ended := make(chan struct{})
		go func() {
			io.Copy(io.Discard, resp.Body)
			close(ended)
		}()
		e.must(t, 204, "DELETE", "/api/v1/clusters/e2e/members/"+member.ID, nil, bearer(e.admin))
		select {
		case <-ended:
		case <-time.After(20 * time.Second):
			t.Fatal("the watch=TRUE stream went on after its caller lost access")
		}
		e.waitWatches(t, 0)
	})

	t.Run("near-miss warnings", func(t *testing.T) {
		status, body, hdr := get("sortname=metadata.name&pagesize=2")
		if status != 200 || strings.Contains(body, `"total"`) || strings.Count(body, `"name":"big-`) != 60 {
			t.Errorf("near misses changed the list: %d %.200s", status, body)
		}
		want := []string{
			`299 - "unknown query parameter \"sortname\"; did you mean \"sortName\"?"`,
			`299 - "unknown query parameter \"pagesize\"; did you mean \"pageSize\"?"`,
		}
		if got := hdr.Values("Warning"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("Warning headers %q; want %q", got, want)
		}
		// kubectl prints them.
		out := e.mustKubectl(t, kc, "", "get", "--raw", "/proxy/clusters/e2e/api/v1/namespaces/costly/configmaps?pagesize=2&labelSelector=none%3Dnone")
		if !strings.Contains(out, `Warning: unknown query parameter "pagesize"; did you mean "pageSize"?`) {
			t.Errorf("kubectl did not print the warning:\n%.500s", out)
		}
	})
}

// The time budget ends a list's work with a 504 that names it. No list of
// 6 MB is fetched, filtered and sorted in 10ms.
func TestProxyListTimeBudgetEndToEnd(t *testing.T) {
	e := startE2EWith(t, map[string]string{"BERTH_PROXY_LIST_TIME_BUDGET": "10ms"})
	kc := e.kubeconfigFor(t, "admin", e.admin)
	e.bigConfigMaps(t, kc, "costly", 60, 100<<10)
	status, body, _ := e.call(t, "GET", "/proxy/clusters/e2e/api/v1/namespaces/costly/configmaps?pageSize=5&selector=data.blob~zzz", nil, bearer(e.admin))
	if status != 504 || !strings.Contains(string(body), "within the 10ms budget") {
		t.Errorf("list past its time budget: %d %.300s", status, body)
	}
	if v := e.metric(t, `berth_proxy_lists_stopped_total{reason="time_budget"}`); v != 1 {
		t.Errorf("time_budget stops: %v", v)
	}
	e.waitMetric(t, "berth_proxy_list_memory_bytes", 0)
	// A list without post-processing is not bound by it.
	if status, _, _ := e.call(t, "GET", "/proxy/clusters/e2e/api/v1/namespaces/costly/configmaps", nil, bearer(e.admin)); status != 200 {
		t.Errorf("plain list: %d", status)
	}
}
