package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/deploy/bench/podgen"
)

// writeCert writes a self-signed ECDSA certificate for 127.0.0.1 (it is its
// own CA) to dir/cert.pem and dir/key.pem.
func writeCert(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generating a key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "berth-bench"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("signing the certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("encoding the key: %w", err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", fmt.Errorf("writing the certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", fmt.Errorf("writing the key: %w", err)
	}
	return certFile, keyFile, nil
}

// smallBody is the static backend's answer to GET
// /api/v1/namespaces/default: a Namespace padded with annotations to about
// 1 KB, like a small object from an API server.
var smallBody = func() []byte {
	ann := map[string]string{}
	for i := range 12 {
		ann[fmt.Sprintf("bench.berth.dev/annotation-%02d", i)] = strings.Repeat(strconv.Itoa(i%10), 40)
	}
	ns := map[string]any{
		"kind": "Namespace", "apiVersion": "v1",
		"metadata": map[string]any{
			"name": "default", "uid": "0c8d6f6e-4b7c-4a55-9e39-3c7b1b5c2d11", "resourceVersion": "196",
			"creationTimestamp": "2025-01-01T00:00:00Z",
			"labels":            map[string]string{"kubernetes.io/metadata.name": "default"},
			"annotations":       ann,
		},
		"spec":   map[string]any{"finalizers": []string{"kubernetes"}},
		"status": map[string]any{"phase": "Active"},
	}
	b, _ := json.Marshal(ns)
	return b
}()

// podLists are the backend's generated pod lists, one per size, made on
// first use.
type podLists struct {
	mu    sync.Mutex
	lists map[int][][]byte
}

func (p *podLists) get(n int) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.lists[n]; ok {
		return l
	}
	l := podgen.Items(n, uint64(n))
	p.lists[n] = l
	return l
}

// runBackend is the "backend" command: an HTTPS server (net/http, HTTP/1.1
// only, like the API server seen by a proxy that offers only http/1.1)
// standing in for a cluster. It answers
//
//	GET /version                       a Kubernetes version (for Berth's probe)
//	GET /api/v1/namespaces/default     a ~1 KB JSON object
//	GET /api/v1/namespaces/pods-N/pods N realistic pods, honouring limit and continue
//
// and writes its address to -ready once listening.
func runBackend(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory holding cert.pem and key.pem")
	ready := fs.String("ready", "", "file to write the listen address to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(*dir, "cert.pem"), filepath.Join(*dir, "key.pem"))
	if err != nil {
		return fmt.Errorf("loading the certificate: %w", err)
	}
	lists := &podLists{lists: map[int][][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"major":"1","minor":"31","gitVersion":"v1.31.14-bench","platform":"linux/amd64"}`)
	})
	mux.HandleFunc("GET /api/v1/namespaces/default", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(smallBody)))
		_, _ = w.Write(smallBody)
	})
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.PathValue("ns"), "pods-"))
		if err != nil || n <= 0 || n > 200_000 {
			http.Error(w, "namespace must be pods-<count>", http.StatusNotFound)
			return
		}
		items := lists.get(n)
		q := r.URL.Query()
		from, _ := strconv.Atoi(q.Get("continue"))
		from = min(max(from, 0), n)
		to := n
		if limit, _ := strconv.Atoi(q.Get("limit")); limit > 0 {
			to = min(from+limit, n)
		}
		cont := ""
		if to < n {
			cont = strconv.Itoa(to)
		}
		body := podgen.AppendList(nil, items[from:to], cont, n-to)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	if err := os.WriteFile(*ready, []byte(ln.Addr().String()), 0o600); err != nil {
		return fmt.Errorf("writing the ready file: %w", err)
	}
	return srv.Serve(tls.NewListener(ln, srv.TLSConfig))
}
