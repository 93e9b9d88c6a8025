//go:build unix && !linux

package controlplane

import (
	"os/exec"
	"syscall"
)

// setProcAttrs ignores dieWithParent, which only Linux offers.
func setProcAttrs(cmd *exec.Cmd, dieWithParent bool) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return nil
}

func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}

// ProcessHasArg is always false here: it reads /proc, which is Linux's.
func ProcessHasArg(pid int, arg string) bool { return false }

// KillGroups does nothing here: it reads /proc to tell a live process
// from a reused pid, which only Linux has.
func KillGroups(string) []int { return nil }

// Alive is always false here: it reads /proc, which is Linux's.
func Alive(int) bool { return false }
