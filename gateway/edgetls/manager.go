package edgetls

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"golang.org/x/time/rate"

	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// Manager provides the HTTPS listener's certificates in every mode, answers
// ACME challenges, and reports what it serves. Build it with New, call
// Start once the listeners are bound, and Stop before closing the store.
type Manager struct {
	cfg  Options
	db   *store.DB
	box  *secretbox.Box
	log  *slog.Logger
	now  func() time.Time
	mode string

	// The self-signed certificate: the certificate of mode self_signed, and
	// in the ACME modes the one served to clients that name no host (no
	// SNI, an IP address, localhost), which no CA would certify.
	selfSigned *tls.Certificate
	selfPEM    []byte

	filePair atomic.Pointer[filePair] // mode files

	// ACME modes.
	storage    *Storage
	cache      *certmagic.Cache
	magic      *certmagic.Config
	issuer     *certmagic.ACMEIssuer
	limiter    *rate.Limiter
	dns        DNSRecords
	challenges []string

	clientCAs *x509.CertPool

	statusMu sync.Mutex
	status   map[string]*nameStatus
	saveMu   sync.Mutex

	// httpsPort is the port redirects name: public_url's, or else the
	// HTTPS listener's.
	httpsPort string
	stop      context.CancelFunc
	wg        sync.WaitGroup
	stopOnce  sync.Once
}

