//go:build !unix

package controlplane

import (
	"errors"
	"os/exec"
	"syscall"
)

var errNoGroups = errors.New("process groups are not supported on this OS")

// setProcAttrs refuses: without process groups, Stop could not reach what
// a program forks.
func setProcAttrs(*exec.Cmd, bool) error { return errNoGroups }

func signalGroup(int, syscall.Signal) error { return errNoGroups }

// ProcessHasArg is always false here: it reads /proc, which is Linux's.
func ProcessHasArg(int, string) bool { return false }
