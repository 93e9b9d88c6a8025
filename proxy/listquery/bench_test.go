//go:build unix

package listquery

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/bench/podgen"
)

// Benchmarks: sort and page lists of realistic pods (deploy/bench/podgen,
// ~4 KB of JSON each) delivered in chunks of 500, as the proxy receives
// them. Run (and see BENCHMARKS.md for the figures):
//
//	go test -run '^$' -bench . -benchtime 10x ./proxy/listquery/
//
// Reported metrics besides ns/op, B/op and allocs/op:
//
//   - json-MB: size of the whole list's JSON.
//   - heap-x-json: peak heap during one collection (all Adds and Result),
//     divided by the JSON size. "Heap" is runtime/metrics
//     /memory/classes/heap/objects:bytes, live objects plus garbage not yet
//     swept, i.e. what the process really holds; it is sampled every 50µs by
//     a goroutine during an untimed run with default GOGC, after a forced
//     GC, and the value at the start is subtracted.
//   - live-x-json: heap still live after a forced GC once every chunk is
//     added (what the collector keeps), divided by the JSON size.
//   - cpu-ms/op: CPU time (user+system, all threads, so GC work included)
//     of the process per operation, from getrusage. Unlike ns/op it
//     hardly moves when other processes compete for the 2 cores.
//
// The input chunks are stored outside the Go heap (anonymous mmap) so that
// they neither count in the measurement nor make the GC lazier than it
// would be in the proxy, where only the chunk being consumed exists.

const benchChunk = 500

// benchLists caches generated inputs per pod count across benchmarks.
var benchLists sync.Map // int -> *benchList

type benchList struct {
	chunks [][]byte // each backed by off-heap memory
	bytes  int64
}

func getBenchList(b *testing.B, pods int) *benchList {
	if v, ok := benchLists.Load(pods); ok {
		return v.(*benchList)
	}
	gen := podgen.ListChunks(pods, benchChunk, uint64(pods))
	var total int
	for _, c := range gen {
		total += len(c)
	}
	mem, err := syscall.Mmap(-1, 0, total, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		b.Fatalf("mmap: %v", err)
	}
	l := &benchList{bytes: int64(total)}
	off := 0
	for _, c := range gen {
		n := copy(mem[off:], c)
		l.chunks = append(l.chunks, mem[off:off+n:off+n])
		off += n
	}
	// The mapping lives until the test binary exits.
	benchLists.Store(pods, l)
	runtime.GC()
	return l
}

func runCollect(b *testing.B, q *Query, l *benchList) []byte {
	c := NewCollector(q, Limits{MaxBytes: 1 << 30, MaxItems: 1_000_000})
	for _, ch := range l.chunks {
		if _, err := c.Add(ch); err != nil {
			b.Fatal(err)
		}
	}
	out, err := c.Result()
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func heapNow() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// peakHeap runs fn while sampling the heap and returns the peak growth.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	base := heapNow()
	stop := make(chan struct{})
	res := make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: heapMetric}}
		var peak uint64
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				res <- peak
				return
			default:
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	fn()
	end := heapNow()
	close(stop)
	peak := max(<-res, end)
	if peak < base {
		return 0
	}
	return peak - base
}

// liveAfterAdds returns the heap kept by a collector once all chunks are in.
func liveAfterAdds(b *testing.B, q *Query, l *benchList) uint64 {
	runtime.GC()
	base := heapNow()
	c := NewCollector(q, Limits{})
	for _, ch := range l.chunks {
		if _, err := c.Add(ch); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	live := heapNow()
	runtime.KeepAlive(c)
	if live < base {
		return 0
	}
	return live - base
}

func BenchmarkCollect(b *testing.B) {
	cases := []struct {
		name  string
		query func(pods int) string
	}{
		// The console's default view: newest first, first page.
		{"newest-first-page", func(int) string {
			return "sortName=metadata.creationTimestamp&sortOrder=desc&sortFunc=time&pageSize=20"
		}},
		// The last page: every item must be kept until the end (worst case
		// for memory).
		{"by-name-last-page", func(pods int) string {
			return fmt.Sprintf("pageSize=100&pageNum=%d", pods/100)
		}},
		// Numeric sort on a field inside an array, with a selector.
		{"selector-restarts", func(int) string {
			return "selector=metadata.labels.app.kubernetes.io/name=web|api,status.phase=Running,spec.containers.image~SHOP&sortName=status.containerStatuses.restartCount&sortFunc=number&sortOrder=desc&pageSize=50&pageNum=3"
		}},
	}
	for _, pods := range []int{10_000, 50_000} {
		for _, tc := range cases {
			b.Run(fmt.Sprintf("pods=%d/%s", pods, tc.name), func(b *testing.B) {
				l := getBenchList(b, pods)
				q := mustQuery(b, tc.query(pods))
				var out []byte
				peak := peakHeap(func() { out = runCollect(b, q, l) })
				var probe struct{ Total int }
				if err := json.Unmarshal(out, &probe); err != nil || probe.Total == 0 {
					b.Fatalf("bad result (total %d): %v", probe.Total, err)
				}
				live := liveAfterAdds(b, q, l)
				b.SetBytes(l.bytes)
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime()
				for b.Loop() {
					runCollect(b, q, l)
				}
				b.StopTimer()
				b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
				b.ReportMetric(float64(l.bytes)/1e6, "json-MB")
				b.ReportMetric(float64(peak)/float64(l.bytes), "heap-x-json")
				b.ReportMetric(float64(live)/float64(l.bytes), "live-x-json")
				b.ReportMetric(float64(probe.Total), "matched")
			})
		}
	}
}

// BenchmarkDecodeMaps is the approach this package avoids, for comparison:
// decoding every chunk's items into map[string]any and keeping them.
func BenchmarkDecodeMaps(b *testing.B) {
	l := getBenchList(b, 10_000)
	decode := func() []map[string]any {
		var all []map[string]any
		for _, ch := range l.chunks {
			var list struct {
				Items []map[string]any `json:"items"`
			}
			if err := json.Unmarshal(ch, &list); err != nil {
				b.Fatal(err)
			}
			all = append(all, list.Items...)
		}
		return all
	}
	peak := peakHeap(func() { decode() })
	runtime.GC()
	base := heapNow()
	kept := decode()
	runtime.GC()
	live := heapNow() - base
	runtime.KeepAlive(kept)
	b.SetBytes(l.bytes)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		decode()
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(peak)/float64(l.bytes), "heap-x-json")
	b.ReportMetric(float64(live)/float64(l.bytes), "live-x-json")
}
