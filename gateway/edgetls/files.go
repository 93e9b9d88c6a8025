package edgetls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"
)

// filePair is the certificate and key of mode files as last read.
type filePair struct {
	certPEM, keyPEM []byte
	cert            *tls.Certificate
}

// loadFilePair reads and checks the configured certificate and key. Every
// error is an *OptionError naming the option at fault, in one line, and never
// quotes key material.
func loadFilePair(f Files, now time.Time) (*filePair, error) {
	certPEM, err := os.ReadFile(f.CertFile)
	if err != nil {
		return nil, &OptionError{Option: OptionCertFile, Problem: fmt.Sprintf("read %s: %v", f.CertFile, unwrapPath(err))}
	}
	keyPEM, err := os.ReadFile(f.KeyFile)
	if err != nil {
		return nil, &OptionError{Option: OptionKeyFile, Problem: fmt.Sprintf("read %s: %v", f.KeyFile, unwrapPath(err))}
	}
	cert, err := checkPair(certPEM, keyPEM, f, now)
	if err != nil {
		return nil, err
	}
	return &filePair{certPEM: certPEM, keyPEM: keyPEM, cert: cert}, nil
}

// checkPair parses a PEM certificate chain and key and refuses a key that
// does not match, or a leaf that is expired or not yet valid.
func checkPair(certPEM, keyPEM []byte, f Files, now time.Time) (*tls.Certificate, error) {
	certErr := func(format string, args ...any) error {
		return &OptionError{Option: OptionCertFile, Problem: f.CertFile + ": " + fmt.Sprintf(format, args...)}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "does not match"):
			return nil, &OptionError{Option: OptionKeyFile, Problem: fmt.Sprintf("%s does not match the certificate in %s", f.KeyFile, f.CertFile)}
		case strings.Contains(msg, "certificate input"):
			return nil, certErr("no usable PEM certificate")
		case strings.Contains(msg, "key"):
			return nil, &OptionError{Option: OptionKeyFile, Problem: fmt.Sprintf("%s: no usable PEM private key", f.KeyFile)}
		default:
			return nil, certErr("no usable PEM certificate (%s)", strings.TrimPrefix(msg, "tls: "))
		}
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, certErr("parse certificate: %v", err)
	}
	cert.Leaf = leaf
	if now.After(leaf.NotAfter) {
		return nil, certErr("certificate expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, certErr("certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// watchFiles re-reads the files every interval and swaps in a changed,
// valid pair. New handshakes get the new certificate; connections already
// open keep theirs, so nothing is dropped. A broken pair (say, the
// certificate written but not yet the key) is reported once and the old
// certificate kept until the files are whole again.
func (m *Manager) watchFiles(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.Files.ReloadInterval)
	defer t.Stop()
	var lastBad []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		certPEM, err1 := os.ReadFile(m.cfg.Files.CertFile)
		keyPEM, err2 := os.ReadFile(m.cfg.Files.KeyFile)
		cur := m.filePair.Load()
		if err1 == nil && err2 == nil && bytes.Equal(certPEM, cur.certPEM) && bytes.Equal(keyPEM, cur.keyPEM) {
			continue
		}
		var cert *tls.Certificate
		err := err1
		if err == nil {
			err = err2
		}
		if err == nil {
			cert, err = checkPair(certPEM, keyPEM, m.cfg.Files, m.now())
		}
		if err != nil {
			sig := append(append([]byte(err.Error()), certPEM...), keyPEM...)
			if !bytes.Equal(sig, lastBad) {
				lastBad = sig
				m.log.Error("tls files changed but cannot be used; still serving the previous certificate", "err", err)
				m.setStatus(filesStatusKey, func(s *nameStatus) { s.LastError, s.LastErrorAt = err.Error(), m.now().UTC() }, nil)
			}
			continue
		}
		lastBad = nil
		m.filePair.Store(&filePair{certPEM: certPEM, keyPEM: keyPEM, cert: cert})
		m.setStatus(filesStatusKey, func(s *nameStatus) { s.LastRenewedAt, s.LastError = m.now().UTC(), "" }, nil)
		m.log.Info("tls certificate reloaded from files", "serial", cert.Leaf.SerialNumber.Text(16),
			"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}
