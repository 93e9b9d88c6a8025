// Package etcdenv runs a real etcd cluster — Debian's etcd binary, one or
// more members on loopback — for tests of Berth's etcd store backend and of
// replicas sharing it: killing the leader, killing and restarting members.
//
//	c := etcdenv.ForTest(t, 3)
//	db, err := store.Open(store.Options{Backend: store.BackendEtcd, Etcd: store.EtcdOptions{Endpoints: c.Endpoints()}})
package etcdenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
	"github.com/berthgw/berth/internal/freeport"
	"github.com/berthgw/berth/sdk/controlplane"
)

// stopGrace is how long a member gets to exit on SIGTERM.
const stopGrace = 10 * time.Second

// Cluster is a running etcd cluster.
type Cluster struct {
	members []*member
	dir     string
	binary  string
	// TLS is set when the cluster serves TLS and asks clients for a
	// certificate (StartTLS).
	TLS *ClientTLS
	ca  []byte // PEM of the CA, for the health checks
}

// ClientTLS are the files a client of a TLS cluster needs: the CA that
// signed the members' certificates, and a client certificate and key.
type ClientTLS struct {
	CAFile, CertFile, KeyFile string
}

type member struct {
	flags controlplane.Etcd
	log   string
	proc  *controlplane.Process
}

// Start launches a new cluster of n members under dir and returns once
// every member reports healthy. On error nothing is left running.
func Start(ctx context.Context, binary, dir string, n int) (*Cluster, error) {
	return start(ctx, binary, dir, n, false)
}

// StartTLS is Start with TLS on every listener: the members and clients
// must present certificates signed by the cluster's own CA (see
// Cluster.TLS).
func StartTLS(ctx context.Context, binary, dir string, n int) (*Cluster, error) {
	return start(ctx, binary, dir, n, true)
}

func start(ctx context.Context, binary, dir string, n int, withTLS bool) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("etcdenv: a cluster needs a member")
	}
	ports, err := freeport.Pick(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, binary: binary}
	scheme := "http"
	var pki string
	if withTLS {
		scheme, pki = "https", filepath.Join(dir, "pki")
		if err := c.writePKI(pki); err != nil {
			return nil, err
		}
	}
	var initial []string
	for i := range n {
		name := "m" + strconv.Itoa(i)
		c.members = append(c.members, &member{
			flags: controlplane.Etcd{
				Name:      name,
				DataDir:   filepath.Join(dir, name),
				ClientURL: scheme + "://127.0.0.1:" + strconv.Itoa(ports[2*i]),
				PeerURL:   scheme + "://127.0.0.1:" + strconv.Itoa(ports[2*i+1]),
				Extra: []string{
					// Short elections, so a test that kills the leader does
					// not wait seconds for the next one.
					"--heartbeat-interval=50", "--election-timeout=500",
					"--initial-cluster-token=berth-etcdenv",
				},
			},
			log: filepath.Join(dir, name+".log"),
		})
		if withTLS {
			m := c.members[i]
			m.flags.CertFile, m.flags.KeyFile, m.flags.TrustedCAFile = filepath.Join(pki, "member.crt"), filepath.Join(pki, "member.key"), c.TLS.CAFile
		}
		initial = append(initial, name+"="+c.members[i].flags.PeerURL)
	}
	for _, m := range c.members {
		m.flags.InitialCluster = strings.Join(initial, ",")
		if err := c.run(m); err != nil {
			_ = c.Stop()
			return nil, err
		}
	}
	for i := range c.members {
		if err := c.waitHealthy(ctx, i); err != nil {
			_ = c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) run(m *member) error {
	args := m.flags.Args()
	if _, err := os.Stat(m.flags.DataDir); err == nil {
		// A restarted member rejoins with its data; the initial-cluster
		// flags are ignored then, but "new" would be refused.
		args = append(args, "--initial-cluster-state=existing")
	}
	p, err := controlplane.Start(controlplane.Command{Name: m.flags.Name, Path: c.binary, Args: args, LogFile: m.log, DieWithParent: true})
	if err != nil {
		return fmt.Errorf("etcdenv: %w", err)
	}
	m.proc = p
	return nil
}

// writePKI makes the cluster's CA, one serving and peer certificate for
// every member (they all listen on 127.0.0.1) and a client certificate.
func (c *Cluster) writePKI(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("etcdenv: %w", err)
	}
	c.TLS = &ClientTLS{CAFile: filepath.Join(dir, "ca.crt"), CertFile: filepath.Join(dir, "client.crt"), KeyFile: filepath.Join(dir, "client.key")}
	ca, err := controlplane.NewCA("berth-etcdenv-ca", 24*time.Hour, c.TLS.CAFile, filepath.Join(dir, "ca.key"))
	if err != nil {
		return fmt.Errorf("etcdenv: %w", err)
	}
	c.ca = ca.CertPEM
	for _, l := range []controlplane.Leaf{
		{CommonName: "etcd-member", Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}, Lifetime: 24 * time.Hour,
			CertFile: filepath.Join(dir, "member.crt"), KeyFile: filepath.Join(dir, "member.key")},
		{CommonName: "berth", Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, Lifetime: 24 * time.Hour,
			CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile},
	} {
		if err := ca.Issue(l); err != nil {
			return fmt.Errorf("etcdenv: %w", err)
		}
	}
	return nil
}

