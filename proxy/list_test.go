package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// listBackend is a real HTTPS server standing in for a cluster in the
// tests of list costs: a collection of about-1 KB pods it serves in chunks
// (the chunk after the first can be held back on a gate), a list that
// stalls half-way until its client leaves, and a watch that follows the
// API server's reading of watch=.
type listBackend struct {
	*backend
	pods int
	// gate, when set, holds back every chunk but the first until closed.
	gate chan struct{}
	// gated gets a value when a request waits on gate.
	gated chan struct{}
	// stallHit and stallGone report the stalled list's request arriving
	// and its client (the proxy) going away.
	stallHit, stallGone chan struct{}
}

func newListBackend(t *testing.T, pods int) *listBackend {
	lb := &listBackend{pods: pods, gated: make(chan struct{}, 16), stallHit: make(chan struct{}, 16), stallGone: make(chan struct{}, 16)}
	pad := strings.Repeat("x", 1000)
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/namespaces/big/pods", func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		from, _ := strconv.Atoi(r.URL.Query().Get("continue"))
		if from > 0 && lb.gate != nil {
			lb.gated <- struct{}{}
			<-lb.gate
		}
		to := lb.pods
		if limit > 0 && from+limit < to {
			to = from + limit
		}
		next := ""
		if to < lb.pods {
			next = strconv.Itoa(to)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"kind":"PodList","apiVersion":"v1","metadata":{"continue":%q},"items":[`, next)
		for i := from; i < to; i++ {
			if i > from {
				io.WriteString(w, ",")
			}
			fmt.Fprintf(w, `{"metadata":{"name":"pod-%05d","namespace":"big","annotations":{"pad":%q}}}`, i, pad)
		}
		io.WriteString(w, "]}")
	})
	mux.HandleFunc("/api/v1/namespaces/stall/pods", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[`)
		w.(http.Flusher).Flush()
		lb.stallHit <- struct{}{}
		<-r.Context().Done()
		lb.stallGone <- struct{}{}
	})
	mux.HandleFunc("/api/v1/namespaces/w/pods", func(w http.ResponseWriter, r *http.Request) {
		// The API server's rule: any value but 0 and false is a watch.
		if v, ok := r.URL.Query()["watch"]; ok && v[0] != "0" && !strings.EqualFold(v[0], "false") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"a"}}]}`)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = false
	srv.StartTLS()
	t.Cleanup(srv.Close)
	lb.backend = &backend{Server: srv}
	return lb
}

func getStatus(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// waitFor polls cond (bounded; not a timing check).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

func TestIsStreamFollowsTheAPIServer(t *testing.T) {
	for q, want := range map[string]bool{
		"":                      false,
		"watch=1":               true,
		"watch=true":            true,
		"watch=TRUE":            true,
		"watch=yes":             true,
		"watch=f":               true, // only 0 and false are false
		"watch=":                true,
		"watch":                 true,
		"watch=0":               false,
		"watch=false":           false,
		"watch=FaLsE":           false,
		"watch=false&watch=1":   false, // the first value counts
		"wat%63h=1":             true,  // decoded as the API server decodes it
		"follow=True":           true,
		"follow=0":              false,
		"limit=5&labelSelector": false,
		"Watch=1":               false, // names are case-sensitive
	} {
		if got := isStream(Target{Path: "/api/v1/pods", Query: q}); got != want {
			t.Errorf("isStream(%q) = %v; want %v", q, got, want)
		}
	}
	for _, path := range []string{"/api/v1/watch/pods", "/api/v1/%77atch/pods", "/apis/apps/v1/w%61tch/deployments"} {
		if !isStream(Target{Path: path}) {
			t.Errorf("legacy watch path %s", path)
		}
	}
}

// watch=yes, watch=TRUE and an empty watch= open watches on the API
// server: with list parameters they are refused at once (before, they were
// fetched as a list whose first chunk was a watch, holding a list slot
// until the request timeout); alone they are streams Berth tracks and ends
// when access is withdrawn.
func TestWatchSpellingsAreStreams(t *testing.T) {
	lb := newListBackend(t, 10)
	f := newFront(t, lb.backend, Options{MaxConcurrentLists: 1, RequestTimeout: 5 * time.Second})
	base := f.url + "/proxy/clusters/dev/api/v1/namespaces/w/pods?"
	for _, w := range []string{"watch=yes", "watch=TRUE", "watch=", "watch"} {
		code, _, body := getStatus(t, base+"pageSize=5&"+w)
		if code != 400 || !strings.Contains(body, "watch") {
			t.Errorf("%s with pageSize: %d %s; want 400", w, code, body)
		}
	}
	// The one list slot is free: a list query goes through.
	if code, _, body := getStatus(t, base+"pageSize=5&watch=false"); code != 200 || !strings.Contains(body, `"total":1`) {
		t.Errorf("list after the refused watches: %d %s", code, body)
	}

	u := f.proxy.Pool().get("dev")
	for _, w := range []string{"watch=yes", "watch=TRUE", "watch="} {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
		resp, err := client.Get(base + w)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, w+" tracked as a stream", func() bool { return len(u.streams()) == 1 })
		f.revoked.Store(true)
		if n := f.proxy.Pool().Recheck(); n != 1 {
			t.Errorf("%s: Recheck ended %d streams; want 1", w, n)
		}
		resp.Body.Close()
		f.revoked.Store(false)
		waitFor(t, w+" untracked", func() bool { return len(u.streams()) == 0 })
	}
}

// A list whose client leaves stops at once: the cluster's response is
// abandoned, the list slot and every budgeted byte are given back.
func TestListStopsWhenTheClientLeaves(t *testing.T) {
	lb := newListBackend(t, 10)
	// Long enough that only the client's leaving can end the list here.
	f := newFront(t, lb.backend, Options{MaxConcurrentLists: 1, RequestTimeout: time.Minute, ListTimeBudget: time.Minute})
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /proxy/clusters/dev/api/v1/namespaces/stall/pods?pageSize=5 HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-lb.stallHit:
	case <-time.After(10 * time.Second):
		t.Fatal("the list never reached the cluster")
	}
	conn.Close()
	select {
	case <-lb.stallGone:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy went on reading the list after its client left")
	}
	waitFor(t, "the list slot freed", func() bool { return len(f.proxy.lists) == 0 })
	waitFor(t, "the list's bytes given back", func() bool { return f.proxy.ListMemory().Held == 0 })
	if st := f.proxy.ListStats(); st.ClientGone != 1 {
		t.Errorf("lists stopped because their client left: %d; want 1", st.ClientGone)
	}
}

// A keep-alive connection serves another request after a list: watching
// for the client to leave does not disturb it.
func TestListKeepsTheConnection(t *testing.T) {
	lb := newListBackend(t, 30)
	f := newFront(t, lb.backend, Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i := range 3 {
		fmt.Fprintf(conn, "GET /proxy/clusters/dev/api/v1/namespaces/big/pods?pageSize=2&pageNum=%d HTTP/1.1\r\nHost: x\r\n\r\n", i+1)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the same connection: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), fmt.Sprintf(`"pod-%05d"`, 2*i)) || resp.Close {
			t.Fatalf("request %d: %d close=%v %.200s", i, resp.StatusCode, resp.Close, body)
		}
	}
}

// The time budget ends a list that takes too long with a 504 saying so.
func TestListTimeBudget(t *testing.T) {
	lb := newListBackend(t, 10)
	f := newFront(t, lb.backend, Options{RequestTimeout: 10 * time.Second, ListTimeBudget: 100 * time.Millisecond})
	code, _, body := getStatus(t, f.url+"/proxy/clusters/dev/api/v1/namespaces/stall/pods?pageSize=5")
	if code != 504 || !strings.Contains(body, "within the 100ms budget") || !strings.Contains(body, `"reason":"Timeout"`) {
		t.Errorf("stalled list: %d %s; want 504 naming the budget", code, body)
	}
	select {
	case <-lb.stallGone:
	case <-time.After(10 * time.Second):
		t.Fatal("the cluster's response was not abandoned")
	}
	if st := f.proxy.ListStats(); st.TimedOut != 1 {
		t.Errorf("lists stopped by the time budget: %d; want 1", st.TimedOut)
	}
}

// The memory budget is for all lists together: while one list holds most
// of it, another is refused with 429 and Retry-After, and succeeds once
// the first is done. A list that alone needs more than the budget is 413.
// The accounting never exceeds the budget and returns to zero.
func TestListMemoryBudget(t *testing.T) {
	// 1 000 pods of about 1 KB, in chunks of 700: the chunk buffer grows
	// to 1 MiB (a list holds 1.5 MiB while it grows from 512 KiB).
	lb := newListBackend(t, 1000)
	f := newFront(t, lb.backend, Options{ListChunkSize: 700, MaxConcurrentLists: 4, ListMemoryBudget: 2 << 20})
	url := f.url + "/proxy/clusters/dev/api/v1/namespaces/big/pods?pageSize=10"

	gate := make(chan struct{})
	lb.gate = gate
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // a failing test must not leave the handler waiting
	first := make(chan int, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			first <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-lb.gated // the first list holds its first chunk's buffer
	held := f.proxy.ListMemory().Held
	if held < 1<<20 {
		t.Fatalf("the first list holds %d bytes; want its 1 MiB buffer counted", held)
	}
	code, hdr, body := getStatus(t, url)
	if code != 429 || hdr.Get("Retry-After") != "1" || !strings.Contains(body, "memory") {
		t.Errorf("second list while the first holds the budget: %d Retry-After=%q %s", code, hdr.Get("Retry-After"), body)
	}
	release()
	if c := <-first; c != 200 {
		t.Errorf("first list: %d", c)
	}
	waitFor(t, "the first list's bytes given back", func() bool { return f.proxy.ListMemory().Held == 0 })
	if code, _, body := getStatus(t, url); code != 200 || !strings.Contains(body, `"total":1000`) {
		t.Errorf("second list, retried: %d %.200s", code, body)
	}
	// Keeping every item (the last page) needs more than the budget.
	if code, _, body := getStatus(t, f.url+"/proxy/clusters/dev/api/v1/namespaces/big/pods?pageSize=1000"); code != 413 || !strings.Contains(body, "memory") {
		t.Errorf("list larger than the budget: %d %.200s", code, body)
	}
	waitFor(t, "every byte given back", func() bool { return f.proxy.ListMemory().Held == 0 })
	m := f.proxy.ListMemory()
	if m.Peak > m.Limit || m.Peak < 1<<20 {
		t.Errorf("peak %d, limit %d: want at least one buffer counted and never over the limit", m.Peak, m.Limit)
	}
	if st := f.proxy.ListStats(); st.Refused != 1 || st.OverBudget != 1 {
		t.Errorf("lists refused for memory: %+v; want 1 refused (429), 1 over budget (413)", st)
	}
}

// Many lists at once never take the accounting past the budget, whatever
// their interleaving; each answer is 200 or 429, and every byte comes back.
func TestListMemoryBudgetUnderLoad(t *testing.T) {
	lb := newListBackend(t, 1000)
	f := newFront(t, lb.backend, Options{ListChunkSize: 300, MaxConcurrentLists: 8, ListMemoryBudget: 2 << 20})
	var wg sync.WaitGroup
	codes := make(chan int, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, body := getStatus(t, fmt.Sprintf("%s/proxy/clusters/dev/api/v1/namespaces/big/pods?pageSize=50&pageNum=%d", f.url, 1+i%4))
			if code == 200 && !strings.Contains(body, `"total":1000`) {
				t.Errorf("list %d: %.200s", i, body)
			}
			codes <- code
		}()
	}
	wg.Wait()
	close(codes)
	ok := 0
	for c := range codes {
		switch c {
		case 200:
			ok++
		case 429:
		default:
			t.Errorf("status %d; want 200 or 429", c)
		}
	}
	if ok == 0 {
		t.Error("no list succeeded")
	}
	waitFor(t, "every byte given back", func() bool { return f.proxy.ListMemory().Held == 0 })
	if m := f.proxy.ListMemory(); m.Peak > m.Limit || m.Peak == 0 {
		t.Errorf("peak %d with limit %d", m.Peak, m.Limit)
	}
}

// A near miss of a list parameter is passed on, and answered with a
// Kubernetes warning naming the parameter meant; exact names, the API
// server's own parameters and unrelated names get none.
func TestNearMissWarnings(t *testing.T) {
	lb := newListBackend(t, 3)
	f := newFront(t, lb.backend, Options{})
	base := f.url + "/proxy/clusters/dev/api/v1/namespaces/big/pods?"
	for q, want := range map[string][]string{
		"sortname=metadata.name":      {`299 - "unknown query parameter \"sortname\"; did you mean \"sortName\"?"`},
		"pagesize=2&page_num=1":       {`299 - "unknown query parameter \"pagesize\"; did you mean \"pageSize\"?"`, `299 - "unknown query parameter \"page_num\"; did you mean \"pageNum\"?"`},
		"selecter=a%3Db":              {`299 - "unknown query parameter \"selecter\"; did you mean \"selector\"?"`},
		"SortOrder=desc&pageSize=2":   {`299 - "unknown query parameter \"SortOrder\"; did you mean \"sortOrder\"?"`},
		"pageSize=2&sortName=x":       nil,
		"limit=2&labelSelector=a%3Db": nil,
		"timeout=5s&pretty=true":      nil,
		"sort=x&name=y":               nil,
	} {
		code, hdr, body := getStatus(t, base+q)
		if code != 200 {
			t.Errorf("%s: %d %.200s", q, code, body)
		}
		got := hdr.Values("Warning")
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: Warning %q; want %q", q, got, want)
		}
	}
	// The near miss does not switch post-processing on: the whole list.
	if _, _, body := getStatus(t, base+"pagesize=1"); strings.Contains(body, `"total"`) || strings.Count(body, `"name":"pod-`) != 3 {
		t.Errorf("pagesize=1 was taken for pageSize: %.300s", body)
	}
}

