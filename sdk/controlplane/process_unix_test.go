//go:build unix

package controlplane

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProcess(t *testing.T) {
	log := filepath.Join(t.TempDir(), "sleep.log")
	// The shell ignores SIGTERM and forks a sleep into its group: Stop must
	// escalate to SIGKILL and leave nothing of the group behind.
	p, err := Start(Command{Name: "sleeper", Path: "/bin/sh", Args: []string{"-c", "trap '' TERM; sleep 60 & wait"}, LogFile: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Exited(); err != nil {
		t.Fatalf("Exited() = %v while running", err)
	}
	time.Sleep(200 * time.Millisecond) // let the shell set its trap
	killed, err := StopGroup(p.Name, p.Pid, p.Done(), 300*time.Millisecond)
	if err != nil || !killed {
		t.Fatalf("StopGroup = %v, %v; want killed", killed, err)
	}
	if err := p.Exited(); err == nil || !strings.Contains(err.Error(), "sleeper") {
		t.Errorf("Exited() after stop = %v", err)
	}
	// The forked sleep got SIGKILL with its group; init reaps it a moment
	// after its parent is gone.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := syscall.Kill(-p.Pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has members (kill 0: %v)", p.Pid, err)
		}
	}
	if data, _ := os.ReadFile(log); !strings.Contains(string(data), "/bin/sh -c trap") {
		t.Errorf("the log does not start with the command line:\n%s", data)
	}
	if err := p.Stop(time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestProcessHasArg was provisioner-local's TestProcessMatches.
func TestProcessHasArg(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("re-adoption reads /proc: Linux only")
	}
	if !ProcessHasArg(os.Getpid(), os.Args[0]) {
		t.Error("the test process does not match its own argv[0]")
	}
	if ProcessHasArg(os.Getpid(), "--data-dir=/nowhere") {
		t.Error("matched a marker not on the command line")
	}
	if ProcessHasArg(0, os.Args[0]) || ProcessHasArg(-1, os.Args[0]) {
		t.Error("matched an invalid pid")
	}
}
