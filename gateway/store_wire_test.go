package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/etcdenv"
	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/store"
)

// store.etcd.tls reaches an etcd that serves TLS and asks clients for a
// certificate; without the client certificate the store does not open.
func TestStoreOnEtcdWithTLS(t *testing.T) {
	c := etcdenv.TLSForTest(t, 1)
	load := func(env map[string]string) *config.Config {
		t.Helper()
		vars := map[string]string{
			"BERTH_STORE_BACKEND":        "etcd",
			"BERTH_STORE_ETCD_ENDPOINTS": strings.Join(c.Endpoints(), ","),
			"BERTH_SECRET_KEY":           strings.Repeat("ab", 32),
			"BERTH_DATA_DIR":             t.TempDir(),
		}
		for k, v := range env {
			vars[k] = v
		}
		cfg, err := config.Load("", func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := load(map[string]string{
		"BERTH_STORE_ETCD_TLS_CA_FILE":   c.TLS.CAFile,
		"BERTH_STORE_ETCD_TLS_CERT_FILE": c.TLS.CertFile,
		"BERTH_STORE_ETCD_TLS_KEY_FILE":  c.TLS.KeyFile,
	})
	opts, err := StoreOptions(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(opts)
	if err != nil {
		t.Fatalf("open over TLS with a client certificate: %v", err)
	}
	if err := db.Ready(); err != nil {
		t.Errorf("not ready over TLS: %v", err)
	}
	db.Close()

	// The CA alone: etcd refuses the handshake, and the store says so at
	// open instead of failing later.
	opts, err = StoreOptions(load(map[string]string{"BERTH_STORE_ETCD_TLS_CA_FILE": c.TLS.CAFile}), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.Etcd.DialTimeout, opts.Etcd.RequestTimeout = 2*time.Second, 2*time.Second
	if db, err := store.Open(opts); err == nil {
		db.Close()
		t.Fatal("opened an etcd that asks for a client certificate without one")
	}
}
