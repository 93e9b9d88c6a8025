//go:build linux

package controlplane

import (
	"bytes"
	"os"
	"os/exec"
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
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may itself
	// hold spaces or parentheses: take the last ')'.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) {
		return false
	} else if s := stat[i+2]; s == 'Z' || s == 'X' {
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
