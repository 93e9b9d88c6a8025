package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// target is one way to reach a backend: directly or through a proxy.
type target struct {
	Name   string // direct, berth, nginx, httputil
	URL    string // full URL of the small GET
	Header string // Authorization header value, or ""
	// PGID is the process group whose CPU is charged to the target (the
	// proxy's, or the backend's for direct); 0 for none.
	PGID int
	// Etcd, when set, are the client URLs of the etcd the target keeps its
	// store in: each run reads etcd's request counters before and after.
	Etcd []string
}

// tools are the load generators' paths.
type tools struct {
	Wrk, Vegeta string
}

// throughput is one wrk run at maximum rate.
type throughput struct {
	RPS       float64
	ProxyCPU  time.Duration // CPU of the target's process group per request
	LoadStart float64
	LoadEnd   float64
	// Requests is how many requests wrk completed; Seconds how long the
	// run took, measured around wrk.
	Requests int
	Seconds  float64
	// EtcdDelta is what etcd served during the run (target.Etcd only).
	EtcdDelta etcdCounts
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+([0-9]+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)`)
	wrkTotal   = regexp.MustCompile(`([0-9]+) requests in`)
)

// runWrk drives t at maximum rate with wrk (threads, connections, d) and
// returns requests per second. Any non-2xx answer or socket error fails
// the run.
func runWrk(ctx context.Context, tl tools, t target, threads, conns int, d time.Duration) (throughput, error) {
	args := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s"}
	if t.Header != "" {
		args = append(args, "-H", "Authorization: "+t.Header)
	}
	args = append(args, t.URL)
	res := throughput{LoadStart: loadAvg()}
	var etcd0 etcdCounts
	if len(t.Etcd) > 0 {
		var err error
		if etcd0, err = readEtcdCounts(ctx, t.Etcd); err != nil {
			return res, err
		}
	}
	started := time.Now()
	cpu0 := groupCPU(t.PGID)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tl.Wrk, args...).CombinedOutput()
	cpu1 := groupCPU(t.PGID)
	res.Seconds = time.Since(started).Seconds()
	res.LoadEnd = loadAvg()
	if err != nil {
		return res, fmt.Errorf("wrk %s: %w\n%s", t.Name, err, out)
	}
	if len(t.Etcd) > 0 {
		etcd1, err := readEtcdCounts(ctx, t.Etcd)
		if err != nil {
			return res, err
		}
		res.EtcdDelta = etcd1.minus(etcd0)
	}
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		return res, fmt.Errorf("wrk %s: no Requests/sec in\n%s", t.Name, out)
	}
	if n := wrkNon2xx.FindSubmatch(out); n != nil {
		return res, fmt.Errorf("wrk %s: %s non-2xx answers, such as %s\n%s", t.Name, n[1], sampleAnswer(ctx, t), out)
	}
	if n := wrkSockErr.FindSubmatch(out); n != nil {
		return res, fmt.Errorf("wrk %s: socket errors\n%s", t.Name, out)
	}
	res.RPS, _ = strconv.ParseFloat(string(m[1]), 64)
	if n := wrkTotal.FindSubmatch(out); n != nil {
		res.Requests, _ = strconv.Atoi(string(n[1]))
		if res.Requests > 0 && t.PGID != 0 {
			res.ProxyCPU = (cpu1 - cpu0) / time.Duration(res.Requests)
		}
	}
	return res, nil
}

// latency is one vegeta run at a fixed rate.
type latency struct {
	P50, P90, P99, Max time.Duration
	Success            float64
	Throughput         float64 // answered requests per second
	LoadStart          float64
}

// runVegeta sends rate requests per second to t for d with vegeta (keep-
// alive, certificates not checked: every server here is on 127.0.0.1) and
// returns the latency percentiles. A success ratio under 100 % fails.
//
// vegeta runs conns workers on at most conns connections, like wrk2 with
// -c conns: unbounded, it opens more connections (each a TLS handshake)
// whenever a stall on the shared machine delays answers, which feeds the
// stall and turns one hiccup into seconds of queueing.
func runVegeta(ctx context.Context, tl tools, dir string, t target, rate, conns int, d time.Duration) (latency, error) {
	targets := filepath.Join(dir, "vegeta-"+t.Name+".txt")
	spec := "GET " + t.URL + "\n"
	if t.Header != "" {
		spec += "Authorization: " + t.Header + "\n"
	}
	if err := os.WriteFile(targets, []byte(spec), 0o600); err != nil {
		return latency{}, fmt.Errorf("writing vegeta targets: %w", err)
	}
	results := filepath.Join(dir, "vegeta-"+t.Name+".bin")
	res := latency{LoadStart: loadAvg()}
	ctx, cancel := context.WithTimeout(ctx, d+60*time.Second)
	defer cancel()
	attack := exec.CommandContext(ctx, tl.Vegeta, "attack", "-rate", strconv.Itoa(rate)+"/s", "-duration", d.String(),
		"-insecure", "-keepalive=true", "-http2=false", "-timeout", "10s", "-targets", targets, "-output", results,
		"-workers", strconv.Itoa(conns), "-max-workers", strconv.Itoa(conns), "-max-connections", strconv.Itoa(conns))
	if out, err := attack.CombinedOutput(); err != nil {
		return res, fmt.Errorf("vegeta attack %s: %w\n%s", t.Name, err, out)
	}
	out, err := exec.CommandContext(ctx, tl.Vegeta, "report", "-type", "json", results).Output()
	if err != nil {
		return res, fmt.Errorf("vegeta report %s: %w", t.Name, err)
	}
	var rep struct {
		Latencies struct {
			P50 int64 `json:"50th"`
			P90 int64 `json:"90th"`
			P99 int64 `json:"99th"`
			Max int64 `json:"max"`
		} `json:"latencies"`
		Success     float64        `json:"success"`
		Throughput  float64        `json:"throughput"`
		StatusCodes map[string]int `json:"status_codes"`
		Errors      []string       `json:"errors"`
	}
	if err := json.NewDecoder(bytes.NewReader(out)).Decode(&rep); err != nil {
		return res, fmt.Errorf("vegeta report %s: %w", t.Name, err)
	}
	_ = os.Remove(results)
	res.P50, res.P90, res.P99, res.Max = time.Duration(rep.Latencies.P50), time.Duration(rep.Latencies.P90), time.Duration(rep.Latencies.P99), time.Duration(rep.Latencies.Max)
	res.Success, res.Throughput = rep.Success, rep.Throughput
	if rep.Success < 1 {
		return res, fmt.Errorf("vegeta %s: success %.4f, codes %v, errors %v", t.Name, rep.Success, rep.StatusCodes, rep.Errors)
	}
	return res, nil
}

// sampleAnswer makes one request to t and returns its status and the start
// of its body, to say why wrk saw errors.
func sampleAnswer(ctx context.Context, t target) string {
	req, err := http.NewRequestWithContext(ctx, "GET", t.URL, nil)
	if err != nil {
		return err.Error()
	}
	if t.Header != "" {
		req.Header.Set("Authorization", t.Header)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return fmt.Sprintf("%s: %s", resp.Status, body)
}
