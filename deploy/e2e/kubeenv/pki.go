package kubeenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berthgw/berth/sdk/controlplane"
)

// pki is the key material written for one environment.
type pki struct {
	caCertPEM  []byte
	caFile     string
	certFile   string
	keyFile    string
	saPubFile  string
	saKeyFile  string
	adminToken string
	userToken  string
	tokenFile  string
}

// serviceIP is the first address of serviceCIDR: the "kubernetes" Service.
const (
	serviceCIDR = "10.0.0.0/24"
	serviceIP   = "10.0.0.1"
)

// lifetime bounds every certificate: a test environment lives for minutes.
const lifetime = 7 * 24 * time.Hour

// randomToken returns n random bytes as hex.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// writePKI creates, under dir, a CA, the apiserver's serving certificate for
// 127.0.0.1/localhost (and the in-cluster names), a service-account key
// pair, and the static token file.
func writePKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	p := &pki{
		caFile:    filepath.Join(dir, "ca.crt"),
		certFile:  filepath.Join(dir, "apiserver.crt"),
		keyFile:   filepath.Join(dir, "apiserver.key"),
		saPubFile: filepath.Join(dir, "sa.pub"),
		saKeyFile: filepath.Join(dir, "sa.key"),
		tokenFile: filepath.Join(dir, "tokens.csv"),
	}
	ca, err := controlplane.NewCA("berth-e2e-ca", lifetime, p.caFile, filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, err
	}
	p.caCertPEM = ca.CertPEM
	serving := controlplane.APIServerLeaf(serviceIP)
	serving.Lifetime, serving.CertFile, serving.KeyFile = lifetime, p.certFile, p.keyFile
	if err := ca.Issue(serving); err != nil {
		return nil, err
	}
	if err := controlplane.WriteServiceAccountKeys(p.saKeyFile, p.saPubFile); err != nil {
		return nil, err
	}

	if p.adminToken, err = randomToken(24); err != nil {
		return nil, err
	}
	if p.userToken, err = randomToken(24); err != nil {
		return nil, err
	}
	// token,user,uid,"group1,group2"
	tokens := fmt.Sprintf("%s,%s,%s,\"system:masters\"\n%s,%s,%s,\"%s\"\n",
		p.adminToken, AdminUser, "berth-e2e-admin-uid",
		p.userToken, UnprivilegedUser, "berth-e2e-user-uid", UnprivilegedGroup)
	if err := os.WriteFile(p.tokenFile, []byte(tokens), 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", p.tokenFile, err)
	}
	return p, nil
}