func (c *Cluster) waitHealthy(ctx context.Context, i int) error {
	m := c.members[i]
	client := &http.Client{Timeout: 5 * time.Second}
	if c.TLS != nil {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("etcdenv: %w", err)
		}
		client = controlplane.HTTPClient(c.ca, cert)
	}
	err := controlplane.Poll(ctx, func(ctx context.Context) error {
		if err := m.proc.Exited(); err != nil {
			return controlplane.Permanent(err)
		}
		return controlplane.EtcdHealthy(ctx, client, m.flags.ClientURL)
	})
	if err != nil {
		return fmt.Errorf("etcdenv: member %s did not become healthy: %w\n--- tail of %s ---\n%s", m.flags.Name, err, m.log, controlplane.TailFile(m.log, 30))
	}
	return nil
}

// Endpoints returns the members' client URLs.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.flags.ClientURL
	}
	return out
}

// Kill ends member i with SIGKILL, as a crash would.
func (c *Cluster) Kill(i int) {
	c.members[i].proc.Kill()
}

// Restart starts member i again on its data and waits until it is healthy.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if err := c.run(c.members[i]); err != nil {
		return err
	}
	return c.waitHealthy(ctx, i)
}

// Leader returns the index of the current leader, asking the members that
// answer.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	cli, err := c.client()
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	for _, m := range c.members {
		st, err := cli.Status(ctx, m.flags.ClientURL)
		if err != nil {
			continue
		}
		for i, other := range c.members {
			resp, err := cli.Status(ctx, other.flags.ClientURL)
			if err == nil && resp.Header.MemberId == st.Leader {
				return i, nil
			}
		}
	}
	return 0, errors.New("etcdenv: no member knows a leader")
}

// client is a client of the whole cluster.
func (c *Cluster) client() (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if c.TLS != nil {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcdenv: %w", err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(c.ca)
		cfg.TLS = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return clientv3.New(cfg)
}

// Logs returns the last n lines of each member's log.
func (c *Cluster) Logs(n int) string {
	var b strings.Builder
	for _, m := range c.members {
		fmt.Fprintf(&b, "--- %s ---\n%s\n", m.log, controlplane.TailFile(m.log, n))
	}
	return b.String()
}

// Stop ends every member still running.
func (c *Cluster) Stop() error {
	var errs []error
	for _, m := range c.members {
		if m.proc == nil {
			continue
		}
		if err := m.proc.Stop(stopGrace); err != nil {
			errs = append(errs, fmt.Errorf("etcdenv: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ForTest starts a cluster of n members for t, or skips t (fails it under
// BERTH_E2E=1) when etcd is missing. It stops in t.Cleanup and prints the
// members' logs if t failed.
func ForTest(t testing.TB, n int) *Cluster {
	t.Helper()
	return forTest(t, n, false)
}

// TLSForTest is ForTest with TLS (see StartTLS).
func TLSForTest(t testing.TB, n int) *Cluster {
	t.Helper()
	return forTest(t, n, true)
}

func forTest(t testing.TB, n int, withTLS bool) *Cluster {
	t.Helper()
	bins := kubeenv.MustBinaries(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := start(ctx, bins.Etcd, t.TempDir(), n, withTLS)
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("etcd logs:\n%s", c.Logs(30))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stopping etcd: %v", err)
		}
	})
	return c
}
