package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// markdown renders the results as the tables docs/benchmarks.md uses:
// medians, with the spread of the runs and the load averages seen.
func markdown(r *results, o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s on %s (%d CPUs, %s); load average %.1f before, %.1f after.\n",
		r.Started.Format(time.RFC3339), r.Host, r.CPUs, r.GoVersion, r.LoadBefore, r.LoadAfter)
	fmt.Fprintf(&b, "Flags: `%s`\n\n", r.Options)
	if i := r.Idle; i != nil {
		fmt.Fprintf(&b, "Idle gateway (proxybench gateway: Berth in the benchmark's own binary, with its debug listener; %s after ready, before any request): "+
			"RSS %.1f MiB (anonymous %.1f, file-backed %.1f); after a forced GC heap live %.1f MiB, %d goroutines. "+
			"`proxybench idle-rss` measures the berth binary itself.\n\n",
			idleWait, mib(i.Proc.RSS), mib(i.Proc.Anon), mib(i.Proc.File), mib(int64(i.Runtime.HeapLive)), i.Runtime.Goroutines)
	}

	for _, name := range []string{"static", "kube"} {
		s, ok := r.Small[name]
		if !ok {
			continue
		}
		rate := o.rate
		if name == "kube" {
			rate = o.kubeRate
		}
		d := s["direct"]
		fmt.Fprintf(&b, "### Small GET, %s backend\n\n", name)
		fmt.Fprintf(&b, "wrk -t%d -c%d, %s per run, %d runs; latency at %d req/s with vegeta on %d connections.\n\n", o.threads, o.conns, o.duration, o.runs, rate, o.vegetaConns)
		b.WriteString("| path | req/s (median) | runs min–max | × direct | CPU µs/req of the proxy ¹ | p50 ms | p99 ms | p50 − direct | p99 − direct |\n")
		b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|\n")
		for _, t := range targetOrder {
			x, ok := s[t]
			if !ok {
				continue
			}
			lo, hi := spread(x.RPS)
			rps := median(x.RPS)
			p50, p99 := median(x.P50), median(x.P99)
			dp50, dp99 := "", ""
			if t != "direct" {
				dp50 = fmt.Sprintf("%+.2f", ms(p50-median(d.P50)))
				dp99 = fmt.Sprintf("%+.2f", ms(p99-median(d.P99)))
			}
			fmt.Fprintf(&b, "| %s | %.0f | %.0f–%.0f | %.2f | %.1f | %.2f | %.2f | %s | %s |\n",
				t, rps, lo, hi, rps/median(d.RPS), us(median(x.CPUPerOp)), ms(p50), ms(p99), dp50, dp99)
		}
		for _, t := range targetOrder {
			if x, ok := s[t]; ok {
				if lo, _ := spread(x.Achieved); lo < 0.98*float64(rate) {
					fmt.Fprintf(&b, "\n%s did not keep up with %d req/s in every run (lowest %.0f/s): its latency includes the shortfall.", t, rate, lo)
				}
			}
		}
		if bt, ok := s["berth"]; ok {
			// Ratios within a round are steadier than ratios of medians:
			// the shared machine's speed drifts between rounds.
			b.WriteString("\nBerth's throughput ÷ each other target's in the same round (median of the rounds):")
			for _, t := range targetOrder {
				if x, ok := s[t]; ok && t != "berth" {
					fmt.Fprintf(&b, " %s %.2f×;", t, median(perRound(bt.RPS, x.RPS)))
				}
			}
			b.WriteString("\n")
		}
		var loads []float64
		for _, x := range s {
			loads = append(loads, x.Loads...)
		}
		lo, hi := spread(loads)
		fmt.Fprintf(&b, "Load average during these runs: %.1f–%.1f.\n\n", lo, hi)
		if x, ok := s["berth-etcd"]; ok {
			etcdPerRequest(&b, r, x)
		}
	}
	if len(r.Small) > 0 {
		b.WriteString("¹ For direct, the backend's own CPU per request.\n\n")
	}
	writeAims(&b, r)

	if len(r.Lists) > 0 {
		b.WriteString("### Sort and page through Berth\n\n")
		fmt.Fprintf(&b, "%d requests per case, median (min–max); peak heap is the gateway's heap growth during the request.\n\n", o.listRuns)
		b.WriteString("| pods (JSON) | case | ms (median) | ms min–max | direct fetch of all chunks, ms | peak heap MB | × JSON |\n")
		b.WriteString("|---|---|---:|---|---:|---:|---:|\n")
		for _, l := range r.Lists {
			lo, hi := spread(l.Times)
			peak := median(l.PeakHeap)
			fmt.Fprintf(&b, "| %d (%.1f MB) | %s | %.0f | %.0f–%.0f | %.0f | %.1f | %.2f |\n",
				l.Pods, float64(l.JSONBytes)/1e6, l.Case, ms(median(l.Times)), ms(lo), ms(hi), ms(median(l.Direct)),
				float64(peak)/1e6, float64(peak)/float64(l.JSONBytes))
		}
		b.WriteString("\n")
	}

	if w := r.Watch; w != nil {
		fmt.Fprintf(&b, "### %d concurrent watches (kube-apiserver)\n\n", w.Watches)
		b.WriteString("| path | first event p50 ms | p99 ms | fan-out p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|\n")
		for _, p := range []string{"direct", "berth"} {
			f, fo := w.FirstEvent[p], w.Fanout[p]
			fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", p, f.P50ms, f.P99ms, fo.P50ms, fo.P99ms, fo.Maxms)
		}
		n := float64(w.Watches)
		fmt.Fprintf(&b, "\nBerth per watch (after GC, all open minus none open): heap live %.1f KB, goroutine stacks %.1f KB, runtime total %.1f KB, RSS %.1f KB, %.1f goroutines.\n",
			(float64(w.MemOpen.HeapLive)-float64(w.MemBefore.HeapLive))/n/1024,
			(float64(w.MemOpen.Stacks)-float64(w.MemBefore.Stacks))/n/1024,
			(float64(w.MemOpen.Total)-float64(w.MemBefore.Total))/n/1024,
			(float64(w.RSSOpen)-float64(w.RSSBefore))/n/1024,
			(float64(w.MemOpen.Goroutines)-float64(w.MemBefore.Goroutines))/n)
		if w.ReleasedAfter > 0 {
			fmt.Fprintf(&b, "Once the clients closed their watches, Berth was back to its goroutine count in %.1f s.\n", w.ReleasedAfter.Seconds())
		} else {
			b.WriteString("**Berth still held the watches' goroutines 30 s after the clients closed them** (see berth-goroutines-after-watches.txt).\n")
		}
		fmt.Fprintf(&b, "After closing: %d goroutines (%d before), heap live %.1f MB (%.1f MB before), RSS %.1f MB (%.1f MB before, %.1f MB open).\n\n",
			w.MemAfter.Goroutines, w.MemBefore.Goroutines, float64(w.MemAfter.HeapLive)/1e6, float64(w.MemBefore.HeapLive)/1e6,
			float64(w.RSSAfter)/1e6, float64(w.RSSBefore)/1e6, float64(w.RSSOpen)/1e6)
	}
	return b.String()
}

