// Package config loads and validates Berth's configuration: YAML with strict
// keys, overridden by BERTH_<PATH> environment variables.
package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole of Berth's configuration. The yaml tags are the
// documented keys of configs/berth.yaml; each leaf can also be set from the
// environment variable BERTH_<PATH> (see EnvName).
type Config struct {
	DataDir       string   `yaml:"data_dir"`
	AdminPassword string   `yaml:"admin_password"`
	SecretKey     string   `yaml:"secret_key"`
	HTTP          Listener `yaml:"http"`
	HTTPS         Listener `yaml:"https"`
	TLS           TLS      `yaml:"tls"`
	Limits        Limits   `yaml:"limits"`
	Log           Log      `yaml:"log"`
	Store         Store    `yaml:"store"`
	// TrustedProxies are the CIDRs whose X-Forwarded-For / X-Real-IP
	// headers are believed.
	TrustedProxies []string   `yaml:"trusted_proxies"`
	Auth           Auth       `yaml:"auth"`
	RateLimits     RateLimits `yaml:"rate_limits"`
	Audit          Audit      `yaml:"audit"`
	// PublicURL is Berth's address as clients reach it.
	PublicURL    string       `yaml:"public_url"`
	Proxy        Proxy        `yaml:"proxy"`
	Provisioning Provisioning `yaml:"provisioning"`
	Plugins      Plugins      `yaml:"plugins"`
	// Notifications configures event delivery (docs/notifications.md).
	Notifications Notifications `yaml:"notifications"`
	// DNS manages clusters' hostnames (docs/dns.md).
	DNS DNS `yaml:"dns"`

	// source and lookupEnv are what Load read, kept for Reload.
	source    string
	lookupEnv func(string) (string, bool)
}

// Listener is one address Berth listens on.
type Listener struct {
	// Addr is host:port; empty disables the listener.
	Addr string `yaml:"addr"`
}

// TLS says how the HTTPS certificate is obtained and which clients may
// present certificates. See docs/tls.md.
type TLS struct {
	// Mode is self_signed, files, acme or on_demand (the TLSMode* constants).
	Mode string `yaml:"mode"`
	// Names are the host names and addresses Berth is reached at: extra
	// names of the self-signed certificate, the domains acme obtains
	// certificates for, and the hosts on_demand may issue for.
	Names        []string      `yaml:"names"`
	Files        TLSFiles      `yaml:"files"`
	ACME         TLSACME       `yaml:"acme"`
	OnDemand     TLSOnDemand   `yaml:"on_demand"`
	ClientAuth   TLSClientAuth `yaml:"client_auth"`
	RedirectHTTP bool          `yaml:"redirect_http"`
}

// TLS modes.
const (
	TLSModeSelfSigned = "self_signed"
	TLSModeFiles      = "files"
	TLSModeACME       = "acme"
	TLSModeOnDemand   = "on_demand"
)

// ACME challenge types accepted in tls.acme.challenges.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
	ChallengeDNS01     = "dns-01"
)

// TLSFiles is a certificate and key read from disk (mode files).
type TLSFiles struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ReloadInterval is how often the files are re-read for changes.
	ReloadInterval Duration `yaml:"reload_interval"`
}

// TLSACME configures the ACME issuer (modes acme and on_demand).
type TLSACME struct {
	DirectoryURL string `yaml:"directory_url"`
	Email        string `yaml:"email"`
	AgreeTerms   bool   `yaml:"agree_terms"`
	// CARoot is a PEM file of roots trusted for the ACME server's own
	// HTTPS, for private ACME servers.
	CARoot     string   `yaml:"ca_root"`
	Challenges []string `yaml:"challenges"`
	// DNSProvider names the DNS plugin that answers dns-01.
	DNSProvider string `yaml:"dns_provider"`
	// DNSResolvers (host:port) find zones and check dns-01 propagation;
	// empty: the system's resolvers.
	DNSResolvers       []string `yaml:"dns_resolvers"`
	Profile            string   `yaml:"profile"`
	RenewalWindowRatio float64  `yaml:"renewal_window_ratio"`
	RenewCheckInterval Duration `yaml:"renew_check_interval"`
}

// TLSOnDemand limits certificates obtained at first handshake.
type TLSOnDemand struct {
	// Issuances new certificates are allowed per Per, across all names.
	Issuances int      `yaml:"issuances"`
	Per       Duration `yaml:"per"`
}

// TLSClientAuth turns on client-certificate authentication.
type TLSClientAuth struct {
	// CAFile is a PEM bundle of the CAs that sign client certificates;
	// empty disables client certificates.
	CAFile string `yaml:"ca_file"`
}

