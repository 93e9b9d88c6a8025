package gateway

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// newClientCA makes a CA for client certificates (see newFilesCA) and
// writes it to a PEM file for tls.client_auth.ca_file.
func newClientCA(t *testing.T) (ca *x509.Certificate, key *ecdsa.PrivateKey, file string) {
	t.Helper()
	c := newFilesCA(t)
	file = filepath.Join(t.TempDir(), "client-ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return c.cert, c.key, file
}

// The TLS handshake checks a client certificate's dates once; a kept-alive
// connection outlives them. Once the certificate has expired, the next
// request on the same connection is refused.
func TestClientCertificateExpiresOnKeptAliveConnection(t *testing.T) {
	ca, caKey, caFile := newClientCA(t)
	ag := startAuth(t, map[string]string{"BERTH_TLS_CLIENT_AUTH_CA_FILE": caFile})

	certPEM, keyPEM := clientCert(t, ca, caKey, time.Now().Add(time.Hour), "admin")
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ag.CertificatePEM())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}}
	defer client.CloseIdleConnections()
	me := func() (status int, reused bool) {
		t.Helper()
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", ag.https+"/api/v1/auth/me", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) // read whole, so the connection is reused
		resp.Body.Close()
		return resp.StatusCode, reused
	}
	if status, _ := me(); status != 200 {
		t.Fatalf("valid certificate: %d", status)
	}
	ag.clock.Advance(2 * time.Hour)
	if status, reused := me(); status != 401 || !reused {
		t.Errorf("expired certificate on a kept-alive connection: %d (connection reused: %v), want 401", status, reused)
	}
}
