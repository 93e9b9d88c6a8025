package edgetls

import (
	"log/slog"
	"time"

	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// Modes: where the HTTPS certificate comes from.
const (
	// ModeSelfSigned makes and keeps a self-signed certificate.
	ModeSelfSigned = "self_signed"
	// ModeFiles reads a certificate and key from files, reloading changes.
	ModeFiles = "files"
	// ModeACME obtains certificates for Options.Names from an ACME CA.
	ModeACME = "acme"
	// ModeOnDemand obtains them at the first handshake naming a host.
	ModeOnDemand = "on_demand"
)

// ACME challenge types.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
	ChallengeDNS01     = "dns-01"
)

// Options are what a Manager is built from.
type Options struct {
	// Mode is one of the Mode constants.
	Mode string
	// Names are the host names and addresses Berth is reached at: extra
	// names of the self-signed certificate, the domains ModeACME obtains
	// certificates for, and the hosts ModeOnDemand may issue for.
	Names    []string
	Files    Files
	ACME     ACME
	OnDemand OnDemand
	// ClientCAFile is a PEM bundle of the CAs that sign client
	// certificates; empty disables client certificates.
	ClientCAFile string
	// RedirectHTTP sends plain-HTTP requests to HTTPS.
	RedirectHTTP bool

	DB  *store.DB
	Box *secretbox.Box
	// Logger receives certificate events; nil discards them.
	Logger *slog.Logger
	// Now is the clock for validity checks; nil means time.Now.
	Now func() time.Time
	// ExpiryWarning is how long before a certificate expires
	// certificate.expiring is emitted for it; zero means
	// DefaultExpiryWarning.
	ExpiryWarning time.Duration
	// ExpiryCheckInterval is how often certificates are checked against
	// ExpiryWarning; zero means DefaultExpiryCheckInterval.
	ExpiryCheckInterval time.Duration
	// PublicURL is Berth's address as clients reach it (public_url). When
	// it is an https URL, the HTTP-to-HTTPS redirect sends clients to its
	// port rather than the bound one, which port forwarding or a load
	// balancer may hide.
	PublicURL string
}

// Files is a certificate and key read from disk (ModeFiles).
type Files struct {
	CertFile, KeyFile string
	// ReloadInterval is how often the files are re-read for changes.
	ReloadInterval time.Duration
}

// ACME configures the ACME issuer (ModeACME and ModeOnDemand).
type ACME struct {
	DirectoryURL string
	Email        string
	// AgreeTerms accepts the CA's terms of service.
	AgreeTerms bool
	// CARoot is a PEM file of roots trusted for the ACME server's own
	// HTTPS, for private ACME servers.
	CARoot string
	// Challenges are the Challenge constants to solve.
	Challenges []string
	// DNSProvider names the DNS plugin that answers dns-01 (SetDNSProvider
	// supplies it).
	DNSProvider string
	// DNSResolvers (host:port) find zones and check dns-01 propagation;
	// empty: the system's resolvers.
	DNSResolvers       []string
	Profile            string
	RenewalWindowRatio float64
	RenewCheckInterval time.Duration
}

// OnDemand limits certificates obtained at first handshake.
type OnDemand struct {
	// Issuances new certificates are allowed per Per, across all names.
	Issuances int
	Per       time.Duration
}

// The options an OptionError can name.
const (
	OptionMode         = "Mode"
	OptionCertFile     = "Files.CertFile"
	OptionKeyFile      = "Files.KeyFile"
	OptionCARoot       = "ACME.CARoot"
	OptionDNSProvider  = "ACME.DNSProvider"
	OptionClientCAFile = "ClientCAFile"
)

// OptionError is a problem with what the operator gave: an unreadable,
// expired or mismatched file, a bad CA bundle, a missing DNS provider. It
// is one line and never quotes key material.
type OptionError struct {
	// Option is the Options field at fault (the Option constants).
	Option  string
	Problem string
}

func (e *OptionError) Error() string { return "tls: " + e.Option + ": " + e.Problem }
