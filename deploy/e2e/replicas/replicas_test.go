package replicas

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
)

// Signed in through one replica, a token works through the others; a key
// revoked through one is refused through all, as is a signed-out session.
func TestTokensAndRevocationAcrossReplicas(t *testing.T) {
	f := startFleet(t)
	r1, r2, r3 := f.replicas[0], f.replicas[1], f.replicas[2]
	token := login(t, r1.http)
	for _, r := range f.replicas {
		if status := me(r.http, token); status != 200 {
			t.Fatalf("a token from %s at %s: %d", r1.name, r.name, status)
		}
	}
	var key struct{ ID, Key string }
	if status, err := call("POST", f.lb+"/api/v1/auth/api-keys", token, map[string]string{"name": "ci"}, &key); status != 201 {
		t.Fatalf("create an API key through the balancer: %d %v", status, err)
	}
	for _, r := range f.replicas {
		if status := me(r.http, key.Key); status != 200 {
			t.Fatalf("the API key at %s: %d", r.name, status)
		}
	}
	if status, err := call("DELETE", r3.http+"/api/v1/auth/api-keys/"+key.ID, token, nil, nil); status != 204 {
		t.Fatalf("revoke at %s: %d %v", r3.name, status, err)
	}
	for _, r := range f.replicas {
		until(t, "the revoked key refused at "+r.name, func() bool { return me(r.http, key.Key) == 401 })
	}
	if status, err := call("POST", r2.http+"/api/v1/auth/logout", token, nil, nil); status != 204 {
		t.Fatalf("sign out at %s: %d %v", r2.name, status, err)
	}
	for _, r := range f.replicas {
		until(t, "the signed-out session refused at "+r.name, func() bool { return me(r.http, token) == 401 })
	}
}

// writer creates users through the balancer until stopped, remembering
// those whose creation was acknowledged (201).
type writer struct {
	f       *fleet
	token   string
	next    atomic.Int64
	mu      sync.Mutex
	acked   []string
	failed  int
	stop    chan struct{}
	stopped sync.WaitGroup
}

func startWriters(f *fleet, token string, n int) *writer {
	w := &writer{f: f, token: token, stop: make(chan struct{})}
	for range n {
		w.stopped.Add(1)
		go func() {
			defer w.stopped.Done()
			for {
				select {
				case <-w.stop:
					return
				default:
				}
				name := fmt.Sprintf("user-%04d", w.next.Add(1))
				status, _ := call("POST", f.lb+"/api/v1/users", token, map[string]any{"username": name, "password": "user-password-0001"}, nil)
				w.mu.Lock()
				if status == 201 {
					w.acked = append(w.acked, name)
				} else {
					w.failed++
				}
				w.mu.Unlock()
			}
		}()
	}
	return w
}

func (w *writer) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *writer) finish() (acked []string, failed int) {
	close(w.stop)
	w.stopped.Wait()
	return w.acked, w.failed
}

// users lists every username through the balancer.
func (f *fleet) users(t *testing.T, token string) []string {
	t.Helper()
	var names []string
	for page := 1; ; page++ {
		var list struct {
			Items []struct{ Username string }
			Total int
		}
		url := fmt.Sprintf("%s/api/v1/users?page=%d&page_size=500", f.lb, page)
		if status, err := call("GET", url, token, nil, &list); status != 200 {
			t.Fatalf("list users: %d %v", status, err)
		}
		for _, u := range list.Items {
			names = append(names, u.Username)
		}
		if len(list.Items) == 0 || len(names) >= list.Total {
			return names
		}
	}
}

// Every acknowledged write survives a replica killed with SIGKILL in the
// middle of a burst, and then the etcd leader killed the same way; writes
// go on through the balancer after each.
func TestAcknowledgedWritesSurviveKills(t *testing.T) {
	f := startFleet(t)
	token := login(t, f.lb)
	check := func(what string, acked []string, failed int) {
		t.Helper()
		stored := f.users(t, token)
		for _, name := range acked {
			if !slices.Contains(stored, name) {
				t.Errorf("%s: %s was acknowledged but is not stored", what, name)
			}
		}
		t.Logf("%s: %d writes acknowledged and stored, %d refused or cut", what, len(acked), failed)
	}

	w := startWriters(f, token, 3)
	until(t, "writes before the kill", func() bool { return w.ackedCount() >= 15 })
	f.replicas[1].kill9()
	before := w.ackedCount()
	until(t, "writes after a replica was killed", func() bool { return w.ackedCount() >= before+15 })
	acked, failed := w.finish()
	check("replica killed", acked, failed)
	f.replicas[1].start(t)

	leader, err := f.etcd.Leader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w = startWriters(f, token, 3)
	until(t, "writes before the etcd leader dies", func() bool { return w.ackedCount() >= 15 })
	f.etcd.Kill(leader)
	before = w.ackedCount()
	until(t, "writes after the etcd leader died", func() bool { return w.ackedCount() >= before+15 })
	acked, failed = w.finish()
	check("etcd leader killed", acked, failed)
	if err := f.etcd.Restart(context.Background(), leader); err != nil {
		t.Fatal(err)
	}
}

