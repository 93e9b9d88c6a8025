package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/berthgw/berth/sdk"
)

// The settings an operator saves in the gateway.
const (
	settingSecretKey     = "secret_key"
	settingWebhookSecret = "webhook_secret"
	settingAPIBase       = "api_base"
)

var settingsDoc = []sdk.Setting{
	{Name: settingSecretKey, Required: true, Secret: true,
		Description: "Stripe secret API key (sk_live_..., sk_test_...) or restricted key (rk_live_..., rk_test_...) with write access to Checkout Sessions, Customer portal and Subscriptions and read access to Invoices"},
	{Name: settingWebhookSecret, Required: true, Secret: true,
		Description: "Signing secret (whsec_...) of the Stripe webhook endpoint that points at the gateway's /api/v1/billing/webhooks/stripe"},
	{Name: settingAPIBase,
		Description: "Base URL of the Stripe API, for tests against stripe-mock (http or https); empty means Stripe itself, https://api.stripe.com"},
}

var (
	// Stripe's secret and restricted keys: sk_live_..., rk_test_..., ...
	secretKeyShape = regexp.MustCompile(`^(sk|rk)_(test|live)_[0-9A-Za-z]{1,240}$`)
	// A webhook endpoint's signing secret.
	webhookSecretShape = regexp.MustCompile(`^whsec_[0-9A-Za-z+/=]{1,240}$`)
	// Anything in a text that looks like a Stripe key or signing secret,
	// masked or not, so that no error can carry one, whatever its source.
	secretLike = regexp.MustCompile(`\b(sk|rk|pk)_(test|live)_[0-9A-Za-z*]+|\bwhsec_[0-9A-Za-z+/=*]+`)
)

// settings are the saved settings of one call, checked.
type settings struct {
	secretKey     string
	webhookSecret string
	// apiBase is scheme://host[:port], or empty for Stripe itself.
	apiBase string
}

// need says which settings a call uses.
type need int

const (
	needKey need = 1 << iota
	needWebhookSecret
)

// parseSettings checks the settings a call needs. A refusal names the
// setting and says what is wrong with it, never what it is.
func parseSettings(m map[string]string, n need) (settings, error) {
	s := settings{secretKey: m[settingSecretKey], webhookSecret: m[settingWebhookSecret]}
	if n&needKey != 0 {
		if s.secretKey == "" {
			return s, fmt.Errorf("setting %q is required: %w", settingSecretKey, sdk.ErrInvalidArgument)
		}
		if !secretKeyShape.MatchString(s.secretKey) {
			return s, fmt.Errorf("setting %q is not a Stripe secret key (sk_live_..., sk_test_...) or restricted key (rk_live_..., rk_test_...): %w",
				settingSecretKey, sdk.ErrInvalidArgument)
		}
	}
	if n&needWebhookSecret != 0 {
		if s.webhookSecret == "" {
			return s, fmt.Errorf("setting %q is required: %w", settingWebhookSecret, sdk.ErrInvalidArgument)
		}
		if !webhookSecretShape.MatchString(s.webhookSecret) {
			return s, fmt.Errorf("setting %q is not a Stripe webhook signing secret (whsec_...): %w", settingWebhookSecret, sdk.ErrInvalidArgument)
		}
	}
	base, err := parseAPIBase(m[settingAPIBase])
	if err != nil {
		return s, err
	}
	s.apiBase = base
	return s, nil
}

// parseAPIBase accepts an http or https URL with a host and nothing but
// the root path.
func parseAPIBase(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	bad := func(why string) error {
		return fmt.Errorf("setting %q: %q %s: %w", settingAPIBase, raw, why, sdk.ErrInvalidArgument)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", bad("is not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", bad("is not an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return "", bad("has no host")
	case u.User != nil:
		return "", bad("has credentials in it")
	case strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", bad("has a path, a query or a fragment; give only scheme://host[:port]")
	}
	return u.Scheme + "://" + u.Host, nil
}

// redact removes the settings' secrets, and anything shaped like a Stripe
// key or signing secret, from a text bound for an error.
func (s settings) redact(text string) string {
	for _, secret := range []string{s.secretKey, s.webhookSecret} {
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "[redacted]")
		}
	}
	return secretLike.ReplaceAllString(text, "[redacted]")
}
