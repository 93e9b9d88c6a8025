package gateway

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tenantNet is a network namespace made for one test and joined to the
// host by a veth pair, with addresses from TEST-NET-1 (192.0.2.0/24,
// RFC 5737). It stands in for a pod network: the apiserver's pod, service
// and node proxies refuse loopback and link-local targets, so a "pod" on
// 127.0.0.1 cannot be reached through them, but PodIP does.
type tenantNet struct {
	name, hostIf string
	// HostIP is the host's end; PodIP is the namespace's, where the
	// tenant's servers listen.
	HostIP, PodIP string
}

// newTenantNet makes the namespace and the veth pair, on a /30 of
// 192.0.2.0/24 no other interface here uses, and removes both when the
// test ends. It needs root (CAP_NET_ADMIN) and iproute2.
func newTenantNet(t *testing.T) *tenantNet {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("the tenant network needs iproute2's ip: %v", err)
	}
	used, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip addr show: %v", err)
	}
	n := &tenantNet{name: fmt.Sprintf("berth-t%d", os.Getpid()), hostIf: fmt.Sprintf("vb%dh", os.Getpid())}
	for k := 1; k < 64 && n.PodIP == ""; k++ {
		host, pod := fmt.Sprintf("192.0.2.%d", 4*k+1), fmt.Sprintf("192.0.2.%d", 4*k+2)
		if !strings.Contains(string(used), " "+host+"/") && !strings.Contains(string(used), " "+pod+"/") {
			n.HostIP, n.PodIP = host, pod
		}
	}
	if n.PodIP == "" {
		t.Fatal("no free /30 in 192.0.2.0/24")
	}
	peer := fmt.Sprintf("vb%dn", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", n.name)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", n.hostIf).Run()
		exec.Command("ip", "netns", "del", n.name).Run()
	})
	ip("link", "add", n.hostIf, "type", "veth", "peer", "name", peer)
	ip("link", "set", peer, "netns", n.name)
	ip("addr", "add", n.HostIP+"/30", "dev", n.hostIf)
	ip("link", "set", n.hostIf, "up")
	ip("-n", n.name, "addr", "add", n.PodIP+"/30", "dev", peer)
	ip("-n", n.name, "link", "set", peer, "up")
	ip("-n", n.name, "link", "set", "lo", "up")
	return n
}

// Listen opens a TCP listener on PodIP:port inside the namespace. A
// socket belongs to the namespace it was made in, so one OS thread enters
// the namespace, listens and returns; the listener stays in the namespace
// while the test's goroutines serve it.
func (n *tenantNet) Listen(t *testing.T, port int) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Locked for good unless the thread returns to the host's
		// namespace: the runtime then ends the thread with the goroutine
		// rather than reuse it.
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: fmt.Errorf("open own netns: %w", err)}
			return
		}
		defer unix.Close(self)
		target, err := unix.Open("/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: fmt.Errorf("open netns %s: %w", n.name, err)}
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("enter netns %s: %w", n.name, err)}
			return
		}
		ln, lerr := net.Listen("tcp", net.JoinHostPort(n.PodIP, fmt.Sprint(port)))
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			if ln != nil {
				ln.Close()
			}
			done <- result{err: fmt.Errorf("leave netns %s: %w", n.name, err)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{ln, lerr}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}
