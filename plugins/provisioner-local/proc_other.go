//go:build !linux

package main

import (
	"errors"
	"os/exec"
	"syscall"
)

// The plugin runs control planes on Linux only: re-adoption reads /proc.

func setProcAttrs(*exec.Cmd) {}

func signalGroup(int, syscall.Signal) error {
	return errors.New("process groups are not supported on this OS")
}

func processMatches(int, string) bool { return false }

func platformCheck() error {
	return errors.New("provisioner-local runs on Linux only")
}