// nameStatus is what the certificates API reports beyond the certificate.
type nameStatus struct {
	LastRenewedAt time.Time `json:"last_renewed_at,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	// FailureReported is set when certificate.renewal_failed was emitted
	// for the failures since the last success, and cleared by the next
	// success: each run of failures is reported once, on every replica's
	// behalf. Only the store's copy counts (see setStatus).
	FailureReported bool `json:"failure_reported,omitempty"`
}

// statusTable keeps each name's nameStatus, so a restart does not forget
// that the last renewal failed, and why. Its names are the configured
// ones and those on_demand was allowed to try.
var statusTable = store.NewTable[nameStatus]("tls_status")

const filesStatusKey = "files"

// New prepares the certificates of the configured mode. Errors in what the
// operator configured (unreadable, expired or mismatched files, a bad CA
// bundle) are *OptionError values naming the option.
func New(opts Options) (*Manager, error) {
	m := &Manager{
		cfg: opts, db: opts.DB, box: opts.Box, log: opts.Logger, now: opts.Now,
		mode: opts.Mode, status: map[string]*nameStatus{}, httpsPort: publicHTTPSPort(opts.PublicURL),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if err := m.loadStatus(); err != nil {
		return nil, fmt.Errorf("tls: read the certificate statuses: %w", err)
	}
	// In the ACME modes the self-signed certificate only stands in for
	// names no CA certifies, so the ACME names stay out of it.
	selfNames := m.cfg.Names
	if m.mode == ModeACME || m.mode == ModeOnDemand {
		selfNames = slices.DeleteFunc(slices.Clone(selfNames), func(n string) bool { return net.ParseIP(n) == nil })
	}
	cert, certPEM, err := SelfSigned(m.db, m.box, selfNames, m.now())
	if err != nil {
		return nil, err
	}
	m.selfSigned, m.selfPEM = &cert, certPEM
	if m.cfg.ClientCAFile != "" {
		if m.clientCAs, err = loadClientCAs(m.cfg.ClientCAFile); err != nil {
			return nil, err
		}
	}
	switch m.mode {
	case ModeSelfSigned:
	case ModeFiles:
		fp, err := loadFilePair(m.cfg.Files, m.now())
		if err != nil {
			return nil, err
		}
		m.filePair.Store(fp)
		m.log.Info("tls certificate loaded from files", "serial", fp.cert.Leaf.SerialNumber.Text(16),
			"not_after", fp.cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	case ModeACME, ModeOnDemand:
		if err := m.initACME(); err != nil {
			return nil, err
		}
	default:
		return nil, &OptionError{Option: OptionMode, Problem: fmt.Sprintf("unsupported mode %q", m.mode)}
	}
	return m, nil
}

// TLSConfig is the HTTPS listener's configuration: TLS 1.2 at least, AEAD
// cipher suites only, ALPN http/1.1 (and acme-tls/1 for TLS-ALPN-01, never
// h2: fasthttp has no HTTP/2 server), the certificate chosen per handshake,
// and client certificates asked for when a client CA is configured.
func (m *Manager) TLSConfig() *tls.Config {
	c := baseConfig()
	c.GetCertificate = m.getCertificate
	if m.magic != nil && slices.Contains(m.challenges, ChallengeTLSALPN01) {
		c.NextProtos = append(c.NextProtos, "acme-tls/1")
	}
	if m.clientCAs != nil {
		c.ClientAuth = tls.VerifyClientCertIfGiven
		c.ClientCAs = m.clientCAs
	}
	return c
}

// CertificatePEM is the certificate clients must be told to trust: the
// self-signed one in mode self_signed, nil otherwise (the certificate then
// comes from a CA the client should already trust).
func (m *Manager) CertificatePEM() []byte {
	if m == nil {
		return nil
	}
	if m.mode == ModeSelfSigned {
		return m.selfPEM
	}
	return nil
}

// getCertificate picks the certificate for one handshake.
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	switch m.mode {
	case ModeSelfSigned:
		return m.selfSigned, nil
	case ModeFiles:
		return m.filePair.Load().cert, nil
	}
	// TLS-ALPN-01 validation: certmagic answers with the challenge
	// certificate for the name being validated.
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == "acme-tls/1" {
		return m.magic.GetCertificate(hello)
	}
	name := normalizeName(hello.ServerName)
	if name == "" || net.ParseIP(name) != nil || slices.Contains(DefaultNames, name) {
		return m.selfSigned, nil
	}
	if m.mode == ModeACME && !m.configuredName(name) {
		return m.selfSigned, nil
	}
	cert, err := m.magic.GetCertificate(hello)
	if err != nil && m.mode == ModeACME {
		// A configured name whose certificate is not obtained yet: keep
		// Berth reachable (kubectl with the self-signed CA, health checks)
		// while certmagic keeps trying; the API reports the error.
		m.log.Debug("no ACME certificate yet; serving the self-signed one", "server_name", name, "err", err)
		return m.selfSigned, nil
	}
	return cert, err
}

func normalizeName(n string) string { return strings.ToLower(strings.TrimSuffix(n, ".")) }

// configuredName reports whether name is one of tls.names, directly or
// under a wildcard entry ("*.example.com" covers one label).
func (m *Manager) configuredName(name string) bool {
	for _, n := range m.cfg.Names {
		n = normalizeName(n)
		if n == name {
			return true
		}
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			if i := strings.IndexByte(name, '.'); i > 0 && name[i+1:] == rest {
				return true
			}
		}
	}
	return false
}

// Start begins what needs the bound listeners: obtaining and renewing ACME
// certificates (challenges are answered on these very listeners, so
// certmagic never opens its own) and watching the files of mode files.
// httpAddr is "" when the HTTP listener is disabled. A nil Manager (no
// HTTPS listener) does nothing.
func (m *Manager) Start(httpAddr, httpsAddr string) error {
	if m == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	if _, port, err := net.SplitHostPort(httpsAddr); err == nil && m.httpsPort == "" {
		m.httpsPort = port
	}
	if m.db != nil {
		m.wg.Add(1)
		go m.watchExpiry(ctx)
	}
	switch m.mode {
	case ModeFiles:
		m.wg.Add(1)
		go m.watchFiles(ctx)
	case ModeACME, ModeOnDemand:
		if err := m.startACME(ctx, httpAddr, httpsAddr); err != nil {
			return err
		}
	}
	return nil
}

// Stop ends background work and closes the certificate storage; call it
// before the store is closed. Stopping twice, or a nil Manager, is fine.
func (m *Manager) Stop() {
	if m == nil {
		return
	}
	m.stopOnce.Do(func() {
		if m.stop != nil {
			m.stop()
		}
		m.wg.Wait()
		if m.cache != nil {
			m.cache.Stop()
		}
		if m.storage != nil {
			m.storage.Close()
		}
	})
}

// setStatus changes name's status in memory and in the store. saveMu
// keeps the writes of one name in the order of the changes. report, when
// not nil, runs in the transaction that saves the status, with the stored
// status before the change and the one about to be stored (which it may
// amend): events that must be emitted once across replicas decide on the
// store's copy, which every replica shares, not on this process's memory.
func (m *Manager) setStatus(name string, fn func(*nameStatus), report func(tx *store.Tx, stored, next *nameStatus) error) {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.statusMu.Lock()
	s := m.status[name]
	if s == nil {
		s = &nameStatus{}
		m.status[name] = s
	}
	fn(s)
	saved := *s
	m.statusMu.Unlock()
	if m.db == nil {
		return
	}
	err := m.db.Update(func(tx *store.Tx) error {
		stored, err := statusTable.Get(tx, name)
		if errors.Is(err, store.ErrNotFound) {
			stored, err = &nameStatus{}, nil
		}
		if err != nil {
			return err
		}
		next := saved
		next.FailureReported = stored.FailureReported
		if report != nil {
			if err := report(tx, stored, &next); err != nil {
				return err
			}
		}
		return statusTable.Put(tx, name, &next)
	})
	if err != nil {
		m.log.Warn("certificate status not saved", "name", name, "err", err)
	}
}

// loadStatus reads the saved statuses at start.
func (m *Manager) loadStatus() error {
	if m.db == nil {
		return nil
	}
	return m.db.View(func(tx *store.Tx) error {
		return statusTable.Scan(tx, store.ScanOptions{}, func(name string, st *nameStatus) (bool, error) {
			m.status[name] = st
			return true, nil
		})
	})
}

func (m *Manager) getStatus(name string) nameStatus {
	m.statusMu.Lock()
	defer m.statusMu.Unlock()
	if s := m.status[name]; s != nil {
		return *s
	}
	return nameStatus{}
}

// baseConfig holds the protocol settings every mode shares.
func baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
		},
	}
}

// publicHTTPSPort is the port of an https public URL (443 when it names
// none), or "" when the URL is empty or not https.
func publicHTTPSPort(publicURL string) string {
	u, err := url.Parse(publicURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return ""
	}
	return cmp.Or(u.Port(), "443")
}
