package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// validateTLS checks the tls section. Only the active mode's sub-section is
// checked, so the documented defaults of the other modes never get in the
// way. Files named by the configuration must exist at start, so a typo is
// reported with its key before anything listens.
func (c *Config) validateTLS() error {
	t := &c.TLS
	switch t.Mode {
	case TLSModeSelfSigned, TLSModeFiles, TLSModeACME, TLSModeOnDemand:
	default:
		return &Error{"tls.mode", fmt.Sprintf("unsupported mode %q (supported: self_signed, files, acme, on_demand)", t.Mode)}
	}
	for i, n := range t.Names {
		if strings.TrimSpace(n) == "" || strings.ContainsAny(n, " /:") && net.ParseIP(n) == nil {
			return &Error{fmt.Sprintf("tls.names[%d]", i), fmt.Sprintf("invalid host name %q", n)}
		}
	}
	if t.Mode != TLSModeSelfSigned && c.HTTPS.Addr == "" {
		return &Error{"tls.mode", fmt.Sprintf("mode %s needs an HTTPS listener (https.addr)", t.Mode)}
	}
	if t.RedirectHTTP && (c.HTTP.Addr == "" || c.HTTPS.Addr == "") {
		return &Error{"tls.redirect_http", "needs both http.addr and https.addr"}
	}
	if t.ClientAuth.CAFile != "" {
		if err := checkFile(t.ClientAuth.CAFile); err != nil {
			return &Error{"tls.client_auth.ca_file", err.Error()}
		}
	}
	switch t.Mode {
	case TLSModeFiles:
		return c.validateTLSFiles()
	case TLSModeACME, TLSModeOnDemand:
		return c.validateACME()
	}
	return nil
}

func (c *Config) validateTLSFiles() error {
	f := &c.TLS.Files
	for _, k := range []struct{ key, path string }{
		{"tls.files.cert_file", f.CertFile},
		{"tls.files.key_file", f.KeyFile},
	} {
		if k.path == "" {
			return &Error{k.key, "must be set in mode files"}
		}
		if err := checkFile(k.path); err != nil {
			return &Error{k.key, err.Error()}
		}
	}
	if f.ReloadInterval < Duration(time.Second) {
		return &Error{"tls.files.reload_interval", "must be at least 1s"}
	}
	return nil
}

func (c *Config) validateACME() error {
	t := &c.TLS
	a := &t.ACME
	u, err := url.Parse(a.DirectoryURL)
	if a.DirectoryURL == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return &Error{"tls.acme.directory_url", fmt.Sprintf("want the https:// URL of an ACME directory, got %q", a.DirectoryURL)}
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return &Error{"tls.acme.directory_url", "plain http is allowed only for a loopback ACME server"}
	}
	if !a.AgreeTerms {
		return &Error{"tls.acme.agree_terms", "must be true to use an ACME CA: read the CA's subscriber agreement, then set it"}
	}
	if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t\r\n")) {
		return &Error{"tls.acme.email", fmt.Sprintf("invalid email address %q", a.Email)}
	}
	if a.CARoot != "" {
		if err := checkFile(a.CARoot); err != nil {
			return &Error{"tls.acme.ca_root", err.Error()}
		}
	}
	if len(a.Challenges) == 0 {
		return &Error{"tls.acme.challenges", "list at least one of http-01, tls-alpn-01, dns-01"}
	}
	for i, ch := range a.Challenges {
		switch ch {
		case ChallengeHTTP01, ChallengeTLSALPN01, ChallengeDNS01:
		default:
			return &Error{fmt.Sprintf("tls.acme.challenges[%d]", i), fmt.Sprintf("unknown challenge %q (want http-01, tls-alpn-01 or dns-01)", ch)}
		}
		if slices.Index(a.Challenges, ch) != i {
			return &Error{fmt.Sprintf("tls.acme.challenges[%d]", i), fmt.Sprintf("%s is listed twice", ch)}
		}
	}
	if slices.Contains(a.Challenges, ChallengeHTTP01) && c.HTTP.Addr == "" {
		return &Error{"tls.acme.challenges", "http-01 is answered on the HTTP listener: set http.addr or remove http-01"}
	}
	if slices.Contains(a.Challenges, ChallengeDNS01) && a.DNSProvider == "" {
		return &Error{"tls.acme.dns_provider", "dns-01 needs the name of a DNS plugin"}
	}
	for i, r := range a.DNSResolvers {
		if err := checkAddr(r); err != nil || r == "" {
			return &Error{fmt.Sprintf("tls.acme.dns_resolvers[%d]", i), fmt.Sprintf("want host:port, got %q", r)}
		}
	}
	if a.RenewalWindowRatio <= 0 || a.RenewalWindowRatio >= 1 {
		return &Error{"tls.acme.renewal_window_ratio", "must be between 0 and 1 (exclusive)"}
	}
	if a.RenewCheckInterval < Duration(time.Second) {
		return &Error{"tls.acme.renew_check_interval", "must be at least 1s"}
	}
	if t.Mode == TLSModeACME && !slices.ContainsFunc(t.Names, func(n string) bool { return net.ParseIP(n) == nil }) {
		return &Error{"tls.names", "mode acme needs at least one DNS name to obtain a certificate for"}
	}
	if t.Mode == TLSModeOnDemand {
		if t.OnDemand.Issuances < 1 {
			return &Error{"tls.on_demand.issuances", "must be at least 1"}
		}
		if t.OnDemand.Per <= 0 {
			return &Error{"tls.on_demand.per", "must be greater than 0"}
		}
	}
	return nil
}

// checkFile reports a missing, unreadable or non-regular file in one line.
func checkFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("file %s does not exist", path)
		}
		return fmt.Errorf("cannot read %s: %v", path, unwrapPathError(err))
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory, want a file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %v", path, unwrapPathError(err))
	}
	return f.Close()
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
