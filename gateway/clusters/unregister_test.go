package clusters

import (
	"context"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/proxy"
)

// apiServer is a TLS server standing in for a cluster's API server: it
// records who asked what. The cluster's own behaviour is not under test
// here (TestAdminKubeconfigEndToEnd runs the hook against a real
// kube-apiserver); which cluster the hook reaches, and as whom, is.
type apiServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func newAPIServer(t *testing.T) *apiServer {
	a := &apiServer{}
	a.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Header.Clone())
		a.mu.Unlock()
		w.Write([]byte(`{"kind":"Status"}`))
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *apiServer) requests() []http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]http.Header(nil), a.seen...)
}

func (a *apiServer) spec(name, token string) Spec {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Certificate().Raw})
	return Spec{Name: name, Conn: &Connection{Server: a.URL, Token: token, CAData: ca}}
}

// admin is a fleet administrator, who may register and delete clusters.
var admin = &identity.Principal{UserID: "usr_root", Username: "root", Permissions: []string{identity.PermAll}}

// cleaner is the principal the hooks under test are registered with.
var cleaner = &identity.Principal{UserID: "system", Username: "system:cleaner", Permissions: []string{identity.PermAll}}

// newTestService is a Service on an in-memory store and an empty pool,
// stopped and closed when the test ends.
func newTestService(t *testing.T) (*Service, *proxy.Pool, *store.DB) {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	box, _ := secretbox.New(make([]byte, 32))
	pool := proxy.NewPool(proxy.PoolOptions{})
	s, err := NewService(db, box, pool, nil, nil, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, pool, db
}

// Unregistering a cluster frees its name at once and runs the hooks in
// the background against that cluster only, as the principal they were
// registered with in the cluster-admin role: a cluster registered again
// under the same name meanwhile is neither reached by the hook nor
// disconnected when it ends.
func TestUnregisterHooksReachOnlyTheDeletedCluster(t *testing.T) {
	s, pool, _ := newTestService(t)
	old, replacement := newAPIServer(t), newAPIServer(t)
	ctx := context.Background()
	if _, err := s.Register(ctx, admin, old.spec("prod", "old-token"), audit.Event{}); err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	type run struct {
		u    Unregistered
		err  error
		code int
	}
	ran := make(chan run, 1)
	s.OnUnregister(cleaner, func(ctx context.Context, u Unregistered) {
		<-release // hold the hook until the name has a new owner
		code, _, err := u.Call(ctx, http.MethodGet, "/api/v1/namespaces/kube-system/serviceaccounts", "", nil)
		ran <- run{u, err, code}
	})
	if _, err := s.Delete(ctx, admin, "prod", audit.Event{}); err != nil {
		t.Fatal(err)
	}
	// Delete returned with the hook still held: the name is free.
	if _, err := s.Get("prod"); err == nil {
		t.Fatal("the deleted cluster is still registered")
	}
	if _, err := s.Register(ctx, admin, replacement.spec("prod", "new-token"), audit.Event{}); err != nil {
		t.Fatalf("registering the name again while the hook runs: %v", err)
	}
	close(release)
	var r run
	select {
	case r = <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("the hook did not run")
	}
	if r.err != nil || r.code != 200 || r.u.Cluster != "prod" || r.u.By.Username != "root" {
		t.Fatalf("hook: cluster %q by %v, call %d %v", r.u.Cluster, r.u.By, r.code, r.err)
	}
	seen := old.requests()
	if len(seen) == 0 {
		t.Fatal("the hook's call did not reach the deleted cluster")
	}
	h := seen[len(seen)-1]
	if h.Get("Authorization") != "Bearer old-token" || h.Get("Impersonate-User") != "berth:system:cleaner" ||
		!slices.Contains(h.Values("Impersonate-Group"), "berth:role:cluster-admin") {
		t.Errorf("the hook's call: Authorization %q, Impersonate-User %q, groups %q",
			h.Get("Authorization"), h.Get("Impersonate-User"), h.Values("Impersonate-Group"))
	}
	for _, h := range replacement.requests() {
		if h.Get("Impersonate-User") == "berth:system:cleaner" {
			t.Error("the hook reached the cluster that took the name")
		}
	}
	// After the hook, the new cluster keeps its connection.
	if !pool.Has("prod") {
		t.Fatal("the re-registered cluster lost its connection when the old one's hook ended")
	}
	if code, _, err := s.Call(admin, "prod", http.MethodGet, "/version", "", nil); err != nil || code != 200 {
		t.Errorf("the re-registered cluster: %d %v", code, err)
	}
	if h := replacement.requests(); len(h) == 0 || h[len(h)-1].Get("Authorization") != "Bearer new-token" {
		t.Error("the re-registered cluster was not reached with its own credentials")
	}
}

// Once the service stops, a hook still running sees its context end, and
// a cluster deleted afterwards runs its hooks at once with an ended
// context, so shutdown never waits on a cluster.
func TestUnregisterHooksEndWithStop(t *testing.T) {
	s, _, _ := newTestService(t)
	a := newAPIServer(t)
	ctx := context.Background()
	for _, name := range []string{"one", "two"} {
		if _, err := s.Register(ctx, admin, a.spec(name, "token"), audit.Event{}); err != nil {
			t.Fatal(err)
		}
	}
	started := make(chan struct{}, 2)
	ended := make(chan error, 2)
	s.OnUnregister(admin, func(ctx context.Context, u Unregistered) {
		started <- struct{}{}
		<-ctx.Done()
		_, _, err := u.Call(ctx, http.MethodGet, "/", "", nil)
		ended <- err
	})
	s.Delete(ctx, admin, "one", audit.Event{})
	<-started
	s.Stop() // returns only once the running hook has
	select {
	case err := <-ended:
		if err == nil {
			t.Error("a call with an ended context went through")
		}
	default:
		t.Fatal("Stop returned before the running hook ended")
	}
	s.Delete(ctx, admin, "two", audit.Event{})
	select {
	case <-ended:
	default:
		t.Fatal("a hook after Stop did not run before Delete returned")
	}
}

// A Register of the name racing a Delete (here started the moment the
// Delete commits) waits until the Delete has detached the old connection:
// it never has its own connection detached, nor does the hook reach it.
func TestDeleteAndRegisterOfOneNameDoNotInterleave(t *testing.T) {
	s, pool, db := newTestService(t)
	old, replacement := newAPIServer(t), newAPIServer(t)
	ctx := context.Background()
	if _, err := s.Register(ctx, admin, old.spec("prod", "old-token"), audit.Event{}); err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	registered := make(chan error, 1)
	db.OnCommit(func([]store.Change) {
		if !armed.CompareAndSwap(true, false) {
			return
		}
		go func() {
			_, err := s.Register(ctx, admin, replacement.spec("prod", "new-token"), audit.Event{})
			registered <- err
		}()
		// Give the Register every chance to land before the Delete goes
		// on; it must not be able to.
		select {
		case err := <-registered:
			registered <- err
		case <-time.After(200 * time.Millisecond):
		}
	})
	hooked := make(chan struct{})
	s.OnUnregister(cleaner, func(ctx context.Context, u Unregistered) {
		u.Call(ctx, http.MethodGet, "/api/v1/namespaces/kube-system/serviceaccounts", "", nil)
		close(hooked)
	})
	armed.Store(true)
	if _, err := s.Delete(ctx, admin, "prod", audit.Event{}); err != nil {
		t.Fatal(err)
	}
	if err := <-registered; err != nil {
		t.Fatalf("registering the name again: %v", err)
	}
	<-hooked
	if !pool.Has("prod") {
		t.Fatal("the re-registered cluster lost its connection to the Delete")
	}
	for _, h := range replacement.requests() {
		if h.Get("Impersonate-User") == "berth:system:cleaner" {
			t.Error("the hook reached the re-registered cluster")
		}
	}
	if len(old.requests()) == 0 {
		t.Error("the hook did not reach the deleted cluster")
	}
}

// A cluster whose connection could not be made (bad stored credentials)
// still runs the hooks on delete, with calls that fail, so what is left in
// it is reported rather than skipped.
func TestUnregisterHooksRunWithoutAConnection(t *testing.T) {
	s, pool, _ := newTestService(t)
	if _, err := s.Register(context.Background(), admin, newAPIServer(t).spec("prod", "token"), audit.Event{}); err != nil {
		t.Fatal(err)
	}
	pool.Remove("prod") // as when its credentials failed to load at start-up
	got := make(chan error, 1)
	s.OnUnregister(admin, func(ctx context.Context, u Unregistered) {
		_, _, err := u.Call(ctx, http.MethodGet, "/", "", nil)
		got <- err
	})
	if _, err := s.Delete(context.Background(), admin, "prod", audit.Event{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err == nil {
			t.Error("a call to a cluster without a connection succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the hooks did not run for a cluster without a connection")
	}
}
