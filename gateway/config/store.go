package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// validateStore checks store.backend and, for etcd, how to reach it.
func (c *Config) validateStore() error {
	switch c.Store.Backend {
	case BackendBadger:
		return nil
	case BackendEtcd:
	default:
		return &Error{"store.backend", fmt.Sprintf("unknown backend %q (want %s or %s)", c.Store.Backend, BackendBadger, BackendEtcd)}
	}
	e := c.Store.Etcd
	if len(e.Endpoints) == 0 {
		return &Error{"store.etcd.endpoints", "at least one etcd URL is required with store.backend etcd"}
	}
	for _, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return &Error{"store.etcd.endpoints", fmt.Sprintf("%q is not an etcd client URL such as https://10.0.0.1:2379", ep)}
		}
	}
	if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") || len(e.Prefix) < 2 {
		return &Error{"store.etcd.prefix", fmt.Sprintf("%q must start and end with / and name something, e.g. /berth/", e.Prefix)}
	}
	if e.DialTimeout < Duration(100*time.Millisecond) {
		return &Error{"store.etcd.dial_timeout", "must be at least 100ms"}
	}
	if e.RequestTimeout < Duration(100*time.Millisecond) {
		return &Error{"store.etcd.request_timeout", "must be at least 100ms"}
	}
	if e.MaxTxnOps < 32 {
		return &Error{"store.etcd.max_txn_ops", "must be at least 32, and at most etcd's --max-txn-ops (128 unless raised)"}
	}
	if e.TLS.CAFile != "" || e.TLS.CertFile != "" {
		for _, ep := range e.Endpoints {
			if strings.HasPrefix(ep, "http://") {
				// The client would talk plain HTTP to it and the
				// certificates would protect nothing.
				return &Error{"store.etcd.endpoints", fmt.Sprintf("%q is plain http although store.etcd.tls is set; use https://", ep)}
			}
		}
	}
	if (e.TLS.CertFile == "") != (e.TLS.KeyFile == "") {
		return &Error{"store.etcd.tls", "cert_file and key_file go together"}
	}
	for key, path := range map[string]string{"ca_file": e.TLS.CAFile, "cert_file": e.TLS.CertFile, "key_file": e.TLS.KeyFile} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return &Error{"store.etcd.tls." + key, err.Error()}
		}
	}
	if c.SecretKey == "" {
		// A key generated in data_dir would differ on every replica, and
		// none could open what another sealed.
		return &Error{"secret_key", "is required with store.backend etcd: every replica must use the same key (set BERTH_SECRET_KEY)"}
	}
	return nil
}
