package main

import "testing"

func TestPartOf(t *testing.T) {
	for _, tc := range []struct {
		frames []string // leaf first
		want   string
	}{
		{[]string{"internal/runtime/syscall/linux.Syscall6", "syscall.RawSyscall6", "syscall.write", "crypto/tls.(*Conn).Write", "github.com/valyala/fasthttp.(*HostClient).Do", "github.com/berthgw/berth/proxy.(*Proxy).forward"}, "kernel (system calls)"},
		{[]string{"crypto/internal/fips140/aes/gcm.seal", "crypto/tls.(*Conn).Write", "github.com/valyala/fasthttp.(*Server).serveConn"}, "TLS library (crypto/tls)"},
		{[]string{"github.com/valyala/fasthttp.(*ResponseHeader).tryRead", "github.com/valyala/fasthttp.(*HostClient).Do", "github.com/berthgw/berth/proxy.(*Proxy).forward", "github.com/berthgw/berth/gateway/clusters.(*ProxyRoute).serve"}, "fasthttp client (upstream round trip)"},
		{[]string{"runtime.mallocgc", "github.com/berthgw/berth/proxy.setIdentity", "github.com/berthgw/berth/gateway/clusters.(*ProxyRoute).serve"}, "Berth proxy package"},
		{[]string{"runtime.mapassign_faststr", "github.com/berthgw/berth/gateway/clusters.(*Service).Identity", "github.com/valyala/fasthttp.(*Server).serveConn"}, "Berth gateway"},
		{[]string{"github.com/valyala/fasthttp.(*RequestHeader).parse", "github.com/valyala/fasthttp.(*Server).serveConn"}, "fasthttp server (client side)"},
		{[]string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}, "Go runtime: background GC"},
		{[]string{"runtime.futex", "runtime.findRunnable", "runtime.schedule"}, "kernel (system calls)"},
		{[]string{"runtime.findRunnable", "runtime.schedule"}, "Go runtime: scheduler, other"},
		{[]string{"runtime.readgstatus", "runtime.schedule"}, "Go runtime: scheduler, other"}, // not runtime.read, a system call
		// The gateway's metrics observer, called from the proxy, is the
		// gateway's; the proxy's own code called from the gateway is the
		// proxy's.
		{[]string{"github.com/prometheus/client_golang/prometheus.(*counter).Inc", "github.com/berthgw/berth/gateway/clusters.(*Metrics).Request", "github.com/berthgw/berth/proxy.(*Proxy).forward", "github.com/berthgw/berth/gateway/clusters.(*ProxyRoute).serve"}, "Berth gateway"},
		// Hashing outside TLS goes to whoever asked for it.
		{[]string{"crypto/sha256.block", "crypto/hmac.(*hmac).Sum", "github.com/berthgw/berth/gateway/identity.(*Service).digest", "github.com/valyala/fasthttp.(*Server).serveConn"}, "Berth gateway"},
		{nil, "Go runtime: scheduler, other"},
	} {
		if got := parts[partOf(tc.frames)].name; got != tc.want {
			t.Errorf("%v: %q, want %q", tc.frames, got, tc.want)
		}
	}
}
