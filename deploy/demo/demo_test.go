// Package demo holds the test of `make demo`'s script, demo.sh: it runs
// the script as a newcomer would, on ports and in a directory of its own,
// and stops it as `make demo-stop` does.
package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
	"github.com/berthgw/berth/internal/freeport"
)

func TestDemoScript(t *testing.T) {
	kubeenv.MustBinaries(t) // skips, or fails under BERTH_E2E, without them
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command(sc, "demo.sh").CombinedOutput(); err != nil {
			t.Errorf("shellcheck demo.sh: %v\n%s", err, out)
		}
	} else if os.Getenv(kubeenv.EnvE2E) != "" {
		t.Error("shellcheck is missing (deploy/e2e/build-k8s.sh installs it)")
	}
	ports, err := freeport.Pick(2)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := freeport.Pick(1)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "demo")
	env := append(os.Environ(),
		"BERTH_DEMO_DIR="+dir, "BERTH_DEMO_BIN="+filepath.Join(tmp, "bin"),
		"BERTH_DEMO_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(ports[0]),
		"BERTH_DEMO_HTTPS_ADDR=127.0.0.1:"+strconv.Itoa(ports[1]),
		"BERTH_DEMO_PORTS="+strconv.Itoa(cluster[0])+"-"+strconv.Itoa(cluster[0]+20),
		"BERTH_SKIP_APT=1",
	)
	run := func(arg string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "demo.sh", arg)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			run("stop")
		}
	})

	out, err := run("start")
	if err != nil {
		t.Fatalf("demo.sh start: %v\n%s", err, out)
	}
	// Each step printed, and each did what it says.
	for _, want := range []string{
		"==> berth login https://127.0.0.1:" + strconv.Itoa(ports[1]),
		"Signed in to https://127.0.0.1:" + strconv.Itoa(ports[1]) + " as admin.",
		"create demo 100% succeeded",
		"==> kubectl get namespaces",
		"kube-system",
		"make demo-stop",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo.sh start's output lacks %q:\n%s", want, out)
		}
	}
	kc, err := os.ReadFile(filepath.Join(dir, "kubeconfig"))
	if err != nil || !strings.Contains(string(kc), "- credential") || strings.Contains(string(kc), "token") {
		t.Errorf("the demo's kubeconfig (%v):\n%s", err, kc)
	}
	// What runs: Berth and the cluster's processes, to be gone after stop.
	var pids []int
	files, _ := filepath.Glob(filepath.Join(dir, "clusters", "clusters", "*", "run", "*.pid"))
	files = append(files, filepath.Join(dir, "berth.pid"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		pids = append(pids, pid)
	}
	if len(pids) < 3 {
		t.Errorf("processes running: %v, want berth, etcd and kube-apiserver", pids)
	}
	if out, err := run("start"); err == nil || !strings.Contains(out, "already running") {
		t.Errorf("a second start: %v\n%s", err, out)
	}

	out, err = run("stop")
	stopped = true
	if err != nil || !strings.Contains(out, "Signed out of") || !strings.Contains(out, "stopped and cleaned up") {
		t.Fatalf("demo.sh stop: %v\n%s", err, out)
	}
	for _, pid := range pids {
		for i := 0; i < 50 && alive(pid); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("process %d still runs after demo.sh stop", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the demo's directory is still there: %v", err)
	}
}

// alive reports whether pid runs: a zombie waiting for a parent that does
// not reap (init in some containers) has ended.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) S …: the state follows the last ")".
	rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}
