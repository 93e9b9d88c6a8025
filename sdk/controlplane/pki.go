package controlplane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority that issues a control plane's
// certificates. Keys are ECDSA P-256.
type CA struct {
	// Cert is the CA's certificate and CertPEM its PEM encoding.
	Cert    *x509.Certificate
	CertPEM []byte
	key     *ecdsa.PrivateKey
}

// NewCA creates a self-signed CA called cn, valid from an hour ago (to
// allow for clock skew) for lifetime, and writes its certificate (mode
// 0644) and its key (mode 0600) as PEM to certFile and keyFile.
func NewCA(cn string, lifetime time.Duration, certFile, keyFile string) (*CA, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create the %s certificate: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse the %s certificate: %w", cn, err)
	}
	ca := &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
	if err := writeFile(certFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if err := writeKey(keyFile, key); err != nil {
		return nil, err
	}
	return ca, nil
}

// Leaf describes a certificate for CA.Issue.
type Leaf struct {
	// CommonName and Organizations are the subject; the API server takes
	// them as the user name and groups of a client certificate.
	CommonName    string
	Organizations []string
	// Usages are the extended key usages: server or client auth, or both.
	Usages []x509.ExtKeyUsage
	// DNSNames and IPs are the subject alternative names of a serving
	// certificate.
	DNSNames []string
	IPs      []net.IP
	// Lifetime counts from now; the certificate is valid from an hour ago.
	Lifetime time.Duration
	// CertFile and KeyFile are where the PEM certificate (mode 0644) and
	// key (mode 0600) are written.
	CertFile, KeyFile string
}

// APIServerLeaf is the serving certificate of an API server on loopback:
// 127.0.0.1, ::1, localhost, and the names and address (serviceIP, the
// first address of the service range) of the in-cluster kubernetes
// Service. The caller sets the lifetime and the files.
func APIServerLeaf(serviceIP string) Leaf {
	return Leaf{
		CommonName: "kube-apiserver",
		Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.ParseIP(serviceIP)},
	}
}

// Issue creates the certificate l describes, signed by ca, and writes it
// and its new key.
func (ca *CA) Issue(l Leaf) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: l.CommonName, Organization: l.Organizations},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(l.Lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  l.Usages,
		DNSNames:     l.DNSNames,
		IPAddresses:  l.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return fmt.Errorf("issue the %s certificate: %w", l.CommonName, err)
	}
	if err := writeFile(l.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return writeKey(l.KeyFile, key)
}

// WriteServiceAccountKeys writes a new key pair that signs (keyFile, mode
// 0600) and verifies (pubFile, mode 0644) ServiceAccount tokens.
func WriteServiceAccountKeys(keyFile, pubFile string) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	if err := writeKey(keyFile, key); err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(crypto.PublicKey(key.Public()))
	if err != nil {
		return fmt.Errorf("encode the service-account public key: %w", err)
	}
	return writeFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate a key: %w", err)
	}
	return k, nil
}

func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate a serial number: %w", err)
	}
	return n, nil
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return fmt.Errorf("encode the key for %s: %w", filepath.Base(path), err)
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
