package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/proxy"
	"github.com/berthgw/berth/proxy/listquery"
)

// The packages' constructors are the one source of defaults: what they
// pick for an unset option is what configs/berth.yaml (the embedded
// default configuration) must state, so that the documented value, the
// value Berth runs with and the value a library user gets agree.
func TestDefaultConfigMatchesConstructors(t *testing.T) {
	cfg, err := config.Load("", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p, l := cfg.Proxy, cfg.Limits
	tests := []struct {
		key       string
		yaml, ctr any
	}{
		{"proxy.request_timeout", p.RequestTimeout.D(), time.Duration(proxy.DefaultRequestTimeout)},
		{"proxy.stream_write_timeout", p.StreamWriteTimeout.D(), time.Duration(proxy.DefaultStreamWriteTimeout)},
		{"proxy.max_page_size", p.MaxPageSize, listquery.DefaultMaxPageSize},
		{"proxy.max_list_bytes", int64(p.MaxListBytes), int64(proxy.DefaultMaxListBytes)},
		{"proxy.max_list_items", int64(p.MaxListItems), int64(proxy.DefaultMaxListItems)},
		{"proxy.max_concurrent_lists", p.MaxConcurrentLists, proxy.DefaultMaxConcurrentLists},
		{"proxy.list_memory_budget", int64(p.ListMemoryBudget), int64(proxy.DefaultListMemoryBudget)},
		{"proxy.list_time_budget", p.ListTimeBudget.D(), time.Duration(proxy.DefaultListTimeBudget)},
		{"proxy.max_conns_per_cluster", p.MaxConnsPerCluster, proxy.DefaultMaxConnsPerCluster},
		{"proxy.max_streams_per_cluster", p.MaxStreamsPerCluster, proxy.DefaultStreamsPerCluster},
		{"proxy.max_streams_per_user", p.MaxStreamsPerUser, proxy.DefaultStreamsPerPrincipal},
		{"limits.body_min_bytes", l.BodyMinBytes, proxy.DefaultBodyMinBytes},
		{"limits.body_read_window", l.BodyReadWindow.D(), time.Duration(proxy.DefaultBodyWindow)},
		{"store.memtable_size", cfg.Store.MemTableSize, int64(store.DefaultMemTableSize)},
		{"store.block_cache_size", cfg.Store.BlockCacheSize, int64(store.DefaultBlockCacheSize)},
		{"store.backend", cfg.Store.Backend, store.BackendBadger},
		{"store.etcd.prefix", cfg.Store.Etcd.Prefix, store.DefaultEtcdPrefix},
		{"store.etcd.dial_timeout", cfg.Store.Etcd.DialTimeout.D(), store.DefaultEtcdDialTimeout},
		{"store.etcd.request_timeout", cfg.Store.Etcd.RequestTimeout.D(), store.DefaultEtcdRequestTimeout},
		{"store.etcd.max_txn_ops", cfg.Store.Etcd.MaxTxnOps, store.DefaultEtcdMaxTxnOps},
		{"rate_limits.max_keys", cfg.RateLimits.MaxKeys, ratelimit.DefaultMaxKeys},
	}
	for _, tt := range tests {
		if fmt.Sprint(tt.yaml) != fmt.Sprint(tt.ctr) {
			t.Errorf("%s: configs/berth.yaml says %v, the constructor's default is %v", tt.key, tt.yaml, tt.ctr)
		}
	}
}
