// Package tlstest listens with TLS on the loopback address, for the HTTPS
// clusters that tests and benchmarks stand up in their own process.
package tlstest

import (
	"crypto/tls"
	"encoding/pem"
	"net"
	"net/http/httptest"
	"testing"
)

// Listen returns a TLS listener on 127.0.0.1 offering HTTP/1.1 by ALPN,
// with httptest's certificate for that address, and the certificate's PEM
// for clients to trust. The listener is closed when tb ends.
func Listen(tb testing.TB) (net.Listener, []byte) {
	tb.Helper()
	// httptest holds a certificate for 127.0.0.1; start a server only to
	// take it.
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS()
	cert := ts.TLS.Certificates
	ts.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert[0].Certificate[0]})
	return tls.NewListener(ln, &tls.Config{Certificates: cert, NextProtos: []string{"http/1.1"}}), caPEM
}
