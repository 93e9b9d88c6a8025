package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
)

// kubeEnv is the benchmark's control plane.
type kubeEnv struct {
	*kubeenv.Env
}

// watchResult compares many concurrent watches opened directly on the
// kube-apiserver and through Berth.
type watchResult struct {
	Watches int `json:"watches"`
	// Per path ("direct", "berth"): time from sending the watch request to
	// its first event (the synthetic ADDED of the namespace's one
	// configmap), over every watch, opened one after another.
	FirstEvent map[string]durations `json:"first_event"`
	// Per path: time from the start of the create call of a configmap to
	// its ADDED event on each open watch, over every watch and pings.
	Fanout map[string]durations `json:"fanout"`
	// Berth's memory with no watch, with all open, and after they closed;
	// after a forced GC in each case.
	MemBefore, MemOpen, MemAfter memStats       `json:"-"`
	RSSBefore, RSSOpen, RSSAfter int64          `json:"-"`
	Mem                          map[string]any `json:"memory"`
	// ReleasedAfter is how long Berth took, once the clients closed their
	// watches, to be back to its goroutine count before them; 0 if it was
	// not within 30 s.
	ReleasedAfter time.Duration `json:"released_after"`
	Loads         []float64     `json:"load_averages"`
}

// durations summarises a sample.
type durations struct {
	N             int           `json:"n"`
	P50, P99, Max time.Duration `json:"-"`
	P50ms         float64       `json:"p50_ms"`
	P99ms         float64       `json:"p99_ms"`
	Maxms         float64       `json:"max_ms"`
}

func summarise(v []time.Duration) durations {
	if len(v) == 0 {
		return durations{}
	}
	s := append([]time.Duration(nil), v...)
	slices.Sort(s)
	pick := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	d := durations{N: len(s), P50: pick(0.50), P99: pick(0.99), Max: s[len(s)-1]}
	d.P50ms, d.P99ms, d.Maxms = ms(d.P50), ms(d.P99), ms(d.Max)
	return d
}

// watcher is one open watch and the events it saw.
type watcher struct {
	body  io.ReadCloser
	pings []atomic.Int64 // receive time (UnixNano) of ping i, 0 until seen
}

const pings = 3

