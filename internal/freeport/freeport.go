// Package freeport picks loopback TCP ports for test servers that must be
// told their port before they start, such as pebble (whose challenges reach
// the gateway on fixed ports), etcd and kube-apiserver.
//
// A port taken by binding 127.0.0.1:0 and closing comes from the kernel's
// ephemeral range, the same range every outgoing connection's local port
// comes from; with many tests connecting in parallel, one of those
// connections can take the port before the server binds it ("address
// already in use"). Pick chooses ports outside that range instead (below
// it, or above it when there is no room below), which the kernel never
// hands out by itself.
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
	lo, hi := pickRange(ephemeralRange())
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			return nil, fmt.Errorf("freeport: no free port in %d-%d after %d tries", lo, hi-1, tries)
		}
		p := lo + rand.IntN(hi-lo)
		if handed[p] || !free(p) {
			continue
		}
		handed[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}

// pickRange is where Pick chooses, [lo, hi), given the ephemeral range
// [first, last]: below it from lowest up, or else above it; when the
// ephemeral range leaves neither (as "1024 65535" does), ports from lowest
// to Linux's default start, which the kernel may then hand out too.
func pickRange(first, last int) (lo, hi int) {
	const room = 1000
	switch {
	case first-lowest >= room:
		return lowest, first
	case 65535-last >= room:
		return last + 1, 65536
	}
	return lowest, 32768
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

// ephemeralRange is the kernel's ephemeral port range (Linux's default
// when it cannot be read).
func ephemeralRange() (first, last int) {
	first, last = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return first, last
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return first, last
	}
	f, err1 := strconv.Atoi(fields[0])
	l, err2 := strconv.Atoi(fields[1])
	if err1 != nil || err2 != nil || f > l {
		return first, last
	}
	return f, l
}
