package edgetls

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
)

// CertificateInfo describes one certificate Berth serves or manages, for
// GET /api/v1/tls/certificates. It never includes key material.
type CertificateInfo struct {
	// Names are the DNS names and IP addresses the certificate covers (for
	// a name still waiting for its first certificate, that name).
	Names []string `json:"names"`
	// Source is self_signed, files or acme.
	Source string `json:"source"`
	// Issuer is the issuing CA's subject common name; CA is the ACME
	// directory host that issued it.
	Issuer    string     `json:"issuer,omitempty"`
	CA        string     `json:"ca,omitempty"`
	Serial    string     `json:"serial,omitempty"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	// Status is valid, expired, pending (acme: not obtained yet) or
	// not_issued (on_demand: no handshake has obtained one yet).
	Status string `json:"status"`
	// Managed is true when Berth renews the certificate itself.
	Managed bool `json:"managed"`
	// LastRenewedAt is when this process last obtained or reloaded it.
	LastRenewedAt *time.Time `json:"last_renewed_at,omitempty"`
	// LastError is the last failure to obtain, renew or reload it, cleared
	// by the next success.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// Certificates lists what the gateway serves: the certificate of its mode,
// every ACME certificate in storage, configured ACME names that have none
// yet, and the self-signed fallback of the ACME modes.
func (m *Manager) Certificates(ctx context.Context) ([]CertificateInfo, error) {
	now := m.now()
	var out []CertificateInfo
	switch m.mode {
	case ModeFiles:
		out = append(out, m.describe(m.filePair.Load().cert.Leaf, "files", now, m.getStatus(filesStatusKey)))
	case ModeACME, ModeOnDemand:
		have := map[string]bool{}
		keys, err := m.storage.List(ctx, "certificates", true)
		if err != nil && !isNotExist(err) {
			return nil, err
		}
		for _, k := range keys {
			if !strings.HasSuffix(k, ".crt") {
				continue
			}
			data, err := m.storage.Load(ctx, k)
			if err != nil {
				continue // deleted meanwhile
			}
			leaf := firstCert(data)
			if leaf == nil {
				continue
			}
			names := certNames(leaf)
			var st nameStatus
			for _, n := range names {
				have[n] = true
				if s := m.getStatus(n); !s.LastErrorAt.IsZero() || !s.LastRenewedAt.IsZero() {
					st = s
				}
			}
			info := m.describe(leaf, "acme", now, st)
			info.Managed = true
			if parts := strings.Split(k, "/"); len(parts) > 2 {
				info.CA = parts[1]
			}
			out = append(out, info)
		}
		// Names without a certificate: configured ones (acme obtains them
		// now; on_demand at their first handshake) and any name whose last
		// attempt failed, such as one refused by the issuance limit.
		waiting := map[string]bool{}
		for _, n := range m.cfg.Names {
			if n = normalizeName(n); net.ParseIP(n) == nil && !strings.HasPrefix(n, "*.") {
				waiting[n] = true
			}
		}
		m.statusMu.Lock()
		for n, st := range m.status {
			if st.LastError != "" && n != filesStatusKey {
				waiting[n] = true
			}
		}
		m.statusMu.Unlock()
		var names []string
		for n := range waiting {
			if !have[n] {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			status := "pending"
			if m.mode == ModeOnDemand {
				status = "not_issued"
			}
			info := CertificateInfo{Names: []string{n}, Source: "acme", Status: status, Managed: true}
			fillStatus(&info, m.getStatus(n))
			out = append(out, info)
		}
		out = append(out, m.describe(m.selfSigned.Leaf, "self_signed", now, nameStatus{}))
	default:
		out = append(out, m.describe(m.selfSigned.Leaf, "self_signed", now, nameStatus{}))
	}
	return out, nil
}

func (m *Manager) describe(leaf *x509.Certificate, source string, now time.Time, st nameStatus) CertificateInfo {
	if leaf == nil {
		return CertificateInfo{Source: source, Status: "pending"}
	}
	nb, na := leaf.NotBefore.UTC(), leaf.NotAfter.UTC()
	info := CertificateInfo{
		Names:     certNames(leaf),
		Source:    source,
		Issuer:    leaf.Issuer.CommonName,
		Serial:    leaf.SerialNumber.Text(16),
		NotBefore: &nb,
		NotAfter:  &na,
		Status:    "valid",
		Managed:   source == "self_signed",
	}
	if now.After(na) {
		info.Status = "expired"
	}
	fillStatus(&info, st)
	return info
}

func fillStatus(info *CertificateInfo, st nameStatus) {
	if !st.LastRenewedAt.IsZero() {
		t := st.LastRenewedAt.UTC()
		info.LastRenewedAt = &t
	}
	if st.LastError != "" {
		t := st.LastErrorAt.UTC()
		info.LastError, info.LastErrorAt = st.LastError, &t
	}
}

func certNames(leaf *x509.Certificate) []string {
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = append(names, leaf.Subject.CommonName)
	}
	return names
}

func firstCert(pemData []byte) *x509.Certificate {
	block, _ := pem.Decode(pemData)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil
	}
	return c
}

// HandleCertificates serves GET /api/v1/tls/certificates (paged).
func (m *Manager) HandleCertificates(ctx *fasthttp.RequestCtx) error {
	page, perr := httpapi.ParsePage(ctx)
	if m == nil {
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList([]CertificateInfo(nil), 0, page))
		return nil
	}
	if perr != nil {
		return perr
	}
	all, err := m.Certificates(ctx)
	if err != nil {
		return fmt.Errorf("list tls certificates: %w", err)
	}
	start := min((page.Page-1)*page.PageSize, len(all))
	end := min(start+page.PageSize, len(all))
	httpapi.WriteJSON(ctx, fasthttp.StatusOK, httpapi.NewList(all[start:end], len(all), page))
	return nil
}
