// Package freeport picks loopback TCP ports for test servers that must be
// told their port before they start, such as pebble (whose challenges reach
// the gateway on fixed ports), etcd and kube-apiserver.
//
// A port taken by binding 127.0.0.1:0 and closing comes from the kernel's
// ephemeral range, the same range every outgoing connection's local port
// comes from; with many tests connecting in parallel, one of those
// connections can take the port before the server binds it ("address
// already in use"). Pick chooses ports below that range instead, which the
// kernel never hands out by itself.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the bottom of the range Pick chooses from, clear of the
// commonly configured ports and of provisioner-local's default cluster
// ports (17000-17999), which tests run alongside.
const lowest = 20000

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// Pick returns n distinct ports that were free on 127.0.0.1 a moment ago
// and that this process has not handed out before.
func Pick(n int) ([]int, error) {
	mu.Lock()
	defer mu.Unlock()
	top := ephemeralStart()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			return nil, fmt.Errorf("freeport: no free port in %d-%d after %d tries", lowest, top-1, tries)
		}
		p := lowest + rand.IntN(top-lowest)
		if handed[p] || !free(p) {
			continue
		}
		handed[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}

// free reports whether p can be bound on 127.0.0.1 now.
func free(p int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// ephemeralStart is the first port of the kernel's ephemeral range (Linux's
// default 32768 when it cannot be read).
func ephemeralStart() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return fallback
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low <= lowest+1000 {
		// Too small a range to pick from: keep below the usual start.
		return fallback
	}
	return low
}
