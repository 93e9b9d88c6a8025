//go:build unix

package listquery

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
)

// BenchmarkUnion is the fleet path's merge: 10 clusters × 5 000 pods, each
// cluster's chunks collected by its own tagged Collector on its own
// goroutine (as the proxy's fan-out does), then Merge. ns/op is the whole
// union; see docs/benchmarks.md for the figures.
func BenchmarkUnion(b *testing.B) {
	const clusters, pods = 10, 5_000
	cases := []struct{ name, query string }{
		{"newest-first-page", "sortName=metadata.creationTimestamp&sortOrder=desc&sortFunc=time&pageSize=20"},
		{"by-name-last-page", fmt.Sprintf("pageSize=100&pageNum=%d", clusters*pods/100)},
		{"two-clusters-running", "selector=metadata.annotations.berth.dev/cluster=c3|c7,status.phase=Running&pageSize=50"},
		{"sort-by-cluster", "sortName=metadata.annotations.berth.dev/cluster&sortOrder=desc&pageSize=50&pageNum=7"},
	}
	l := getBenchList(b, pods)
	for _, tc := range cases {
		b.Run(fmt.Sprintf("clusters=%d/pods=%d/%s", clusters, pods, tc.name), func(b *testing.B) {
			q := mustQuery(b, tc.query)
			run := func() []byte {
				parts := make([]*Collector, clusters)
				var wg sync.WaitGroup
				for i := range parts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						c := NewCollector(q, Limits{}).WithTag(NewTag("berth.dev/cluster", fmt.Sprint("c", i)))
						for _, ch := range l.chunks {
							if _, err := c.Add(ch); err != nil {
								b.Error(err)
								return
							}
						}
						parts[i] = c
					}()
				}
				wg.Wait()
				out, err := Merge(parts, `{}`)
				if err != nil {
					b.Fatal(err)
				}
				return out
			}
			var out []byte
			peak := peakHeap(func() { out = run() })
			var probe struct{ Total int }
			if err := json.Unmarshal(out, &probe); err != nil || probe.Total == 0 {
				b.Fatalf("bad result (total %d): %v", probe.Total, err)
			}
			all := l.bytes * clusters
			b.SetBytes(all)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for b.Loop() {
				run()
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(all)/1e6, "json-MB")
			b.ReportMetric(float64(peak)/float64(all), "heap-x-json")
			b.ReportMetric(float64(probe.Total), "matched")
		})
	}
}
