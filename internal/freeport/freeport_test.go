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
	first, last := ephemeralRange()
	seen := map[int]bool{}
	for _, p := range ports {
		if p >= first && p <= last {
			t.Errorf("port %d is in the ephemeral range %d-%d", p, first, last)
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

func TestPickRange(t *testing.T) {
	tests := []struct {
		first, last int
		lo, hi      int
	}{
		{32768, 60999, 20000, 32768}, // Linux's default: below it
		{40000, 65000, 20000, 40000},
		{1024, 50000, 50001, 65536}, // no room below: above it
		{1024, 65535, 20000, 32768}, // no room either side
		{20500, 65535, 20000, 32768},
	}
	for _, tt := range tests {
		if lo, hi := pickRange(tt.first, tt.last); lo != tt.lo || hi != tt.hi {
			t.Errorf("pickRange(%d, %d) = %d, %d, want %d, %d", tt.first, tt.last, lo, hi, tt.lo, tt.hi)
		}
	}
}
