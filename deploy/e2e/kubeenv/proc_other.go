//go:build !unix

package kubeenv

import (
	"errors"
	"os/exec"
	"syscall"
)

// setProcAttrs does nothing where there are no process groups.
func setProcAttrs(cmd *exec.Cmd) {}

// signalGroup is not supported here; Start refuses to run on such systems.
func signalGroup(pid int, sig syscall.Signal) error {
	return errors.New("kubeenv: process groups are not supported on this OS")
}

// groupsSupported tells Start that this OS cannot run the environment.
const groupsSupported = false
