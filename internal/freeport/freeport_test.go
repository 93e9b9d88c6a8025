package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPick(t *testing.T) {
	ports, err := Pick(20)
	if err != nil {
		t.Fatal(err)
	}
	top := ephemeralStart()
	seen := map[int]bool{}
	for _, p := range ports {
		if p < lowest || p >= top {
			t.Errorf("port %d outside %d-%d, below the ephemeral range", p, lowest, top-1)
		}
		if seen[p] {
			t.Errorf("port %d handed out twice", p)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("picked port %d cannot be bound: %v", p, err)
			continue
		}
		ln.Close()
	}
	// A later call never repeats a port this process was given.
	more, err := Pick(20)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range more {
		if seen[p] {
			t.Errorf("port %d handed out again", p)
		}
	}
}

// A port something listens on is not free.
func TestFreeSeesBoundPorts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	if free(p) {
		t.Errorf("port %d is bound but free says it is free", p)
	}
	ln.Close()
	if !free(p) {
		t.Errorf("port %d was released but free says it is taken", p)
	}
}
