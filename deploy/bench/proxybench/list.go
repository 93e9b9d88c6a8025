package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

var dialTimeout = net.DialTimeout

// listResult is one list case through Berth.
type listResult struct {
	Pods      int    `json:"pods"`
	Case      string `json:"case"`
	Query     string `json:"query"`
	JSONBytes int64  `json:"json_bytes"` // the whole list's JSON, all chunks
	// Direct is the time for a client to fetch every chunk of 500 from the
	// backend itself (no sorting), for reference.
	Direct []time.Duration `json:"direct"`
	// Times are whole requests through Berth as the client sees them.
	Times []time.Duration `json:"times"`
	// PeakHeap is the gateway's peak heap growth during each request.
	PeakHeap []int64   `json:"peak_heap"`
	Loads    []float64 `json:"load_averages"`
}

// listCases sorts and pages 10 000 and 50 000 realistic pods through
// Berth, the backend serving them in chunks of 500 (Berth's default
// chunk size), and measures each request's time and the gateway's peak
// heap during it.
func listCases(ctx context.Context, o options, b *berth, backendAddr string, caPEM []byte) ([]*listResult, error) {
	direct, err := trustingClient(caPEM)
	if err != nil {
		return nil, err
	}
	var out []*listResult
	for _, pods := range []int{10_000, 50_000} {
		ns := "pods-" + strconv.Itoa(pods)
		// Direct: what a client pays to fetch the list itself; also warms
		// the backend, which generates the pods on first use.
		var size int64
		var directTimes []time.Duration
		for r := range o.listRuns + 1 {
			start := time.Now()
			n, err := fetchAllChunks(ctx, direct, "https://"+backendAddr+"/api/v1/namespaces/"+ns+"/pods", "static-backend-token")
			if err != nil {
				return nil, err
			}
			if r > 0 { // the first one generated the pods
				directTimes = append(directTimes, time.Since(start))
			}
			size = n
		}
		for _, c := range []struct{ name, query string }{
			{"newest-first-page", "sortName=metadata.creationTimestamp&sortOrder=desc&sortFunc=time&pageSize=20"},
			{"by-name-last-page", fmt.Sprintf("pageSize=100&pageNum=%d", pods/100)},
		} {
			lr := &listResult{Pods: pods, Case: c.name, Query: c.query, JSONBytes: size, Direct: directTimes}
			url := "https://" + b.addrs.HTTPS + "/proxy/clusters/static/api/v1/namespaces/" + ns + "/pods?" + c.query
			// One untimed request first (connections, first-use state).
			if _, err := getAll(ctx, b.client, url, b.token); err != nil {
				return nil, err
			}
			for r := range o.listRuns {
				if _, err := b.debugGet(ctx, "/bench/peak/start"); err != nil {
					return nil, err
				}
				load := loadAvg()
				start := time.Now()
				n, err := getAll(ctx, b.client, url, b.token)
				took := time.Since(start)
				peakS, perr := b.debugGet(ctx, "/bench/peak/stop")
				if err != nil {
					return nil, err
				}
				if perr != nil {
					return nil, perr
				}
				peak, _ := strconv.ParseInt(peakS, 10, 64)
				lr.Times, lr.PeakHeap, lr.Loads = append(lr.Times, took), append(lr.PeakHeap, peak), append(lr.Loads, load)
				logf("list %d %s run %d: %.0f ms, peak heap +%.1f MB (%.2f× the JSON), %d bytes out (load %.1f)",
					pods, c.name, r+1, ms(took), float64(peak)/1e6, float64(peak)/float64(size), n, load)
			}
			out = append(out, lr)
		}
	}
	return out, nil
}

// fetchAllChunks lists url in chunks of 500, following continue tokens,
// and returns the total bytes read.
func fetchAllChunks(ctx context.Context, c *http.Client, url, token string) (int64, error) {
	var total int64
	next := ""
	for range 10_000 {
		u := url + "?limit=500"
		if next != "" {
			u += "&continue=" + next
		}
		req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			return 0, fmt.Errorf("GET %s: %w", u, err)
		}
		var page struct {
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("GET %s: %w", u, err)
		}
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		total += int64(len(data))
		// The continue token sits near the start; decode only the metadata.
		if err := decodeMetadata(data, &page); err != nil {
			return 0, err
		}
		if page.Metadata.Continue == "" {
			return total, nil
		}
		next = page.Metadata.Continue
	}
	return 0, fmt.Errorf("GET %s: more than 10 000 chunks", url)
}

// getAll GETs url with a bearer token and returns the body's size; a
// non-200 answer is an error.
func getAll(ctx context.Context, c *http.Client, url, token string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return io.Copy(io.Discard, resp.Body)
}
