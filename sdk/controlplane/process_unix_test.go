//go:build unix

package controlplane

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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

// KillGroups kills the group of each live process a pid file names, and
// only those: a stale pid file (its process gone) is passed over.
func TestKillGroups(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Alive reads /proc: Linux only")
	}
	dir := t.TempDir()
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	write := func(name string, pid int) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("live.pid", pid)
	write("stale.pid", 1<<22+1) // above pid_max's default: no such process
	if got := ReadPIDFile(filepath.Join(dir, "live.pid")); got != pid {
		t.Fatalf("ReadPIDFile = %d, want %d", got, pid)
	}
	if !Alive(pid) {
		t.Fatal("a running sleep is not alive")
	}
	if got := KillGroups(filepath.Join(dir, "*.pid")); len(got) != 1 || got[0] != pid {
		t.Fatalf("KillGroups = %v, want [%d]", got, pid)
	}
	_ = cmd.Wait()
	if Alive(pid) {
		t.Error("still alive after KillGroups")
	}
}
