package edgetls

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"
	"golang.org/x/time/rate"

	"github.com/berthgw/berth/gateway/store"
)

// certmagic events Berth listens to; the rest are not even built (see
// ShouldEmitFunc), which keeps handshakes cheap.
const (
	evObtaining = "cert_obtaining"
	evObtained  = "cert_obtained"
	evFailed    = "cert_failed"
)

// initACME builds certmagic's cache, config and ACME issuer on Berth's
// storage. Nothing talks to the CA until Start.
func (m *Manager) initACME() error {
	a := m.cfg.ACME
	var roots *x509.CertPool
	if a.CARoot != "" {
		data, err := os.ReadFile(a.CARoot)
		if err != nil {
			return &OptionError{Option: OptionCARoot, Problem: fmt.Sprintf("read %s: %v", a.CARoot, unwrapPath(err))}
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(data) {
			return &OptionError{Option: OptionCARoot, Problem: fmt.Sprintf("%s holds no PEM certificate", a.CARoot)}
		}
	}
	m.challenges = slices.Clone(a.Challenges)
	if m.mode == ModeOnDemand {
		o := m.cfg.OnDemand
		m.limiter = rate.NewLimiter(rate.Every(o.Per/time.Duration(o.Issuances)), o.Issuances)
	}
	zl := newZapLogger(m.log)
	m.storage = NewStorage(m.db, m.box)

	// The cache's maintenance goroutine asks for the config of each
	// certificate; it starts before the config exists, hence the pointer.
	var current atomic.Pointer[certmagic.Config]
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) {
			if c := current.Load(); c != nil {
				return c, nil
			}
			return nil, errors.New("tls: certificate manager not ready")
		},
		RenewCheckInterval: a.RenewCheckInterval,
		Logger:             zl,
	})
	tmpl := certmagic.Config{
		Storage:            m.storage,
		Logger:             zl,
		RenewalWindowRatio: a.RenewalWindowRatio,
		OnEvent:            m.onEvent,
		ShouldEmitFunc: func(ev string) bool {
			return ev == evObtaining || ev == evObtained || ev == evFailed
		},
	}
	if m.mode == ModeOnDemand {
		tmpl.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: m.decide}
	}
	magic := certmagic.New(m.cache, tmpl)
	m.issuer = certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:     a.DirectoryURL,
		Email:  a.Email,
		Agreed: a.AgreeTerms,
		// Validated at load: without agreement Berth does not start, and
		// certmagic must never prompt on a terminal a server has not got.
		TrustedRoots:            roots,
		DisableHTTPChallenge:    !slices.Contains(a.Challenges, ChallengeHTTP01),
		DisableTLSALPNChallenge: !slices.Contains(a.Challenges, ChallengeTLSALPN01),
		Profile:                 a.Profile,
		Logger:                  zl,
	})
	magic.Issuers = []certmagic.Issuer{m.issuer}
	m.magic = magic
	current.Store(magic)
	return nil
}

// startACME points certmagic's challenge solvers at Berth's own listeners
// and, in mode acme, starts obtaining or loading the configured names.
//
// certmagic solves HTTP-01 and TLS-ALPN-01 by listening on the challenge
// ports itself unless something already does; giving it the addresses
// Berth is bound to makes it find them taken and rely on Berth's handlers
// (the HTTP middleware and the HTTPS listener's GetCertificate).
func (m *Manager) startACME(ctx context.Context, httpAddr, httpsAddr string) error {
	a := m.cfg.ACME
	if host, port, err := net.SplitHostPort(httpsAddr); err == nil {
		m.issuer.ListenHost = host
		m.issuer.AltTLSALPNPort, _ = strconv.Atoi(port)
	}
	if host, port, err := net.SplitHostPort(httpAddr); err == nil && slices.Contains(m.challenges, ChallengeHTTP01) {
		m.issuer.ListenHost = host
		m.issuer.AltHTTPPort, _ = strconv.Atoi(port)
	}
	if slices.Contains(m.challenges, ChallengeDNS01) {
		if m.dns == nil {
			return &OptionError{Option: OptionDNSProvider, Problem: fmt.Sprintf("dns-01 needs the DNS plugin %q, which is not loaded", a.DNSProvider)}
		}
		m.issuer.DNS01Solver = &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider: libdnsProvider{m.dns},
			Resolvers:   a.DNSResolvers,
			Logger:      m.magic.Logger,
		}}
	}
	if m.mode != ModeACME {
		return nil
	}
	var names []string
	for _, n := range m.cfg.Names {
		if net.ParseIP(n) == nil {
			names = append(names, normalizeName(n))
		}
	}
	// Asynchronous: a CA that is down must not keep Berth from serving;
	// certmagic retries with backoff, the API shows the last error, and the
	// self-signed certificate is served until the real one arrives.
	if err := m.magic.ManageAsync(ctx, names); err != nil {
		return fmt.Errorf("tls: manage certificates: %w", err)
	}
	return nil
}

