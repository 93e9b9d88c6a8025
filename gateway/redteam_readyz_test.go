package gateway

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/gateway/config"
)

// etcdRanges is etcd's count of Range requests served (its /metrics).
func etcdRanges(t *testing.T, endpoint string) float64 {
	t.Helper()
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "grpc_server_handled_total{") && strings.Contains(line, `grpc_method="Range"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += v
		}
	}
	return n
}

// Found by a red-team pass (fixed; the test guards it): /readyz is public (no credential, no rate limit, exempt from the
// HTTPS redirect) and on etcd each request is a linearizable Range on
// etcd (store.DB.Ready), so an anonymous client turns every request it
// sends to every replica into a quorum read on the etcd leader. The
// answer should be cached briefly (e.g. reuse the follower's heartbeat,
// store.Fresh, or a 1 s cache with one request in flight), so N /readyz
// cost O(1) etcd reads.
func TestReadyzFloodDoesNotReachEtcd(t *testing.T) {
	c := etcdenv.ForTest(t, 1)
	vars := map[string]string{
		"BERTH_DATA_DIR":             t.TempDir(),
		"BERTH_HTTP_ADDR":            "127.0.0.1:0",
		"BERTH_HTTPS_ADDR":           "127.0.0.1:0",
		"BERTH_STORE_BACKEND":        "etcd",
		"BERTH_STORE_ETCD_ENDPOINTS": strings.Join(c.Endpoints(), ","),
		"BERTH_SECRET_KEY":           strings.Repeat("ab", 32),
	}
	cfg, err := config.Load("", func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	tg := start(t, cfg, nil)
	const n = 300
	before := etcdRanges(t, c.Endpoints()[0])
	for range n {
		resp, _ := tg.get(t, tg.http+"/readyz")
		if resp.StatusCode != 200 {
			t.Fatalf("readyz: %d", resp.StatusCode)
		}
	}
	delta := etcdRanges(t, c.Endpoints()[0]) - before
	t.Logf("%d anonymous /readyz requests -> %.0f etcd Range requests", n, delta)
	if delta > n/10 {
		t.Errorf("%d anonymous /readyz requests cost %.0f etcd Range requests, want a bounded few (cache the answer)", n, delta)
	}
}