// targetOrder is the order of the rows of the small-GET tables.
var targetOrder = []string{"direct", "berth", "berth-etcd", "proxy-only", "fasthttp", "nginx", "nginx-as", "httputil"}

// perRound divides a's runs by b's, round by round.
func perRound(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// etcdPerRequest writes what etcd served during berth-etcd's wrk runs, per
// proxied request, next to what the same Berth asks of etcd in as many
// seconds while idle (its heartbeat and lease keep-alives): the proof that
// the proxy path does not touch the store per request, or that it does.
func etcdPerRequest(b *strings.Builder, r *results, x *smallResult) {
	total, requests, seconds := etcdCounts{}, 0, 0.0
	for i, c := range x.Etcd {
		for k, v := range c {
			total[k] += v
		}
		requests += x.Requests[i]
		seconds += x.Seconds[i]
	}
	keys := make([]string, 0, len(total)+len(r.EtcdIdle))
	for k := range total {
		keys = append(keys, k)
	}
	for k := range r.EtcdIdle {
		if _, ok := total[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	fmt.Fprintf(b, "What etcd served during berth-etcd's wrk runs: %d proxied requests in %.1f s; idle, the same Berth over %.1f s with no requests.\n\n",
		requests, seconds, r.EtcdIdleSeconds)
	b.WriteString("| etcd counter | during the runs | per proxied request | idle, per second | idle rate × the runs' seconds |\n|---|---:|---:|---:|---:|\n")
	for _, k := range keys {
		idleRate := 0.0
		if r.EtcdIdleSeconds > 0 {
			idleRate = r.EtcdIdle[k] / r.EtcdIdleSeconds
		}
		perReq := 0.0
		if requests > 0 {
			perReq = total[k] / float64(requests)
		}
		fmt.Fprintf(b, "| %s | %.0f | %.6f | %.2f | %.0f |\n", k, total[k], perReq, idleRate, idleRate*seconds)
	}
	b.WriteString("\n")
}
