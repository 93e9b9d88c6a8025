package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/store"
)

// StoreOptions translates the store section of cfg into store.Options;
// berth serve, backup and restore open the store with them.
func StoreOptions(cfg *config.Config, log *slog.Logger, clock func() time.Time) (store.Options, error) {
	s := cfg.Store
	opts := store.Options{
		Backend:        s.Backend,
		Dir:            cfg.DataDir,
		SyncWrites:     s.SyncWrites,
		MemTableSize:   s.MemTableSize,
		BlockCacheSize: s.BlockCacheSize,
		Logger:         log,
		Clock:          clock,
	}
	if s.Backend != config.BackendEtcd {
		return opts, nil
	}
	e := s.Etcd
	opts.Etcd = store.EtcdOptions{
		Endpoints:      e.Endpoints,
		Prefix:         e.Prefix,
		DialTimeout:    e.DialTimeout.D(),
		RequestTimeout: e.RequestTimeout.D(),
		MaxTxnOps:      e.MaxTxnOps,
	}
	if e.TLS.CAFile == "" && e.TLS.CertFile == "" {
		return opts, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.TLS.CAFile != "" {
		pem, err := os.ReadFile(e.TLS.CAFile)
		if err != nil {
			return opts, fmt.Errorf("store.etcd.tls.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return opts, errors.New("store.etcd.tls.ca_file: no PEM certificate in " + e.TLS.CAFile)
		}
	}
	if e.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(e.TLS.CertFile, e.TLS.KeyFile)
		if err != nil {
			return opts, fmt.Errorf("store.etcd.tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	opts.Etcd.TLS = tc
	return opts, nil
}
