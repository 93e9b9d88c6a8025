package notify

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/pluginhost"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

type thing struct{ N int }

var things = store.NewTable[thing]("notify_bench_things")

// countingNotifier accepts every message, counting them: the plugin's
// own cost is left out, so this measures the gateway's side.
type countingNotifier struct {
	fakeNotifier
	n atomic.Int64
}

func (c *countingNotifier) Send(context.Context, sdk.Message) (sdk.Delivery, error) {
	c.n.Add(1)
	return sdk.Delivery{ProviderMessageID: "x"}, nil
}

func benchService(b *testing.B, n pluginclient.Notifier) *Service { return benchServiceT(b, n) }

func benchServiceT(b testing.TB, n pluginclient.Notifier) *Service {
	db, err := store.Open(store.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	box, _ := secretbox.New(make([]byte, 32))
	svc := New(Options{DB: db, Box: box, Plugins: benchPlugins{n}, Users: emails{}})
	ctx := context.Background()
	if _, err := svc.SaveChannel(ctx, "", ChannelInput{Name: "hook", Type: "webhook", Settings: map[string]string{"url": "https://ops.example/", "secret": "s3cret-value"}}); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.SaveRoute(ctx, "", RouteInput{Name: "all", Events: []string{"*"}, Channel: "hook"}); err != nil {
		b.Fatal(err)
	}
	return svc
}

type benchPlugins struct{ n pluginclient.Notifier }

func (p benchPlugins) Notifiers() []pluginhost.NamedNotifier {
	return []pluginhost.NamedNotifier{{Name: "bench", Notifier: p.n}}
}

// BenchmarkEmitCost is what emitting adds to the transaction of the change
// it reports: one record more in the same commit.
func BenchmarkEmitCost(b *testing.B) {
	db, err := store.Open(store.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, emit := range []bool{false, true} {
		b.Run(fmt.Sprintf("emit=%v", emit), func(b *testing.B) {
			for i := range b.N {
				err := db.Update(func(tx *store.Tx) error {
					if err := things.Put(tx, fmt.Sprint(i), &thing{i}); err != nil {
						return err
					}
					if emit {
						return events.Emit(tx, events.Event{Type: events.ClusterRegistered, Time: time.Now(), Cluster: "c", Summary: "c registered"})
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOutbox drains a backlog of b.N events (one route, one channel)
// through dispatch and delivery, and reports deliveries per second and
// the largest heap seen while draining.
func BenchmarkOutbox(b *testing.B) {
	n := &countingNotifier{}
	svc := benchService(b, n)
	const batch = 500
	for i := 0; i < b.N; i += batch {
		err := svc.db.Update(func(tx *store.Tx) error {
			for j := i; j < min(i+batch, b.N); j++ {
				if err := events.Emit(tx, events.Event{Type: events.ClusterRegistered, Time: time.Now(), Cluster: fmt.Sprint("c", j), Summary: "registered"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	// The live heap as of the last collection: garbage not yet collected
	// does not count, what draining holds on to does.
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	base := live[0].Value.Uint64()
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
		}
	}()
	b.ResetTimer()
	start := time.Now()
	ctx := context.Background()
	for n.n.Load() < int64(b.N) {
		svc.dispatchAll(ctx)
		svc.deliverDue(ctx)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	// The store's own caches (Badger's memtables, block cache) are in the
	// baseline: what grows is what draining the backlog holds.
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-live-heap-MiB")
	b.ReportMetric((float64(peak.Load())-float64(base))/(1<<20), "live-heap-growth-MiB")
}
