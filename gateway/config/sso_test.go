package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berthgw/berth/configs"
)

// Every key of a provider entry is documented in configs/berth.yaml: the
// generic key test sees auth.sso.providers only as a list.
func TestSSOProviderKeysDocumented(t *testing.T) {
	doc := string(configs.Default)
	typ := reflect.TypeOf(SSOProvider{})
	for i := 0; i < typ.NumField(); i++ {
		if f := typ.Field(i); f.IsExported() {
			if name := tagName(f); !strings.Contains(doc, "#     "+name+":") && !strings.Contains(doc, "#   - "+name+":") {
				t.Errorf("auth.sso.providers[].%s is not documented in configs/berth.yaml", name)
			}
		}
	}
}

func TestSSOProviders(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "corp.secret")
	if err := os.WriteFile(secretFile, []byte("file-secret-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, `public_url: https://berth.example.com/
auth:
  sso:
    providers:
    - name: corp
      issuer: https://login.example.com
      client_id: berth
      client_secret_file: `+secretFile+`
      allowed_domains: ["@Example.COM"]
    - name: dev
      display_name: Local Dex
      issuer: http://127.0.0.1:5556/dex
      client_id: berth-dev
      client_secret_env: DEX_SECRET
      scopes: [groups]
      redirect_url: http://127.0.0.1:8080/api/v1/auth/sso/dev/callback
      groups_claim: groups
      create_users: true
      default_role: viewer
`)
	c, err := Load(p, envMap(map[string]string{"DEX_SECRET": "env-secret-456"}))
	if err != nil {
		t.Fatal(err)
	}
	ps := c.Auth.SSO.Providers
	if len(ps) != 2 {
		t.Fatalf("providers: %+v", ps)
	}
	corp, dev := ps[0], ps[1]
	if corp.ClientSecret() != "file-secret-123" || dev.ClientSecret() != "env-secret-456" {
		t.Errorf("secrets not read: %q %q", corp.ClientSecret(), dev.ClientSecret())
	}
	if corp.RedirectURL != "https://berth.example.com/api/v1/auth/sso/corp/callback" || corp.DisplayName != "corp" ||
		corp.UsernameClaim != "preferred_username" || corp.EmailClaim != "email" || corp.DefaultRole != "user" ||
		!reflect.DeepEqual(corp.Scopes, []string{"email", "profile"}) || !reflect.DeepEqual(corp.AllowedDomains, []string{"example.com"}) {
		t.Errorf("corp defaults: %+v", corp)
	}
	if dev.DisplayName != "Local Dex" || !dev.CreateUsers || dev.DefaultRole != "viewer" || dev.GroupsClaim != "groups" {
		t.Errorf("dev: %+v", dev)
	}
}

func TestSSOProviderRefusals(t *testing.T) {
	base := func(extra string) string {
		return "auth:\n  sso:\n    providers:\n    - name: corp\n      issuer: https://login.example.com\n      client_id: berth\n" +
			"      redirect_url: https://b.example.com/api/v1/auth/sso/corp/callback\n" + extra
	}
	for _, tc := range []struct {
		name, yaml, key string
		env             map[string]string
	}{
		{"no secret", base(""), "auth.sso.providers[0].client_secret_file", nil},
		{"inline secret is no key", base("      client_secret: hunter2hunter2\n"), "auth.sso.providers", nil},
		{"both secrets", base("      client_secret_env: S\n      client_secret_file: /x\n"), "auth.sso.providers[0].client_secret_file", nil},
		{"relative secret file", base("      client_secret_file: corp.secret\n"), "auth.sso.providers[0].client_secret_file", nil},
		{"unset variable", base("      client_secret_env: NOPE\n"), "auth.sso.providers[0].client_secret_env", nil},
		{"short secret", base("      client_secret_env: S\n"), "auth.sso.providers[0].client_secret_env", map[string]string{"S": "x1y2"}},
		{"plain http issuer", strings.Replace(base("      client_secret_env: S\n"), "https://login", "http://login", 1), "auth.sso.providers[0].issuer", nil},
		{"bad name", strings.Replace(base("      client_secret_env: S\n"), "name: corp", "name: Corp!", 1), "auth.sso.providers[0].name", nil},
		{"no redirect and no public_url", strings.Replace(base("      client_secret_env: S\n"), "      redirect_url: https://b.example.com/api/v1/auth/sso/corp/callback\n", "", 1), "auth.sso.providers[0].redirect_url", nil},
		{"redirect to another path", strings.Replace(base("      client_secret_env: S\n"), "sso/corp/callback", "sso/other/callback", 1), "auth.sso.providers[0].redirect_url", nil},
		{"bad domain", base("      client_secret_env: S\n      allowed_domains: ['exa mple.com']\n"), "auth.sso.providers[0].allowed_domains[0]", nil},
		{"bad role", base("      client_secret_env: S\n      default_role: Admin!\n"), "auth.sso.providers[0].default_role", nil},
		// Everyone the provider vouches for would be an administrator.
		{"created users as admins", base("      client_secret_env: S\n      create_users: true\n      default_role: admin\n"), "auth.sso.providers[0].default_role", nil},
		{"bad claim", base("      client_secret_env: S\n      groups_claim: 'a b'\n"), "auth.sso.providers[0].groups_claim", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = map[string]string{"S": "a-long-enough-secret"}
			}
			_, err := Load(writeFile(t, tc.yaml), envMap(env))
			ce, ok := err.(*Error)
			if !ok || ce.Key != tc.key || (tc.name == "inline secret is no key" && !strings.Contains(err.Error(), "client_secret")) {
				t.Fatalf("got %v, want an error on %s", err, tc.key)
			}
			for _, v := range env {
				if strings.Contains(err.Error(), v) {
					t.Errorf("the error shows the secret: %v", err)
				}
			}
		})
	}
}
