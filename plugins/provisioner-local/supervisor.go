package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Restart back-off of a crashed process: doubling from backoffMin to
// backoffMax, and back to backoffMin once a process has stayed up for
// backoffReset.
const (
	backoffMin   = time.Second
	backoffMax   = 30 * time.Second
	backoffReset = time.Minute
	// adoptPoll is how often a re-adopted process, which is not our child
	// and so cannot be waited for, is checked for life.
	adoptPoll = time.Second
	// maxLogSize is when a process log is rotated (once, to <name>.log.1)
	// at the next start.
	maxLogSize = 20 << 20
)

// procSpec says how to run one control-plane process.
type procSpec struct {
	name string // "etcd" or "kube-apiserver"
	path string
	args []string
	// marker is an argument only this cluster's process has (one naming
	// its data or certificate files); re-adoption requires it.
	marker  string
	pidFile string
	logFile string
}

// supervisor keeps one process running: it adopts a live one from the pid
// file or starts one, and restarts it with back-off when it dies, until
// stop.
type supervisor struct {
	spec      procSpec
	log       hclog.Logger
	onRestart func(pid int)

	mu         sync.Mutex
	pid        int
	exited     chan struct{} // closed when the current process is gone
	launchedAt time.Time
	deaths     int
	stopOnce   sync.Once
	stopCh     chan struct{}
	loopDone   chan struct{}
}

func newSupervisor(spec procSpec, log hclog.Logger, onRestart func(pid int)) *supervisor {
	return &supervisor{
		spec:      spec,
		log:       log.With("process", spec.name),
		onRestart: onRestart,
		stopCh:    make(chan struct{}),
		loopDone:  make(chan struct{}),
	}
}

// start adopts the process named by the pid file if it is alive and ours,
// or launches a new one, and then supervises it in the background. It
// reports whether it adopted.
func (s *supervisor) start() (adopted bool, err error) {
	if pid, ok := s.adoptable(); ok {
		s.adopt(pid)
		adopted = true
	} else if err := s.launch(); err != nil {
		close(s.loopDone)
		return false, err
	}
	go s.loop()
	return adopted, nil
}

// adoptable reads the pid file and checks the process it names.
func (s *supervisor) adoptable() (int, bool) {
	data, err := os.ReadFile(s.spec.pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || !processMatches(pid, s.spec.marker) {
		return 0, false
	}
	return pid, true
}

// adopt watches pid, a process an earlier plugin started. It is not our
// child, so we poll /proc instead of waiting for it.
func (s *supervisor) adopt(pid int) {
	exited := make(chan struct{})
	s.mu.Lock()
	s.pid, s.exited, s.launchedAt = pid, exited, time.Now()
	s.mu.Unlock()
	s.log.Info("re-adopted running process", "pid", pid)
	go func() {
		t := time.NewTicker(adoptPoll)
		defer t.Stop()
		for range t.C {
			if !processMatches(pid, s.spec.marker) {
				close(exited)
				return
			}
		}
	}()
}

// launch starts a new process and records its pid.
func (s *supervisor) launch() error {
	rotateLog(s.spec.logFile)
	logFile, err := os.OpenFile(s.spec.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the %s log: %w", s.spec.name, err)
	}
	// Arguments are paths and ports, never secrets, so they may be logged.
	fmt.Fprintf(logFile, "# %s: %s %s\n", time.Now().UTC().Format(time.RFC3339), s.spec.path, strings.Join(s.spec.args, " "))
	cmd := exec.Command(s.spec.path, s.spec.args...)
	// The process's output goes to its own log file, never to the plugin's
	// stdout or stderr: those are pipes to the gateway that close when the
	// plugin exits, and a write to them would then kill the process.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = childEnv()
	setProcAttrs(cmd)
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s (%s): %w", s.spec.name, s.spec.path, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		s.log.Debug("process exited", "pid", pid, "status", fmt.Sprint(err))
		close(exited)
	}()
	s.mu.Lock()
	s.pid, s.exited, s.launchedAt = pid, exited, time.Now()
	s.mu.Unlock()
	if err := os.WriteFile(s.spec.pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		// Without the pid file the next plugin cannot re-adopt; it would
		// start a second copy that fails on the taken ports. Better fail now.
		_ = signalGroup(pid, syscall.SIGKILL)
		<-exited
		return fmt.Errorf("write %s: %w", s.spec.pidFile, err)
	}
	s.log.Info("started process", "pid", pid)
	return nil
}

// loop restarts the process each time it dies, until stop.
func (s *supervisor) loop() {
	defer close(s.loopDone)
	backoff := backoffMin
	for {
		s.mu.Lock()
		exited, pid := s.exited, s.pid
		s.mu.Unlock()
		select {
		case <-s.stopCh:
			return
		case <-exited:
		}
		s.mu.Lock()
		s.deaths++
		if time.Since(s.launchedAt) > backoffReset {
			backoff = backoffMin
		}
		s.mu.Unlock()
		s.log.Warn("process died; restarting", "pid", pid, "after", backoff.String())
		select {
		case <-s.stopCh:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, backoffMax)
		if err := s.launch(); err != nil {
			s.log.Error("restart failed", "error", err.Error())
			s.mu.Lock()
			s.launchedAt = time.Now() // so the back-off keeps growing
			s.mu.Unlock()
			// Keep looping: the closed channel makes the next round wait
			// out the back-off and try again.
			continue
		}
		s.mu.Lock()
		newPID := s.pid
		s.mu.Unlock()
		if s.onRestart != nil {
			s.onRestart(newPID)
		}
	}
}

// running reports the pid and whether the process is up.
func (s *supervisor) running() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exited == nil {
		return 0, false
	}
	select {
	case <-s.exited:
		return s.pid, false
	default:
		return s.pid, true
	}
}

// deathCount is how often the supervised process has died.
func (s *supervisor) deathCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deaths
}

// stop ends supervision and the process: SIGTERM to its group, SIGKILL
// after grace, and waits for it to be gone. The pid file is removed.
func (s *supervisor) stop(grace time.Duration) error {
	s.stopOnce.Do(func() { close(s.stopCh) })
	<-s.loopDone
	s.mu.Lock()
	pid, exited := s.pid, s.exited
	s.mu.Unlock()
	defer os.Remove(s.spec.pidFile)
	if exited == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	default:
	}
	if err := signalGroup(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pid %d): %w", s.spec.name, pid, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-timer.C:
	}
	s.log.Warn("process ignored SIGTERM; killing it", "pid", pid)
	if err := signalGroup(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pid %d): %w", s.spec.name, pid, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) still there 10s after SIGKILL", s.spec.name, pid)
	}
}

// childEnv is the plugin's environment without variables that would steer
// etcd away from its flags or a tool towards another cluster.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ETCD_") || strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "PLUGIN_") ||
			strings.HasPrefix(kv, "BERTH_PLUGIN") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// rotateLog moves a log grown past maxLogSize aside, keeping one old copy.
func rotateLog(path string) {
	if st, err := os.Stat(path); err == nil && st.Size() > maxLogSize {
		_ = os.Rename(path, path+".1")
	}
}
