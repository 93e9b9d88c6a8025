package config

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStoreBackend(t *testing.T) {
	key := "BERTH_SECRET_KEY"
	hexKey := strings.Repeat("ab", 32)
	missing := filepath.Join(t.TempDir(), "nope.pem")
	tests := []struct {
		name    string
		env     map[string]string
		wantKey string // the key named in the error; "" means valid
	}{
		{"default badger", nil, ""},
		{"etcd", map[string]string{"BERTH_STORE_BACKEND": "etcd", "BERTH_STORE_ETCD_ENDPOINTS": "http://10.0.0.1:2379,https://etcd-2:2379", key: hexKey}, ""},
		{"unknown backend", map[string]string{"BERTH_STORE_BACKEND": "mysql"}, "store.backend"},
		{"etcd without endpoints", map[string]string{"BERTH_STORE_BACKEND": "etcd", key: hexKey}, "store.etcd.endpoints"},
		{"endpoint without scheme", map[string]string{"BERTH_STORE_BACKEND": "etcd", "BERTH_STORE_ETCD_ENDPOINTS": "10.0.0.1:2379", key: hexKey}, "store.etcd.endpoints"},
		{"endpoint with a path", map[string]string{"BERTH_STORE_BACKEND": "etcd", "BERTH_STORE_ETCD_ENDPOINTS": "http://e:2379/v3", key: hexKey}, "store.etcd.endpoints"},
		{"etcd without a shared key", map[string]string{"BERTH_STORE_BACKEND": "etcd", "BERTH_STORE_ETCD_ENDPOINTS": "http://e:2379"}, "secret_key"},
		{"prefix not a folder", map[string]string{"BERTH_STORE_BACKEND": "etcd", "BERTH_STORE_ETCD_ENDPOINTS": "http://e:2379", "BERTH_STORE_ETCD_PREFIX": "berth", key: hexKey}, "store.etcd.prefix"},
		{"request timeout too short", map[string]string{"BERTH_STORE_BACKEND": "etcd", "BERTH_STORE_ETCD_ENDPOINTS": "http://e:2379", "BERTH_STORE_ETCD_REQUEST_TIMEOUT": "1ms", key: hexKey}, "store.etcd.request_timeout"},
		{"too few txn ops", map[string]string{"BERTH_STORE_BACKEND": "etcd", "BERTH_STORE_ETCD_ENDPOINTS": "http://e:2379", "BERTH_STORE_ETCD_MAX_TXN_OPS": "8", key: hexKey}, "store.etcd.max_txn_ops"},
		{"cert without key", map[string]string{"BERTH_STORE_BACKEND": "etcd", "BERTH_STORE_ETCD_ENDPOINTS": "https://e:2379", "BERTH_STORE_ETCD_TLS_CERT_FILE": missing, key: hexKey}, "store.etcd.tls"},
		{"TLS to a plain-http endpoint", map[string]string{"BERTH_STORE_BACKEND": "etcd", "BERTH_STORE_ETCD_ENDPOINTS": "http://e:2379", "BERTH_STORE_ETCD_TLS_CA_FILE": missing, key: hexKey}, "store.etcd.endpoints"},
		{"missing CA file", map[string]string{"BERTH_STORE_BACKEND": "etcd", "BERTH_STORE_ETCD_ENDPOINTS": "https://e:2379", "BERTH_STORE_ETCD_TLS_CA_FILE": missing, key: hexKey}, "store.etcd.tls.ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load("", envMap(tt.env))
			if tt.wantKey == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *Error
			if err == nil || !errors.As(err, &ce) || ce.Key != tt.wantKey {
				t.Fatalf("got %v (config %+v), want an error on %s", err, c, tt.wantKey)
			}
		})
	}

	c, err := Load("", envMap(map[string]string{"BERTH_STORE_BACKEND": "etcd", "BERTH_STORE_ETCD_ENDPOINTS": "http://a:2379, http://b:2379", key: hexKey}))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Store.Etcd
	if !slices.Equal(e.Endpoints, []string{"http://a:2379", "http://b:2379"}) || e.Prefix != "/berth/" || e.RequestTimeout.D() != 5*time.Second || e.MaxTxnOps != 128 {
		t.Errorf("etcd settings from the environment: %+v", e)
	}
}
