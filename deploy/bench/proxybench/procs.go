package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process this program started, leading its own process group
// so that it and anything it forks (nginx's workers) can be ended together.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

var (
	childrenMu sync.Mutex
	children   []*child
)

// startChild runs path with args in its own process group, output to
// logPath. It is registered for stopAll.
func startChild(name, logPath string, env []string, path string, args ...string) (*child, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: opening the log: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		_ = logFile.Close()
		close(c.done)
	}()
	childrenMu.Lock()
	children = append(children, c)
	childrenMu.Unlock()
	return c, nil
}

// pid is the child's process id, which is also its process group's id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM to the child's process group, then SIGKILL if it is
// still there after grace.
func (c *child) stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
	}
	// nginx's workers may outlive a master killed hard; end the group.
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
}

// exited reports an error if the child has ended.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited early: %v", c.name, c.err)
	default:
		return nil
	}
}

// stopAll stops every child started so far, newest first.
func stopAll() {
	childrenMu.Lock()
	cs := children
	children = nil
	childrenMu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i].stop(5 * time.Second)
	}
}

// waitFile waits up to timeout for path to exist and be non-empty, failing
// early if c exits.
func waitFile(c *child, path string, timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil && len(data) > 0 {
			return data, nil
		}
		if err := c.exited(); err != nil {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("%s: %s did not appear within %s", c.name, path, timeout)
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux this runs on.
const clockTicks = 100

// groupCPU is the user+system CPU time used so far by every live process
// in process group pgid (the group's threads included).
func groupCPU(pgid int) time.Duration {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name; pgrp is field 5,
		// utime 14 and stime 15 (1-based, as in proc(5)).
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g != pgid && pid != pgid {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// rssBytes is a process's resident set size (VmRSS).
func rssBytes(pid int) (int64, error) {
	m, err := readProcMem(pid)
	return m.RSS, err
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
