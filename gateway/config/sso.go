package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// SSO configures single sign-on with OpenID Connect providers
// (docs/security.md, "Single sign-on").
type SSO struct {
	// Providers are the OpenID providers users may sign in with; none by
	// default.
	Providers []SSOProvider `yaml:"providers"`
}

// SSOProvider is one OpenID provider. The client secret is never written
// in the file: it is read from ClientSecretFile or from the environment
// variable ClientSecretEnv when the configuration is loaded.
type SSOProvider struct {
	// Name is the provider's name in Berth's URLs and audit log.
	Name string `yaml:"name"`
	// DisplayName is what a sign-in page shows ("Sign in with …").
	DisplayName string `yaml:"display_name"`
	// Issuer is the provider's issuer URL, exactly as its discovery
	// document states it.
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"client_id"`
	// ClientSecretFile is a file holding the client secret; ClientSecretEnv
	// the name of a variable holding it. Exactly one is set.
	ClientSecretFile string `yaml:"client_secret_file"`
	ClientSecretEnv  string `yaml:"client_secret_env"`
	// Scopes are requested besides openid; empty means email, profile.
	Scopes []string `yaml:"scopes"`
	// RedirectURL is the callback registered at the provider; empty means
	// <public_url>/api/v1/auth/sso/<name>/callback.
	RedirectURL string `yaml:"redirect_url"`
	// UsernameClaim names the ID token claim that is the Berth username
	// (preferred_username when empty).
	UsernameClaim string `yaml:"username_claim"`
	// EmailClaim names the email claim (email when empty); the address is
	// kept only when email_verified is true.
	EmailClaim string `yaml:"email_claim"`
	// GroupsClaim names the claim listing the user's groups; empty leaves
	// Berth's groups of the user alone.
	GroupsClaim string `yaml:"groups_claim"`
	// AllowedDomains, when set, admit only users whose verified email is
	// in one of these domains.
	AllowedDomains []string `yaml:"allowed_domains"`
	// CreateUsers creates a Berth user at the first sign-in of an
	// identity no user is linked to; false admits only linked users.
	CreateUsers bool `yaml:"create_users"`
	// DefaultRole is the role of users CreateUsers makes (user when
	// empty).
	DefaultRole string `yaml:"default_role"`
	// LinkExisting links the first sign-in of an identity to the Berth
	// user of the same username when that user has no SSO identity yet.
	LinkExisting bool `yaml:"link_existing"`

	secret string
}

// UnmarshalYAML decodes one provider entry strictly: an unknown key (a
// typo such as "create_user", or a "client_secret" written inline) is an
// error rather than a setting silently left at its default.
func (p *SSOProvider) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("want a mapping with name, issuer, client_id, …; got a %s", kindName(node.Kind))
	}
	typ := reflect.TypeOf(*p)
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, known := node.Content[i].Value, false
		for j := 0; j < typ.NumField() && !known; j++ {
			known = typ.Field(j).IsExported() && tagName(typ.Field(j)) == k
		}
		if !known {
			return fmt.Errorf("unknown key %q (line %d)", k, node.Content[i].Line)
		}
	}
	type plain SSOProvider
	return node.Decode((*plain)(p))
}

// ClientSecret is the secret Load read from ClientSecretFile or
// ClientSecretEnv.
func (p *SSOProvider) ClientSecret() string { return p.secret }

var (
	ssoNameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	claimRE     = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,128}$`)
	scopeRE     = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]{1,128}$`)
	ssoClientRE = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]{1,256}$`)
	domainRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}\.)*[a-z0-9-]{1,63}$`)
	ssoRoleRE   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	maxDisplay  = 64
)

// SSOCallbackPath is the path of a provider's callback under public_url.
func SSOCallbackPath(name string) string { return "/api/v1/auth/sso/" + name + "/callback" }

// validateSSO checks the providers and fills in their defaults.
func (c *Config) validateSSO() error {
	seen := map[string]bool{}
	for i := range c.Auth.SSO.Providers {
		p := &c.Auth.SSO.Providers[i]
		key := func(k string) string { return fmt.Sprintf("auth.sso.providers[%d].%s", i, k) }
		if !ssoNameRE.MatchString(p.Name) {
			return &Error{key("name"), "must be 1 to 32 lower-case letters, digits or -, starting with a letter or digit"}
		}
		if seen[p.Name] {
			return &Error{key("name"), fmt.Sprintf("provider %q is listed twice", p.Name)}
		}
		seen[p.Name] = true
		if p.DisplayName == "" {
			p.DisplayName = p.Name
		}
		if len(p.DisplayName) > maxDisplay || strings.ContainsFunc(p.DisplayName, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return &Error{key("display_name"), fmt.Sprintf("must be at most %d printable characters", maxDisplay)}
		}
		if err := checkIssuer(p.Issuer); err != nil {
			return &Error{key("issuer"), err.Error()}
		}
		if !ssoClientRE.MatchString(p.ClientID) {
			return &Error{key("client_id"), "must be 1 to 256 printable characters without spaces or quotes"}
		}
		switch {
		case p.ClientSecretFile != "" && p.ClientSecretEnv != "":
			return &Error{key("client_secret_file"), "set client_secret_file or client_secret_env, not both"}
		case p.ClientSecretFile == "" && p.ClientSecretEnv == "":
			return &Error{key("client_secret_file"), "set client_secret_file or client_secret_env (the secret is never written in the file)"}
		case p.ClientSecretEnv != "" && !envNameRE.MatchString(p.ClientSecretEnv):
			return &Error{key("client_secret_env"), fmt.Sprintf("%q is not an environment variable name", p.ClientSecretEnv)}
		case p.ClientSecretFile != "" && !strings.HasPrefix(p.ClientSecretFile, "/"):
			return &Error{key("client_secret_file"), "must be an absolute path"}
		}
		if len(p.Scopes) == 0 {
			p.Scopes = []string{"email", "profile"}
		}
		if len(p.Scopes) > 16 {
			return &Error{key("scopes"), "at most 16 scopes"}
		}
		for _, s := range p.Scopes {
			if !scopeRE.MatchString(s) {
				return &Error{key("scopes"), fmt.Sprintf("%q is not a scope (RFC 6749 §3.3)", s)}
			}
		}
		if p.RedirectURL == "" {
			if c.PublicURL == "" {
				return &Error{key("redirect_url"), "set it, or set public_url, which it defaults from"}
			}
			p.RedirectURL = strings.TrimSuffix(c.PublicURL, "/") + SSOCallbackPath(p.Name)
		}
		if u, err := url.Parse(p.RedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
			u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Path != SSOCallbackPath(p.Name) {
			return &Error{key("redirect_url"), fmt.Sprintf("must be http(s)://<host>%s", SSOCallbackPath(p.Name))}
		}
		for k, v := range map[string]*string{"username_claim": &p.UsernameClaim, "email_claim": &p.EmailClaim, "groups_claim": &p.GroupsClaim} {
			if *v == "" {
				continue
			}
			if !claimRE.MatchString(*v) {
				return &Error{key(k), fmt.Sprintf("%q is not a claim name", *v)}
			}
		}
		if p.UsernameClaim == "" {
			p.UsernameClaim = "preferred_username"
		}
		if p.EmailClaim == "" {
			p.EmailClaim = "email"
		}
		for j, d := range p.AllowedDomains {
			d = strings.ToLower(strings.TrimPrefix(d, "@"))
			if !domainRE.MatchString(d) || len(d) > 253 {
				return &Error{fmt.Sprintf("%s[%d]", key("allowed_domains"), j), fmt.Sprintf("%q is not a domain", p.AllowedDomains[j])}
			}
			p.AllowedDomains[j] = d
		}
		if p.DefaultRole == "" {
			p.DefaultRole = "user"
		}
		if !ssoRoleRE.MatchString(p.DefaultRole) {
			return &Error{key("default_role"), fmt.Sprintf("%q is not a role name", p.DefaultRole)}
		}
		if p.CreateUsers && p.DefaultRole == "admin" {
			return &Error{key("default_role"), "must not be admin with create_users: everyone the provider vouches for would administer Berth; grant admin to chosen users instead"}
		}
	}
	return nil
}

// checkIssuer accepts an https URL, or an http one on a loopback host (a
// provider on the same machine, or in tests): an issuer on plain HTTP
// elsewhere would let anyone on the path forge sign-ins.
func checkIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an issuer URL (want e.g. https://login.example.com)", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("%q: an issuer must use https (http only on a loopback address)", s)
	}
	return fmt.Errorf("%q is not an issuer URL (want e.g. https://login.example.com)", s)
}

// minSSOSecret is the shortest client secret accepted.
const minSSOSecret = 8

// resolveSSOSecrets reads each provider's client secret from its file or
// variable. A missing, unreadable or empty secret is an error naming the
// key, never the secret.
func (s *SSO) resolveSSOSecrets(lookupEnv func(string) (string, bool)) error {
	for i := range s.Providers {
		p := &s.Providers[i]
		var secret string
		if p.ClientSecretFile != "" {
			data, err := os.ReadFile(p.ClientSecretFile)
			if err != nil {
				return &Error{fmt.Sprintf("auth.sso.providers[%d].client_secret_file", i), fmt.Sprintf("cannot read %s", p.ClientSecretFile)}
			}
			secret = strings.TrimRight(string(data), "\r\n")
		} else {
			ok := false
			if lookupEnv != nil {
				secret, ok = lookupEnv(p.ClientSecretEnv)
			}
			if !ok {
				secret = ""
			}
		}
		if len(secret) < minSSOSecret || strings.ContainsAny(secret, "\r\n") {
			return &Error{fmt.Sprintf("auth.sso.providers[%d].client_secret_%s", i, map[bool]string{true: "file", false: "env"}[p.ClientSecretFile != ""]),
				fmt.Sprintf("the client secret of %q is missing, shorter than %d characters, or more than one line", p.Name, minSSOSecret)}
		}
		p.secret = secret
	}
	return nil
}
