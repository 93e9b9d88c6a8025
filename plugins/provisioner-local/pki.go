package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/berthgw/berth/sdk/controlplane"
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
	f := func(name string) string { return filepath.Join(dir, name) }
	ca, err := controlplane.NewCA("berth-local-ca", caLifetime, f(fileCACert), f(fileCAKey))
	if err != nil {
		return err
	}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	// The first address of the service range is the in-cluster
	// "kubernetes" Service, for anything that runs inside the cluster.
	serving := controlplane.APIServerLeaf(kubernetesServiceIP)
	serving.CertFile, serving.KeyFile = f(fileServingCert), f(fileServingKey)
	for _, l := range []controlplane.Leaf{
		serving,
		{CertFile: f(fileAdminCert), KeyFile: f(fileAdminKey), CommonName: adminUser, Organizations: []string{"system:masters"}, Usages: client},
		{CertFile: f(fileGatewayCert), KeyFile: f(fileGatewayKey), CommonName: gatewayUser, Usages: client},
	} {
		l.Lifetime = leafLifetime
		if err := ca.Issue(l); err != nil {
			return err
		}
	}
	etcdCA, err := controlplane.NewCA("berth-local-etcd-ca", caLifetime, f(fileEtcdCACert), f(fileEtcdCAKey))
	if err != nil {
		return err
	}
	for _, l := range []controlplane.Leaf{
		// One certificate for etcd's client and peer listeners: a single
		// member still opens a peer port, and it should not be plain text.
		{CertFile: f(fileEtcdCert), KeyFile: f(fileEtcdKey), CommonName: "etcd",
			Usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPs:      []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			DNSNames: []string{"localhost"}},
		{CertFile: f(fileEtcdClientCert), KeyFile: f(fileEtcdClientKey), CommonName: "kube-apiserver-etcd-client", Usages: client},
	} {
		l.Lifetime = leafLifetime
		if err := etcdCA.Issue(l); err != nil {
			return err
		}
	}
	return controlplane.WriteServiceAccountKeys(f(fileSAKey), f(fileSAPub))
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
