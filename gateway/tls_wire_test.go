package gateway

import (
	"errors"
	"testing"

	"github.com/berthgw/berth/gateway/config"
	"github.com/berthgw/berth/gateway/edgetls"
)

// The tls section's mode and challenge names pass to edgetls unchanged,
// so the two spellings must agree.
func TestTLSNamesAgree(t *testing.T) {
	for _, p := range [][2]string{
		{config.TLSModeSelfSigned, edgetls.ModeSelfSigned},
		{config.TLSModeFiles, edgetls.ModeFiles},
		{config.TLSModeACME, edgetls.ModeACME},
		{config.TLSModeOnDemand, edgetls.ModeOnDemand},
		{config.ChallengeHTTP01, edgetls.ChallengeHTTP01},
		{config.ChallengeTLSALPN01, edgetls.ChallengeTLSALPN01},
		{config.ChallengeDNS01, edgetls.ChallengeDNS01},
	} {
		if p[0] != p[1] {
			t.Errorf("config says %q, edgetls %q", p[0], p[1])
		}
	}
}

// An edgetls option error reaches the operator as the configuration key
// it came from.
func TestTLSConfigError(t *testing.T) {
	tests := []struct{ option, key string }{
		{edgetls.OptionMode, "tls.mode"},
		{edgetls.OptionCertFile, "tls.files.cert_file"},
		{edgetls.OptionKeyFile, "tls.files.key_file"},
		{edgetls.OptionCARoot, "tls.acme.ca_root"},
		{edgetls.OptionDNSProvider, "tls.acme.dns_provider"},
		{edgetls.OptionClientCAFile, "tls.client_auth.ca_file"},
	}
	for _, tt := range tests {
		err := tlsConfigError(&edgetls.OptionError{Option: tt.option, Problem: "broken"})
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Key != tt.key || ce.Problem != "broken" {
			t.Errorf("%s: got %v, want a config.Error on %s", tt.option, err, tt.key)
		}
	}
	other := errors.New("disk on fire")
	if err := tlsConfigError(other); err != other {
		t.Errorf("a non-option error changed: %v", err)
	}
	if tlsConfigError(nil) != nil {
		t.Error("nil became an error")
	}
}