// A rolling restart of every replica, one after another, while kubectl
// lists through the balancer in a loop and watches through it: no list
// fails, and the watch, started again when its replica goes, sees what
// happens after the restart.
func TestRollingRestartUnderKubectl(t *testing.T) {
	f := startFleet(t)
	env := kubeenv.ForTest(t, kubeenv.Options{})
	// The roles Berth's members are impersonated into, as shipped.
	manifest, err := os.ReadFile("../../rbac/berth-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rbac := filepath.Join(t.TempDir(), "rbac.yaml")
	os.WriteFile(rbac, []byte(strings.ReplaceAll(string(manifest), "BERTH_GATEWAY_USER", kubeenv.UnprivilegedUser)), 0o600)
	if out, err := env.Kubectl(context.Background(), "apply", "-f", rbac); err != nil {
		t.Fatalf("apply rbac: %v\n%s", err, out)
	}
	token := login(t, f.lb)
	if status, err := call("POST", f.lb+"/api/v1/clusters", token, map[string]any{
		"name": "e2e", "server": env.Server, "token": env.AdminToken,
		"certificate_authority_data": base64.StdEncoding.EncodeToString(env.CAData),
	}, nil); status != 201 {
		t.Fatalf("register the cluster: %d %v", status, err)
	}
	kc := filepath.Join(t.TempDir(), "lb.kubeconfig")
	if err := env.WriteKubeconfig(kc, f.lb+"/proxy/clusters/e2e", token, f.lbCA); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	kubectl := func(ctx context.Context, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, env.KubectlPath, append([]string{"--kubeconfig", kc, "--cache-dir", cache}, args...)...)
	}
	watchCtx, stopWatching := context.WithCancel(context.Background())
	defer stopWatching()

	// The watch: printed names arrive on seen; when kubectl ends (its
	// replica went away), it is started again.
	seen := make(chan string, 100)
	var watches atomic.Int32
	var watchErr lockedBuffer
	go func() {
		for watchCtx.Err() == nil {
			cmd := kubectl(watchCtx, "get", "configmaps", "-n", "default", "--watch", "-o", "name")
			cmd.Stderr = &watchErr
			out, _ := cmd.StdoutPipe()
			if cmd.Start() != nil {
				return
			}
			watches.Add(1)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				seen <- strings.TrimSpace(sc.Text())
			}
			cmd.Wait()
			time.Sleep(200 * time.Millisecond)
		}
	}()
	created := func(name string) {
		t.Helper()
		if out, err := env.Kubectl(context.Background(), "-n", "default", "create", "configmap", name); err != nil {
			t.Fatalf("create %s: %v %s", name, err, out)
		}
		deadline := time.After(60 * time.Second)
		for {
			select {
			case got := <-seen:
				if got == "configmap/"+name {
					return
				}
			case <-deadline:
				t.Fatalf("the watch through the balancer never showed %s; kubectl said:\n%s", name, watchErr.String())
			}
		}
	}
	created("before-restart")

	// The list loop: every kubectl get must succeed.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lists, failures atomic.Int32
	var failMu sync.Mutex
	var firstFailure string
	listDone := make(chan struct{})
	go func() {
		defer close(listDone)
		for ctx.Err() == nil {
			out, err := kubectl(context.Background(), "get", "namespaces", "-o", "name").CombinedOutput()
			lists.Add(1)
			if err != nil || !strings.Contains(string(out), "namespace/default") {
				failures.Add(1)
				failMu.Lock()
				if firstFailure == "" {
					firstFailure = fmt.Sprintf("%v: %s", err, out)
				}
				failMu.Unlock()
			}
		}
	}()
	// One replica at a time, as a rollout does: the next stops only once
	// the balancer sends the restarted one traffic again (nginx keeps a
	// replica it saw refuse connections out of rotation for fail_timeout;
	// stopping the next sooner would leave no replica in rotation).
	for _, r := range f.replicas {
		before := lists.Load()
		r.stop(t)
		r.start(t)
		until(t, "lists while "+r.name+" restarted", func() bool { return lists.Load() >= before+3 })
		until(t, "the balancer sends "+r.name+" traffic again", func() bool { return r.proxied.Load() > 0 })
	}
	cancel()
	<-listDone
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d kubectl gets failed during the rolling restart; the first: %s", n, lists.Load(), firstFailure)
	}
	t.Logf("%d kubectl gets through the rolling restart, %d watches", lists.Load(), watches.Load())

	created("after-restart")
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
