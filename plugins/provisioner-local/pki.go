package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Identities in a cluster's PKI.
const (
	// gatewayUser is the user name of the gateway's client certificate.
	// It has no groups: the ClusterRoleBinding made at create lets it
	// impersonate, and nothing else.
	gatewayUser = "berth-gateway"
	// adminUser is the user name of the admin client certificate, in
	// system:masters; the plugin uses it to set the cluster up.
	adminUser = "berth-local-admin"
)

// Certificate lifetimes. The CA outlives any local demo; the leaves are
// renewed by nothing yet, so a cluster older than leafLifetime must be
// re-created.
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = 365 * 24 * time.Hour
)

// File names under a cluster's pki directory.
const (
	fileCACert         = "ca.crt"
	fileCAKey          = "ca.key"
	fileServingCert    = "apiserver.crt"
	fileServingKey     = "apiserver.key"
	fileAdminCert      = "admin.crt"
	fileAdminKey       = "admin.key"
	fileGatewayCert    = "gateway.crt"
	fileGatewayKey     = "gateway.key"
	fileSAKey          = "sa.key"
	fileSAPub          = "sa.pub"
	fileEtcdCACert     = "etcd-ca.crt"
	fileEtcdCAKey      = "etcd-ca.key"
	fileEtcdCert       = "etcd.crt"
	fileEtcdKey        = "etcd.key"
	fileEtcdClientCert = "apiserver-etcd-client.crt"
	fileEtcdClientKey  = "apiserver-etcd-client.key"
)

// authority is a CA that can sign leaves.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// leaf describes one certificate to issue.
type leaf struct {
	certFile, keyFile string
	cn                string
	orgs              []string
	usages            []x509.ExtKeyUsage
	dns               []string
	ips               []net.IP
}

// writePKI creates a cluster's key material in dir, which must not exist.
// It writes into a temporary sibling and renames it, so a crash half-way
// leaves either no PKI or a whole one. There are two CAs, as kubeadm does:
// one for the API server and its clients, one for etcd, so that an etcd
// client certificate is no identity on the API server and vice versa.
func writePKI(dir string) error {
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("clear %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := writePKIFiles(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move the PKI into place: %w", err)
	}
	return nil
}

func writePKIFiles(dir string) error {
	loopback := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	// The first address of the service range is the in-cluster
	// "kubernetes" Service, for anything that runs inside the cluster.
	serving := append(loopback, net.ParseIP(kubernetesServiceIP))
	ca, err := newAuthority(dir, fileCACert, fileCAKey, "berth-local-ca")
	if err != nil {
		return err
	}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	for _, l := range []leaf{
		{certFile: fileServingCert, keyFile: fileServingKey, cn: "kube-apiserver",
			usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, ips: serving,
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		{certFile: fileAdminCert, keyFile: fileAdminKey, cn: adminUser, orgs: []string{"system:masters"}, usages: client},
		{certFile: fileGatewayCert, keyFile: fileGatewayKey, cn: gatewayUser, usages: client},
	} {
		if err := ca.issue(dir, l); err != nil {
			return err
		}
	}
	etcdCA, err := newAuthority(dir, fileEtcdCACert, fileEtcdCAKey, "berth-local-etcd-ca")
	if err != nil {
		return err
	}
	for _, l := range []leaf{
		// One certificate for etcd's client and peer listeners: a single
		// member still opens a peer port, and it should not be plain text.
		{certFile: fileEtcdCert, keyFile: fileEtcdKey, cn: "etcd",
			usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			ips:    loopback, dns: []string{"localhost"}},
		{certFile: fileEtcdClientCert, keyFile: fileEtcdClientKey, cn: "kube-apiserver-etcd-client", usages: client},
	} {
		if err := etcdCA.issue(dir, l); err != nil {
			return err
		}
	}
	// The service-account key pair signs and verifies the tokens of
	// ServiceAccounts.
	saKey, err := newKey()
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, fileSAKey), saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(crypto.PublicKey(saKey.Public()))
	if err != nil {
		return fmt.Errorf("encode the service-account public key: %w", err)
	}
	return writePEM(filepath.Join(dir, fileSAPub), "PUBLIC KEY", pub, 0o644)
}

func newAuthority(dir, certFile, keyFile, cn string) (*authority, error) {
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
		NotAfter:              now.Add(caLifetime),
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
	if err := writePEM(filepath.Join(dir, certFile), "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	if err := writeKey(filepath.Join(dir, keyFile), key); err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key}, nil
}

func (a *authority) issue(dir string, l leaf) error {
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
		Subject:      pkix.Name{CommonName: l.cn, Organization: l.orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  l.usages,
		DNSNames:     l.dns,
		IPAddresses:  l.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		return fmt.Errorf("issue the %s certificate: %w", l.cn, err)
	}
	if err := writePEM(filepath.Join(dir, l.certFile), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writeKey(filepath.Join(dir, l.keyFile), key)
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
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// credentials is what the plugin itself reads back from a cluster's PKI.
type credentials struct {
	caPEM      []byte
	caHash     string
	admin      tls.Certificate
	gatewayPEM []byte // certificate, PEM
	gatewayKey []byte // key, PEM: a secret
	etcdCAPEM  []byte
	etcdClient tls.Certificate
}

// loadCredentials reads the parts of dir's PKI the plugin needs to talk to
// the cluster and to hand out its connection.
func loadCredentials(dir string) (*credentials, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read the cluster PKI: %w", err)
		}
		return b, nil
	}
	var c credentials
	var err error
	if c.caPEM, err = read(fileCACert); err != nil {
		return nil, err
	}
	if c.caHash, err = caCertHash(c.caPEM); err != nil {
		return nil, err
	}
	if c.gatewayPEM, err = read(fileGatewayCert); err != nil {
		return nil, err
	}
	if c.gatewayKey, err = read(fileGatewayKey); err != nil {
		return nil, err
	}
	if c.etcdCAPEM, err = read(fileEtcdCACert); err != nil {
		return nil, err
	}
	if c.admin, err = tls.LoadX509KeyPair(filepath.Join(dir, fileAdminCert), filepath.Join(dir, fileAdminKey)); err != nil {
		return nil, fmt.Errorf("load the admin certificate: %w", err)
	}
	if c.etcdClient, err = tls.LoadX509KeyPair(filepath.Join(dir, fileEtcdClientCert), filepath.Join(dir, fileEtcdClientKey)); err != nil {
		return nil, fmt.Errorf("load the etcd client certificate: %w", err)
	}
	return &c, nil
}

// caCertHash is kubeadm's --discovery-token-ca-cert-hash of a CA:
// "sha256:" and the hex SHA-256 of its DER SubjectPublicKeyInfo.
func caCertHash(caPEM []byte) (string, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("the cluster CA is not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("parse the cluster CA: %w", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
