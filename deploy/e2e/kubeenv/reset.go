package kubeenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berthgw/berth/sdk/controlplane"
)

// registryPrefix is kube-apiserver's default --etcd-prefix plus the slash
// every object key starts with. Keys outside it (compact_rev_key) are the
// apiserver's own bookkeeping and are never touched.
const registryPrefix = "/registry/"

// volatilePrefixes hold objects the control plane itself rewrites on a
// timer (its identity leases, the endpoint reconciler's master leases).
// Reset leaves them alone: putting an old value back would only make the
// apiserver's next optimistic update fail and retry.
var volatilePrefixes = []string{
	registryPrefix + "leases/",
	registryPrefix + "masterleases/",
}

// bootstrapKeys are objects the apiserver creates shortly after /readyz
// first answers ok; Mark waits for them so that a baseline never lacks them
// (a Reset would otherwise delete what the apiserver creates later).
var bootstrapKeys = []string{
	registryPrefix + "namespaces/default",
	registryPrefix + "namespaces/kube-system",
	registryPrefix + "namespaces/kube-public",
	registryPrefix + "namespaces/kube-node-lease",
	registryPrefix + "services/specs/default/kubernetes",
}

// baseline is the content of the apiserver's keys at one etcd revision.
type baseline struct {
	revision int64
	values   map[string][]byte
}

// Mark records the objects the cluster holds now — once the apiserver's
// bootstrap objects exist — as the state Reset returns to.
func (e *Env) Mark(ctx context.Context) error {
	cli, err := e.etcdClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	err = controlplane.Poll(ctx, func(ctx context.Context) error {
		for _, key := range bootstrapKeys {
			resp, err := cli.Get(ctx, key, clientv3.WithCountOnly())
			if err != nil {
				return err
			}
			if resp.Count == 0 {
				return fmt.Errorf("%s does not exist yet", key)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kubeenv: waiting for the apiserver's bootstrap objects: %w", err)
	}
	resp, err := cli.Get(ctx, registryPrefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("kubeenv: reading the baseline: %w", err)
	}
	b := &baseline{revision: resp.Header.Revision, values: make(map[string][]byte, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		b.values[string(kv.Key)] = kv.Value
	}
	e.baseline = b
	return nil
}

// Reset returns the cluster's objects to what Mark recorded: what was
// created since is deleted, what was changed or deleted is put back. It
// works in etcd, under the running apiserver, whose watch cache follows the
// changes as it follows any other write; namespaces therefore vanish at
// once instead of waiting for a namespace controller this environment
// does not run. Objects the control plane rewrites itself (leases) are left
// as they are.
//
// Reset is for a test binary that shares one environment between tests
// that run one after another (see Shared); it is not safe while another
// client is writing.
func (e *Env) Reset(ctx context.Context) error {
	if e.baseline == nil {
		return errors.New("kubeenv: Reset before Mark")
	}
	cli, err := e.etcdClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	changed, err := cli.Get(ctx, registryPrefix, clientv3.WithPrefix(), clientv3.WithMinModRev(e.baseline.revision+1))
	if err != nil {
		return fmt.Errorf("kubeenv: reading what changed since the baseline: %w", err)
	}
	for _, kv := range changed.Kvs {
		if err := e.restore(ctx, cli, kv); err != nil {
			return err
		}
	}
	present, err := cli.Get(ctx, registryPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("kubeenv: listing keys: %w", err)
	}
	exists := make(map[string]bool, len(present.Kvs))
	for _, kv := range present.Kvs {
		exists[string(kv.Key)] = true
	}
	for key, value := range e.baseline.values {
		if exists[key] || volatile(key) {
			continue
		}
		if _, err := cli.Put(ctx, key, string(value)); err != nil {
			return fmt.Errorf("kubeenv: putting back %s: %w", key, err)
		}
	}
	return nil
}

// restore puts one changed key back to its baseline value, or deletes it
// when it did not exist then.
func (e *Env) restore(ctx context.Context, cli *clientv3.Client, kv *mvccpb.KeyValue) error {
	key := string(kv.Key)
	if volatile(key) {
		return nil
	}
	var err error
	if value, ok := e.baseline.values[key]; ok {
		_, err = cli.Put(ctx, key, string(value))
	} else {
		_, err = cli.Delete(ctx, key)
	}
	if err != nil {
		return fmt.Errorf("kubeenv: resetting %s: %w", key, err)
	}
	return nil
}

func volatile(key string) bool {
	for _, p := range volatilePrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func (e *Env) etcdClient() (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{e.EtcdURL},
		DialTimeout: 10 * time.Second,
		// etcd's client logs through zap at info level by default.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("kubeenv: connecting to etcd: %w", err)
	}
	return cli, nil
}

// Shared is one environment for every test of a test binary that asks for
// it, started on first use and reset to its starting objects before each
// later use. Starting a control plane costs seconds; resetting one costs
// milliseconds. Tests sharing it must not call t.Parallel, and whatever
// they change outside the apiserver's objects (such as restarting it)
// persists. Call Stop from TestMain after m.Run.
type Shared struct {
	mu  sync.Mutex
	env *Env
	dir string
	err error
}

// ForTest returns the shared environment with its objects reset, starting
// it on first use; it skips or fails t as MustBinaries does when the
// binaries are missing. If t fails, the process logs are printed.
func (s *Shared) ForTest(t testing.TB) *Env {
	t.Helper()
	bins := MustBinaries(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Fatalf("the shared Kubernetes test environment did not start: %v", s.err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), DefaultStartTimeout)
	defer cancel()
	if s.env == nil {
		s.err = s.start(ctx, bins)
		if s.err != nil {
			t.Fatalf("starting the shared Kubernetes test environment: %v", s.err)
		}
	} else if err := s.env.Reset(ctx); err != nil {
		t.Fatalf("resetting the shared Kubernetes test environment: %v", err)
	}
	env := s.env
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubeenv logs:\n%s", env.Logs(40))
		}
	})
	return env
}

func (s *Shared) start(ctx context.Context, bins Binaries) error {
	dir, err := os.MkdirTemp("", "kubeenv-shared-")
	if err != nil {
		return fmt.Errorf("kubeenv: %w", err)
	}
	s.dir = dir
	env, err := Start(ctx, Options{Dir: dir, Binaries: &bins})
	if err != nil {
		return err
	}
	if err := env.Mark(ctx); err != nil {
		_ = env.Stop()
		return err
	}
	s.env = env
	return nil
}

// Stop ends the shared environment, if it was started, and removes its
// directory.
func (s *Shared) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.env != nil {
		err = s.env.Stop()
		s.env = nil
	}
	if s.dir != "" {
		err = errors.Join(err, os.RemoveAll(s.dir))
		s.dir = ""
	}
	return err
}