// Limits bounds what one connection or request may take.
type Limits struct {
	ReadTimeout     Duration `yaml:"read_timeout"`
	WriteTimeout    Duration `yaml:"write_timeout"`
	IdleTimeout     Duration `yaml:"idle_timeout"`
	MaxHeaderBytes  int      `yaml:"max_header_bytes"`
	MaxBodyBytes    int      `yaml:"max_body_bytes"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// BodyMinBytes and BodyReadWindow are the slowest a request body may
	// come: each BodyMinBytes within BodyReadWindow of the previous ones.
	BodyMinBytes   int      `yaml:"body_min_bytes"`
	BodyReadWindow Duration `yaml:"body_read_window"`
}

// Log configures the structured logger.
type Log struct {
	Level         string   `yaml:"level"`
	Format        string   `yaml:"format"`
	FlushInterval Duration `yaml:"flush_interval"`
}

// Store says where Berth keeps its state: the embedded Badger database, or
// etcd shared by replicas.
type Store struct {
	Backend        string    `yaml:"backend"`
	SyncWrites     bool      `yaml:"sync_writes"`
	GCInterval     Duration  `yaml:"gc_interval"`
	MemTableSize   int64     `yaml:"memtable_size"`
	BlockCacheSize int64     `yaml:"block_cache_size"`
	Etcd           StoreEtcd `yaml:"etcd"`
}

// Store backends.
const (
	BackendBadger = "badger"
	BackendEtcd   = "etcd"
)

// StoreEtcd says how to reach etcd when store.backend is etcd.
type StoreEtcd struct {
	Endpoints      []string     `yaml:"endpoints"`
	Prefix         string       `yaml:"prefix"`
	DialTimeout    Duration     `yaml:"dial_timeout"`
	RequestTimeout Duration     `yaml:"request_timeout"`
	MaxTxnOps      int          `yaml:"max_txn_ops"`
	TLS            StoreEtcdTLS `yaml:"tls"`
}

// StoreEtcdTLS are the PEM files of TLS to etcd: the CA that signed the
// members' certificates, and the client certificate and key.
type StoreEtcdTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Duration is a time.Duration written as Go duration text ("30s", "10m").
type Duration time.Duration

// UnmarshalYAML parses Go duration text; bare numbers are refused because
// "30" is ambiguous between seconds and nanoseconds.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as 30s, got a %s", kindName(node.Kind))
	}
	v, err := time.ParseDuration(node.Value)
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 30s, 5m, 1h)", node.Value)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", node.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as Go duration text.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Error is a configuration problem tied to one key. Its text is one line
// naming the key, so an operator can fix it without reading a stack of
// wrapped messages.
type Error struct {
	Key     string
	Problem string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return "config: " + e.Problem
	}
	return "config: " + e.Key + ": " + e.Problem
}

// Validate checks values that parse but make no sense.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.DataDir) == "" {
		return &Error{"data_dir", "must not be empty"}
	}
	if err := checkPublicURL(c.PublicURL); err != nil {
		return err
	}
	if err := c.Proxy.validate(); err != nil {
		return err
	}
	if err := c.Provisioning.validate(); err != nil {
		return err
	}
	if err := checkAddr(c.HTTP.Addr); err != nil {
		return &Error{"http.addr", err.Error()}
	}
	if err := checkAddr(c.HTTPS.Addr); err != nil {
		return &Error{"https.addr", err.Error()}
	}
	if c.HTTP.Addr == "" && c.HTTPS.Addr == "" {
		return &Error{"http.addr", "at least one of http.addr and https.addr must be set"}
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if c.Limits.ReadTimeout <= 0 {
		return &Error{"limits.read_timeout", "must be greater than 0"}
	}
	if c.Limits.IdleTimeout <= 0 {
		return &Error{"limits.idle_timeout", "must be greater than 0"}
	}
	if c.Limits.ShutdownTimeout <= 0 {
		return &Error{"limits.shutdown_timeout", "must be greater than 0"}
	}
	if c.Limits.MaxHeaderBytes < 1024 {
		return &Error{"limits.max_header_bytes", "must be at least 1024"}
	}
	if c.Limits.MaxBodyBytes < 1024 {
		return &Error{"limits.max_body_bytes", "must be at least 1024"}
	}
	if c.Limits.BodyMinBytes < 1 || c.Limits.BodyMinBytes > 1<<20 {
		return &Error{"limits.body_min_bytes", "must be from 1 to 1048576"}
	}
	if c.Limits.BodyReadWindow < Duration(time.Second) {
		return &Error{"limits.body_read_window", "must be at least 1s"}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return &Error{"log.level", fmt.Sprintf("unknown level %q (want debug, info, warn or error)", c.Log.Level)}
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		return &Error{"log.format", fmt.Sprintf("unknown format %q (want json or text)", c.Log.Format)}
	}
	if c.Log.FlushInterval > Duration(10*time.Second) {
		return &Error{"log.flush_interval", "must be at most 10s, or 0s to write every line at once"}
	}
	if err := c.validateStore(); err != nil {
		return err
	}
	if c.Store.GCInterval < Duration(time.Minute) {
		return &Error{"store.gc_interval", "must be at least 1m"}
	}
	if c.Store.MemTableSize < 1<<20 {
		return &Error{"store.memtable_size", "must be at least 1048576 (1 MiB)"}
	}
	if c.Store.BlockCacheSize < 0 {
		return &Error{"store.block_cache_size", "must not be negative"}
	}
	if err := c.validatePlugins(); err != nil {
		return err
	}
	if err := c.validateNotifications(); err != nil {
		return err
	}
	if err := c.validateDNS(); err != nil {
		return err
	}
	if err := c.checkProvisioner(); err != nil {
		return err
	}
	if name := c.TLS.ACME.DNSProvider; name != "" && (c.TLS.Mode == TLSModeACME || c.TLS.Mode == TLSModeOnDemand) {
		if _, ok := c.Plugins.Plugin(name); !ok {
			return &Error{"tls.acme.dns_provider", fmt.Sprintf("no plugin named %q in plugins.instances", name)}
		}
	}
	return c.validateSecurity()
}

// checkAddr accepts "" (disabled) or host:port with a numeric port.
func checkAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q (want host:port)", addr)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("invalid host in address %q", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port in address %q", addr)
	}
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	default:
		return "document"
	}
}