// watchCases opens o.watches watches directly, measures, closes them, then
// does the same through Berth with Berth's memory read around it.
func watchCases(ctx context.Context, o options, b *berth, kube *kubeEnv) (*watchResult, error) {
	res := &watchResult{Watches: o.watches, FirstEvent: map[string]durations{}, Fanout: map[string]durations{}}
	direct, err := trustingClient(kube.CAData)
	if err != nil {
		return nil, err
	}
	direct.Timeout = 0 // watches last
	bc := *b.client
	bc.Timeout = 0
	const path = "/api/v1/namespaces/bench-watch/configmaps?watch=1&timeoutSeconds=1800"
	paths := []struct {
		name, url, token string
		client           *http.Client
	}{
		{"direct", kube.Server + path, kube.AdminToken, direct},
		{"berth", "https://" + b.addrs.HTTPS + "/proxy/clusters/kube" + path, b.token, &bc},
	}
	ping := 0
	for _, p := range paths {
		if p.name == "berth" {
			res.MemBefore, res.RSSBefore, err = b.mem(ctx)
			if err != nil {
				return nil, err
			}
		}
		res.Loads = append(res.Loads, loadAvg())
		logf("opening %d watches (%s)", o.watches, p.name)
		ws, first, err := openWatches(ctx, p.client, p.url, p.token, o.watches)
		if err != nil {
			closeWatches(ws)
			return nil, fmt.Errorf("%s watches: %w", p.name, err)
		}
		res.FirstEvent[p.name] = summarise(first)
		if p.name == "berth" {
			res.MemOpen, res.RSSOpen, err = b.mem(ctx)
			if err == nil {
				err = b.saveDebug(ctx, "/debug/pprof/heap", filepath.Join(o.out, "berth-heap-watches.pprof"))
			}
			if err != nil {
				closeWatches(ws)
				return nil, err
			}
		}
		var fan []time.Duration
		for range pings {
			lat, err := pingWatches(ctx, direct, kube, ws, ping)
			if err != nil {
				closeWatches(ws)
				return nil, fmt.Errorf("%s fan-out: %w", p.name, err)
			}
			ping++
			fan = append(fan, lat...)
		}
		res.Fanout[p.name] = summarise(fan)
		logf("%s: first event p50 %.2f ms p99 %.2f ms; fan-out p50 %.2f ms p99 %.2f ms", p.name,
			res.FirstEvent[p.name].P50ms, res.FirstEvent[p.name].P99ms, res.Fanout[p.name].P50ms, res.Fanout[p.name].P99ms)
		closeWatches(ws)
	}
	// Berth notices a closed client on its connection and ends the
	// upstream watch; wait up to 30 s for its goroutines to go, and keep a
	// goroutine dump if they do not.
	closed := time.Now()
	for range 150 {
		m, _, err := b.mem(ctx)
		if err == nil && m.Goroutines <= res.MemBefore.Goroutines+5 {
			res.ReleasedAfter = time.Since(closed)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.MemAfter, res.RSSAfter, err = b.mem(ctx)
	if err != nil {
		return nil, err
	}
	if res.ReleasedAfter == 0 {
		logf("berth still has %d goroutines (%d before the watches) 30 s after they closed", res.MemAfter.Goroutines, res.MemBefore.Goroutines)
		if err := b.saveDebug(ctx, "/debug/pprof/goroutine?debug=1", filepath.Join(o.out, "berth-goroutines-after-watches.txt")); err != nil {
			return nil, err
		}
	}
	n := float64(o.watches)
	per := func(open, before uint64) float64 { return (float64(open) - float64(before)) / n }
	res.Mem = map[string]any{
		"heap_live_per_watch_bytes":     per(res.MemOpen.HeapLive, res.MemBefore.HeapLive),
		"stacks_per_watch_bytes":        per(res.MemOpen.Stacks, res.MemBefore.Stacks),
		"runtime_total_per_watch_bytes": per(res.MemOpen.Total, res.MemBefore.Total),
		"rss_per_watch_bytes":           (float64(res.RSSOpen) - float64(res.RSSBefore)) / n,
		"goroutines_per_watch":          (float64(res.MemOpen.Goroutines) - float64(res.MemBefore.Goroutines)) / n,
		"before":                        res.MemBefore, "open": res.MemOpen, "after": res.MemAfter,
		"rss_before": res.RSSBefore, "rss_open": res.RSSOpen, "rss_after": res.RSSAfter,
	}
	return res, nil
}

// openWatches opens n watches one after another and returns them with each
// one's time to its first event.
func openWatches(ctx context.Context, c *http.Client, url, token string, n int) ([]*watcher, []time.Duration, error) {
	var ws []*watcher
	var first []time.Duration
	for range n {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return ws, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", "application/json")
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return ws, nil, fmt.Errorf("watch %d: %w", len(ws), err)
		}
		if resp.StatusCode != 200 {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			return ws, nil, fmt.Errorf("watch %d: %s: %s", len(ws), resp.Status, body)
		}
		w := &watcher{body: resp.Body, pings: make([]atomic.Int64, 64)}
		ws = append(ws, w)
		rd := bufio.NewReaderSize(resp.Body, 16<<10)
		if _, err := rd.ReadSlice('\n'); err != nil {
			return ws, nil, fmt.Errorf("watch %d: first event: %w", len(ws), err)
		}
		first = append(first, time.Since(start))
		go w.read(rd)
	}
	return ws, first, nil
}

// read records when each ping configmap's ADDED event arrives, until the
// watch ends.
func (w *watcher) read(rd *bufio.Reader) {
	for {
		line, err := rd.ReadSlice('\n')
		if i := bytes.Index(line, []byte(`"name":"ping-`)); i >= 0 && bytes.Contains(line, []byte(`"ADDED"`)) {
			rest := line[i+len(`"name":"ping-`):]
			if j := bytes.IndexByte(rest, '"'); j > 0 {
				if k, err := strconv.Atoi(string(rest[:j])); err == nil && k >= 0 && k < len(w.pings) {
					w.pings[k].CompareAndSwap(0, time.Now().UnixNano())
				}
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

func closeWatches(ws []*watcher) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.body.Close()
		}()
	}
	wg.Wait()
}

// pingWatches creates configmap ping-<k> directly on the apiserver and
// returns, for every watch, the time from the start of the create call to
// the ADDED event.
func pingWatches(ctx context.Context, c *http.Client, kube *kubeEnv, ws []*watcher, k int) ([]time.Duration, error) {
	body, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": fmt.Sprintf("ping-%d", k), "namespace": "bench-watch"}})
	req, err := http.NewRequestWithContext(ctx, "POST", kube.Server+"/api/v1/namespaces/bench-watch/configmaps", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+kube.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("creating ping-%d: %w", k, err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		return nil, fmt.Errorf("creating ping-%d: %s: %s", k, resp.Status, data)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		seen := 0
		for _, w := range ws {
			if w.pings[k].Load() != 0 {
				seen++
			}
		}
		if seen == len(ws) {
			out := make([]time.Duration, len(ws))
			for i, w := range ws {
				out[i] = time.Unix(0, w.pings[k].Load()).Sub(start)
			}
			return out, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, fmt.Errorf("ping-%d: not every watch saw it within 60 s", k)
}

// decodeMetadata decodes only the "metadata" member of a JSON object.
func decodeMetadata(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("list chunk: not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("list chunk: %w", err)
		}
		if key, _ := tok.(string); key == "metadata" {
			var meta json.RawMessage
			if err := dec.Decode(&meta); err != nil {
				return fmt.Errorf("list chunk metadata: %w", err)
			}
			return json.Unmarshal([]byte(`{"metadata":`+string(meta)+`}`), out)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return fmt.Errorf("list chunk: %w", err)
		}
	}
	return nil
}
