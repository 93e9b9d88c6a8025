package gateway

import (
	"errors"
	"slices"

	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/edgetls"
)

// initTLS builds the HTTPS certificate manager from the tls section, when
// there is an HTTPS listener.
func (g *Gateway) initTLS() error {
	if g.cfg.HTTPS.Addr == "" {
		return nil
	}
	edge, err := edgetls.New(g.tlsOptions())
	if err != nil {
		return tlsConfigError(err)
	}
	g.edge, g.tls = edge, edge.TLSConfig()
	return nil
}

// tlsOptions translates the tls section (and public_url) into edgetls's
// options; config validated the mode and challenge names, whose spellings
// the two packages share.
func (g *Gateway) tlsOptions() edgetls.Options {
	t := g.cfg.TLS
	return edgetls.Options{
		Mode:  t.Mode,
		Names: slices.Clone(t.Names),
		Files: edgetls.Files{
			CertFile:       t.Files.CertFile,
			KeyFile:        t.Files.KeyFile,
			ReloadInterval: t.Files.ReloadInterval.D(),
		},
		ACME: edgetls.ACME{
			DirectoryURL:       t.ACME.DirectoryURL,
			Email:              t.ACME.Email,
			AgreeTerms:         t.ACME.AgreeTerms,
			CARoot:             t.ACME.CARoot,
			Challenges:         slices.Clone(t.ACME.Challenges),
			DNSProvider:        t.ACME.DNSProvider,
			DNSResolvers:       slices.Clone(t.ACME.DNSResolvers),
			Profile:            t.ACME.Profile,
			RenewalWindowRatio: t.ACME.RenewalWindowRatio,
			RenewCheckInterval: t.ACME.RenewCheckInterval.D(),
		},
		OnDemand:     edgetls.OnDemand{Issuances: t.OnDemand.Issuances, Per: t.OnDemand.Per.D()},
		ClientCAFile: t.ClientAuth.CAFile,
		RedirectHTTP: t.RedirectHTTP,
		DB:           g.db,
		Box:          g.box,
		Logger:       g.log,
		Now:          g.clock,
		PublicURL:    g.cfg.PublicURL,
	}
}

// tlsConfigKeys name, for each edgetls option, the configuration key it
// comes from.
var tlsConfigKeys = map[string]string{
	edgetls.OptionMode:         "tls.mode",
	edgetls.OptionCertFile:     "tls.files.cert_file",
	edgetls.OptionKeyFile:      "tls.files.key_file",
	edgetls.OptionCARoot:       "tls.acme.ca_root",
	edgetls.OptionDNSProvider:  "tls.acme.dns_provider",
	edgetls.OptionClientCAFile: "tls.client_auth.ca_file",
}

// tlsConfigError turns an edgetls.OptionError into the *config.Error
// naming the operator's key, so `berth serve` reports it (and exits) as a
// configuration error; other errors pass unchanged.
func tlsConfigError(err error) error {
	var oe *edgetls.OptionError
	if !errors.As(err, &oe) {
		return err
	}
	key, ok := tlsConfigKeys[oe.Option]
	if !ok {
		key = "tls"
	}
	return &config.Error{Key: key, Problem: oe.Problem}
}