// decide is on_demand's gate, asked before a certificate is loaded or
// obtained for a name at handshake: only names Berth serves (tls.names)
// qualify.
func (m *Manager) decide(_ context.Context, name string) error {
	if m.configuredName(name) {
		return nil
	}
	return fmt.Errorf("%s is not a host this gateway serves", name)
}

// onEvent records outcomes for the certificates API and enforces the
// on_demand issuance limit. cert_obtaining fires only once certmagic has
// found no usable certificate in storage, so loads never count.
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	id, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	switch event {
	case evObtaining:
		if m.limiter != nil && !renewal && !m.limiter.Allow() {
			err := fmt.Errorf("on-demand issuance limit reached (%d per %s)", m.cfg.OnDemand.Issuances, m.cfg.OnDemand.Per)
			m.log.Warn("refused on-demand certificate", "name", id, "err", err)
			m.setStatus(id, func(s *nameStatus) { s.LastError, s.LastErrorAt = err.Error(), m.now().UTC() }, nil)
			// No retry: the handshake that asked fails now, a later one
			// may try again.
			return certmagic.ErrNoRetry{Err: err}
		}
	case evObtained:
		m.setStatus(id, func(s *nameStatus) { s.LastRenewedAt, s.LastError, s.LastErrorAt = m.now().UTC(), "", time.Time{} },
			func(_ *store.Tx, _, next *nameStatus) error { next.FailureReported = false; return nil })
		m.log.Info("tls certificate obtained", "name", id, "renewal", renewal, "issuer", data["issuer"])
	case evFailed:
		msg := "unknown error"
		if err, ok := data["error"].(error); ok {
			msg = err.Error()
		}
		at := m.now().UTC()
		m.setStatus(id, func(s *nameStatus) { s.LastError, s.LastErrorAt = msg, at },
			func(tx *store.Tx, stored, next *nameStatus) error {
				// certmagic retries a failed renewal with backoff for
				// days, firing cert_failed at every attempt: the first
				// failure since the last success is the news.
				if stored.FailureReported {
					return nil
				}
				next.FailureReported = true
				return emitRenewalFailed(tx, at, id, renewal, msg)
			})
	}
	return nil
}

// DNSRecords sets and removes the TXT records of dns-01 challenges. The
// plugin host adapts a DNS plugin to it (sdk.DNSProvider's AppendRecords
// and DeleteRecords with one TXT record) and hands it to SetDNSProvider.
type DNSRecords interface {
	// AppendTXT adds a TXT record; name is relative to zone ("_acme-challenge.www"),
	// zone is fully qualified ("example.com.").
	AppendTXT(ctx context.Context, zone, name, value string, ttl time.Duration) error
	// DeleteTXT removes the TXT record with that name and value.
	DeleteTXT(ctx context.Context, zone, name, value string) error
}

// SetDNSProvider gives dns-01 its DNS records; call it before Start.
func (m *Manager) SetDNSProvider(p DNSRecords) { m.dns = p }

// libdnsProvider adapts DNSRecords to the libdns interfaces certmagic's
// DNS01Solver drives.
type libdnsProvider struct{ r DNSRecords }

func (p libdnsProvider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	for i, rec := range recs {
		rr := rec.RR()
		if rr.Type != "TXT" {
			return recs[:i], fmt.Errorf("dns-01: cannot set a %s record", rr.Type)
		}
		if err := p.r.AppendTXT(ctx, zone, rr.Name, rr.Data, rr.TTL); err != nil {
			return recs[:i], fmt.Errorf("dns-01: set TXT %s in %s: %w", rr.Name, zone, err)
		}
	}
	return recs, nil
}

func (p libdnsProvider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	for i, rec := range recs {
		rr := rec.RR()
		if err := p.r.DeleteTXT(ctx, zone, rr.Name, rr.Data); err != nil {
			return recs[:i], fmt.Errorf("dns-01: delete TXT %s in %s: %w", rr.Name, zone, err)
		}
	}
	return recs, nil
}