func TestNearMiss(t *testing.T) {
	for name, want := range map[string]string{
		"sortname": "sortName", "SORTNAME": "sortName", "sort_name": "sortName", "sort-name": "sortName",
		"pagesize": "pageSize", "page_size": "pageSize", "pageSiz": "pageSize", "pagesizee": "pageSize",
		"pagenum": "pageNum", "page_num": "pageNum", "pagenumm": "pageNum",
		"selecter": "selector", "Selector": "selector", "selectors": "selector",
		"sortorder": "sortOrder", "sortOder": "sortOrder", "sortfunc": "sortFunc", "sortFnc": "sortFunc",
		// Not near misses: exact names, the API server's own, unrelated.
		"pageSize": "", "selector": "", "watch": "", "limit": "", "continue": "", "ports": "", "path": "",
		"labelSelector": "", "fieldSelector": "", "sort": "", "page": "", "": "", "size": "",
		strings.Repeat("pagesize", 3): "",
	} {
		if got := nearMiss(name); got != want {
			t.Errorf("nearMiss(%q) = %q; want %q", name, got, want)
		}
	}
}

// A list query with a body is refused before it reaches the cluster: the
// list is fetched in several requests, and the body would have nowhere to go.
func TestListQueryRefusesABody(t *testing.T) {
	lb := newListBackend(t, 10)
	f := newFront(t, lb.backend, Options{})
	for _, framing := range []string{"Content-Length: 2\r\n\r\n{}", "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /proxy/clusters/dev/api/v1/namespaces/big/pods?pageSize=2 HTTP/1.1\r\nHost: x\r\n%s", framing)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), "takes no request body") {
			t.Errorf("%q: %d %s", framing, resp.StatusCode, body)
		}
	}
}
