package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk/controlplane"
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
	exited     <-chan struct{} // closed when the current process is gone
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
	if err != nil || !controlplane.ProcessHasArg(pid, s.spec.marker) {
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
			if !controlplane.ProcessHasArg(pid, s.spec.marker) {
				close(exited)
				return
			}
		}
	}()
}

// launch starts a new process and records its pid. The process leads its
// own process group: it gets no signal meant for the plugin's group, and it
// outlives the plugin (there is deliberately no DieWithParent: the point of
// re-adoption is that a plugin restart does not restart the clusters).
func (s *supervisor) launch() error {
	rotateLog(s.spec.logFile)
	proc, err := controlplane.Start(controlplane.Command{
		Name: s.spec.name, Path: s.spec.path, Args: s.spec.args, LogFile: s.spec.logFile,
		// Nothing of the plugin's own handshake with the gateway.
		Env: controlplane.Environ("PLUGIN_", "BERTH_PLUGIN"),
	})
	if err != nil {
		return err
	}
	go func() {
		<-proc.Done()
		s.log.Debug("process exited", "pid", proc.Pid, "status", fmt.Sprint(proc.Exited()))
	}()
	s.mu.Lock()
	s.pid, s.exited, s.launchedAt = proc.Pid, proc.Done(), time.Now()
	s.mu.Unlock()
	if err := os.WriteFile(s.spec.pidFile, []byte(strconv.Itoa(proc.Pid)+"\n"), 0o600); err != nil {
		// Without the pid file the next plugin cannot re-adopt; it would
		// start a second copy that fails on the taken ports. Better fail now.
		proc.Kill()
		return fmt.Errorf("write %s: %w", s.spec.pidFile, err)
	}
	s.log.Info("started process", "pid", proc.Pid)
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
	killed, err := controlplane.StopGroup(s.spec.name, pid, exited, grace)
	if killed {
		s.log.Warn("process ignored SIGTERM and was killed", "pid", pid)
	}
	return err
}

// rotateLog moves a log grown past maxLogSize aside, keeping one old copy.
func rotateLog(path string) {
	if st, err := os.Stat(path); err == nil && st.Size() > maxLogSize {
		_ = os.Rename(path, path+".1")
	}
}
