package tlstest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"testing"
)

func TestListenServesTheCertificateItReturns(t *testing.T) {
	ln, caPEM := Listen(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "ok")
	}()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("the returned PEM holds no certificate")
	}
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("a client trusting the returned PEM: %v", err)
	}
	defer c.Close()
	if got := c.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
		t.Errorf("ALPN %q, want http/1.1", got)
	}
	if b, _ := io.ReadAll(c); string(b) != "ok" {
		t.Errorf("read %q", b)
	}
}
