//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// setProcAttrs puts a control-plane process in its own process group: it
// then gets no signal meant for the plugin's group (a Ctrl-C in the
// gateway's terminal), Delete can signal it and whatever it forks, and it
// outlives the plugin. There is deliberately no Pdeathsig: the point of
// re-adoption is that a plugin restart does not restart the clusters.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}

// processMatches reports whether pid is a live (not zombie) process whose
// command line holds marker, an argument naming this cluster's own files.
// The check guards re-adoption against pid reuse: after a reboot the pid
// in a pid file may belong to anything.
func processMatches(pid int, marker string) bool {
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
	for _, arg := range bytes.Split(cmdline, []byte{0}) {
		if string(arg) == marker {
			return true
		}
	}
	return false
}

// platformCheck reports whether this OS can run control planes.
func platformCheck() error { return nil }
