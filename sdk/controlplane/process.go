package controlplane

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Command says how to run one control-plane program.
type Command struct {
	// Name names the program in messages: "etcd", "kube-apiserver".
	Name string
	// Path and Args are the program and its arguments (see Etcd.Args and
	// APIServer.Args).
	Path string
	Args []string
	// LogFile receives the program's stdout and stderr, appended after a
	// line with the time and the command line. The output never goes to
	// the starter's own stdout or stderr: a plugin's are pipes to its host
	// that close when the plugin exits, and a write to them would then
	// kill the program.
	LogFile string
	// Env is the program's environment; nil means Environ().
	Env []string
	// DieWithParent asks the kernel (Linux only) to kill the program when
	// its starter dies: right for a test, whose control plane must not
	// outlive it; wrong for a provisioner whose control planes outlive a
	// restart of the provisioner.
	DieWithParent bool
}

// Process is a program started by Start. It leads its own process group:
// it gets no signal meant for the starter's group (a Ctrl-C in a
// terminal), and Stop reaches whatever it forked. Its fields are
// read-only.
type Process struct {
	Name string
	Pid  int

	done chan struct{} // closed once Wait returned
	err  error
}

// Start starts c's program. Only its own arguments are logged, never
// secrets: command lines name files and ports.
func Start(c Command) (*Process, error) {
	logFile, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the %s log: %w", c.Name, err)
	}
	fmt.Fprintf(logFile, "# %s: %s %s\n", time.Now().UTC().Format(time.RFC3339), c.Path, strings.Join(c.Args, " "))
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = c.Env
	if cmd.Env == nil {
		cmd.Env = Environ()
	}
	if err := setProcAttrs(cmd, c.DieWithParent); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", c.Name, c.Path, err)
	}
	p := &Process{Name: c.Name, Pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited returns an error that says how the process ended, or nil while it
// runs. A Poll check can return it wrapped by Permanent.
func (p *Process) Exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s (pid %d) exited: %v", p.Name, p.Pid, p.err)
	default:
		return nil
	}
}

// Stop ends the process and its group; see StopGroup.
func (p *Process) Stop(grace time.Duration) error {
	_, err := StopGroup(p.Name, p.Pid, p.done, grace)
	return err
}

// Kill sends SIGKILL to the process group and waits for the process.
func (p *Process) Kill() {
	_ = signalGroup(p.Pid, syscall.SIGKILL)
	<-p.done
}

// StopGroup ends the process group led by pid, whose leader's end closes
// exited: SIGTERM, then SIGKILL if the leader is still there after grace,
// and it waits for the leader. Whatever is left of the group once the
// leader is gone is killed. killed reports whether SIGKILL was needed. The
// leader need not be the caller's child (a provisioner may re-adopt one an
// earlier run of it started), as long as something closes exited.
func StopGroup(name string, pid int, exited <-chan struct{}, grace time.Duration) (killed bool, err error) {
	select {
	case <-exited:
		// The leader is gone; still sweep the group for anything it forked.
		_ = signalGroup(pid, syscall.SIGKILL)
		return false, nil
	default:
	}
	if err := signalGroup(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return false, fmt.Errorf("signal %s (pid %d): %w", name, pid, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
		_ = signalGroup(pid, syscall.SIGKILL)
		return false, nil
	case <-timer.C:
	}
	if err := signalGroup(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return true, fmt.Errorf("kill %s (pid %d): %w", name, pid, err)
	}
	select {
	case <-exited:
		return true, nil
	case <-time.After(10 * time.Second):
		return true, fmt.Errorf("%s (pid %d) still there 10s after SIGKILL", name, pid)
	}
}

// Environ returns this process's environment without the variables that
// would steer etcd away from its flags (ETCD_*) or a tool towards another
// cluster (KUBECONFIG), and without those that start with any of drop.
func Environ(drop ...string) []string {
	drop = append([]string{"ETCD_", "KUBECONFIG="}, drop...)
	var out []string
	for _, kv := range os.Environ() {
		if !hasAnyPrefix(kv, drop) {
			out = append(out, kv)
		}
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// TailFile returns the last n lines of the file at path (a process's log),
// or a note that it cannot be read, for an error message.
func TailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return lastLines(string(data), n)
}

// ReadPIDFile returns the pid a pid file holds, or 0 when it cannot be
// read or holds no number.
func ReadPIDFile(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}
