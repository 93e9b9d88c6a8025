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

// KillGroups does nothing here: without process groups there is nothing
// it could reach.
func KillGroups(string) []int { return nil }

// Alive is always false here: it reads /proc, which is Linux's.
func Alive(int) bool { return false }
