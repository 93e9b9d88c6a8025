//go:build unix && !linux

package kubeenv

import (
	"os/exec"
	"syscall"
)

// setProcAttrs puts the child in its own process group, so that Stop can
// signal it and anything it forks.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}

// groupsSupported tells Start that children can get their own process group.
const groupsSupported = true
