//go:build linux

package controlplane

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

func setProcAttrs(cmd *exec.Cmd, dieWithParent bool) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if dieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	return nil
}

func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}

// ProcessHasArg reports whether pid is a live (not zombie) process whose
// command line holds arg, for example an argument that names one control
// plane's own files (Etcd.DataDirArg, APIServer.CertFileArg). It guards
// the re-adoption of a process from a pid file against pid reuse: after a
// reboot the pid may belong to anything. It reads /proc, so it is false on
// systems other than Linux.
func ProcessHasArg(pid int, arg string) bool {
	if !Alive(pid) {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	for _, a := range bytes.Split(cmdline, []byte{0}) {
		if string(a) == arg {
			return true
		}
	}
	return false
}

// Alive reports whether pid is a running process, not a zombie. It reads
// /proc, so it is false on systems other than Linux.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may itself
	// hold spaces or parentheses: take the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}

// KillGroups kills (SIGKILL) the process group of every live process named
// by a pid file matching pattern (filepath.Glob) and returns their pids. It
// is for cleaning up after an owner that is gone — a crashed plugin, a
// failed test — never for stopping processes in order (that is Stop).
func KillGroups(pattern string) []int {
	files, _ := filepath.Glob(pattern)
	var killed []int
	for _, f := range files {
		if pid := ReadPIDFile(f); Alive(pid) && syscall.Kill(-pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	return killed
}
