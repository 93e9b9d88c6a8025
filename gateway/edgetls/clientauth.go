package edgetls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
)

// loadClientCAs reads the PEM bundle of CAs that sign client certificates.
func loadClientCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &OptionError{Option: OptionClientCAFile, Problem: fmt.Sprintf("read %s: %v", path, unwrapPath(err))}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, &OptionError{Option: OptionClientCAFile, Problem: fmt.Sprintf("%s holds no PEM certificate", path)}
	}
	return pool, nil
}

// ClientIdentity returns the machine identity of a connection whose client
// presented a certificate that verified against Options.ClientCAFile:
// the subject's common name as the user and its organizations as groups,
// the mapping Kubernetes uses, so kubectl's client certificates mean the
// same at Berth as at a cluster. ok is false when there is no verified
// client certificate (no TLS, no certificate, or client auth disabled);
// an unverified certificate never counts, because the listener only asks
// with VerifyClientCertIfGiven against the configured CAs.
//
// authn calls it with fasthttp's ctx.TLSConnectionState().
func ClientIdentity(state *tls.ConnectionState) (user string, groups []string, ok bool) {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return "", nil, false
	}
	leaf := state.VerifiedChains[0][0]
	if leaf.Subject.CommonName == "" {
		return "", nil, false
	}
	groups = slices.Clone(leaf.Subject.Organization)
	slices.Sort(groups)
	return leaf.Subject.CommonName, slices.Compact(groups), true
}
