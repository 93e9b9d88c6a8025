// Package edgetls provides the certificates Berth serves HTTPS with, in four
// modes: self_signed (an ECDSA certificate made at first start), files (a
// certificate and key read from disk and reloaded when they change), acme
// and on_demand (certificates from an ACME CA through certmagic). Every
// private key kept in the store is sealed with the secret key. See
// docs/tls.md.
package edgetls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"

	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// certRecord is a stored certificate; the key is sealed with the secret key.
type certRecord struct {
	CertPEM   string    `json:"cert_pem"`
	KeySealed []byte    `json:"key_sealed"`
	Names     []string  `json:"names"`
	NotAfter  time.Time `json:"not_after"`
	CreatedAt time.Time `json:"created_at"`
}

var certificates = store.NewTable[certRecord]("certificates")

const (
	selfSignedID   = "self-signed"
	selfSignedLife = 365 * 24 * time.Hour
	// renewBefore: a certificate this close to expiry is replaced at start.
	renewBefore = 30 * 24 * time.Hour
)

// DefaultNames are always in the self-signed certificate.
var DefaultNames = []string{"localhost", "127.0.0.1", "::1"}

// SelfSigned returns the stored self-signed certificate, making (and
// storing) a new one when there is none, it is near expiry, or it does not
// cover every name in extra. The certificate's PEM is returned too, for
// clients that must trust it (kubeconfigs Berth hands out).
func SelfSigned(db *store.DB, box *secretbox.Box, extra []string, now time.Time) (tls.Certificate, []byte, error) {
	names := append(slices.Clone(DefaultNames), extra...)
	slices.Sort(names)
	names = slices.Compact(names)

	var rec *certRecord
	err := db.View(func(tx *store.Tx) error {
		r, err := certificates.Get(tx, selfSignedID)
		if err == nil {
			rec = r
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load self-signed certificate: %w", err)
	}
	if rec != nil && rec.NotAfter.Sub(now) > renewBefore && covers(rec.Names, names) {
		cert, err := rec.keyPair(box)
		return cert, []byte(rec.CertPEM), err
	}

	rec, keyPEM, err := newSelfSigned(names, now)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	rec.KeySealed = box.Seal(keyPEM, "tls/"+selfSignedID)
	if err := db.Update(func(tx *store.Tx) error { return certificates.Put(tx, selfSignedID, rec) }); err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("store self-signed certificate: %w", err)
	}
	cert, err := tls.X509KeyPair([]byte(rec.CertPEM), keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("self-signed key pair: %w", err)
	}
	return cert, []byte(rec.CertPEM), nil
}

func covers(have, want []string) bool {
	for _, n := range want {
		if !slices.Contains(have, n) {
			return false
		}
	}
	return true
}

func (r *certRecord) keyPair(box *secretbox.Box) (tls.Certificate, error) {
	keyPEM, err := box.Open(r.KeySealed, "tls/"+selfSignedID)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("open self-signed key (was the secret key changed?): %w", err)
	}
	cert, err := tls.X509KeyPair([]byte(r.CertPEM), keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signed key pair: %w", err)
	}
	return cert, nil
}

func newSelfSigned(names []string, now time.Time) (*certRecord, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Berth"}, CommonName: "Berth self-signed"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedLife),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	rec := &certRecord{
		CertPEM:   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		Names:     names,
		NotAfter:  tmpl.NotAfter.UTC(),
		CreatedAt: now.UTC(),
	}
	return rec, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// ServerConfig is a listener configuration serving cert alone, with the
// protocol settings of Manager.TLSConfig.
func ServerConfig(cert tls.Certificate) *tls.Config {
	c := baseConfig()
	c.Certificates = []tls.Certificate{cert}
	return c
}
