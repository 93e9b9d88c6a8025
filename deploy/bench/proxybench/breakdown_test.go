package main

import "testing"

func TestPartOf(t *testing.T) {
	for _, tc := range []struct {
		frames []string // leaf first
		want   string
	}{
		{[]string{"internal/runtime/syscall/linux.Syscall6", "syscall.RawSyscall6", "syscall.write", "crypto/tls.(*Conn).Write", "github.com/valyala/fasthttp.(*HostClient).Do", "github.com/berthgw/berth/proxy.(*Proxy).forward"}, "kernel (system calls)"},
		{[]string{"crypto/internal/fips140/aes/gcm.seal", "crypto/tls.(*Conn).Write", "github.com/valyala/fasthttp.(*Server).serveConn"}, "TLS library (crypto/…)"},
		{[]string{"github.com/valyala/fasthttp.(*ResponseHeader).tryRead", "github.com/valyala/fasthttp.(*HostClient).Do", "github.com/berthgw/berth/proxy.(*Proxy).forward", "github.com/berthgw/berth/gateway/clusters.(*ProxyRoute).serve"}, "fasthttp client (upstream round trip)"},
		{[]string{"runtime.mallocgc", "github.com/berthgw/berth/proxy.setIdentity", "github.com/berthgw/berth/gateway/clusters.(*ProxyRoute).serve"}, "Berth proxy package"},
		{[]string{"runtime.mapassign_faststr", "github.com/berthgw/berth/gateway/clusters.(*Service).Identity", "github.com/valyala/fasthttp.(*Server).serveConn"}, "Berth gateway"},
		{[]string{"github.com/valyala/fasthttp.(*RequestHeader).parse", "github.com/valyala/fasthttp.(*Server).serveConn"}, "fasthttp server (client side)"},
		{[]string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}, "Go runtime: garbage collector"},
		{[]string{"runtime.futex", "runtime.findRunnable", "runtime.schedule"}, "Go runtime: scheduler, other"},
		{nil, "Go runtime: scheduler, other"},
	} {
		if got := parts[partOf(tc.frames)].name; got != tc.want {
			t.Errorf("%v: %q, want %q", tc.frames, got, tc.want)
		}
	}
}
