package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/config"
)

// Without a configured address clients can use, Berth refuses to write a
// kubeconfig (409 saying to set public_url) instead of trusting the
// request's Host; with public_url it writes that, whatever the Host.
func TestKubeconfigNeedsAConfiguredAddress(t *testing.T) {
	for _, tc := range []struct {
		name, publicURL string
		status          int
		want            string
	}{
		{"no HTTPS listener, no public_url", "", 409, "set public_url (BERTH_PUBLIC_URL)"},
		{"public_url", "https://berth.example.com", 200, "server: https://berth.example.com/proxy/clusters/prod\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			if tc.publicURL != "" {
				env["BERTH_PUBLIC_URL"] = tc.publicURL
			}
			ag := startAuthOn(t, env, stoppedClock(), func(c *config.Config) { c.HTTPS.Addr = "" })
			if ag.HTTPSAddr() != "" {
				t.Fatalf("HTTPS listens on %s", ag.HTTPSAddr())
			}
			admin := ag.login(t, "admin", adminPassword).AccessToken
			ag.must(t, 201, "POST", "/api/v1/clusters", map[string]any{"name": "prod", "server": "https://127.0.0.1:1", "token": "t"}, bearer(admin))
			status, body, _ := ag.call(t, "POST", "/api/v1/clusters/prod/kubeconfig", nil, bearer(admin), func(r *http.Request) { r.Host = "evil.example" })
			if status != tc.status || !strings.Contains(string(body), tc.want) || strings.Contains(string(body), "evil.example") {
				t.Fatalf("%d %s", status, body)
			}
			if status == 200 {
				ag.secret(kubeconfigToken(t, body))
			}
			// Nothing is minted by a refused download.
			keys := decode[struct{ Items []apiKeyOut }](t, ag.must(t, 200, "GET", "/api/v1/auth/api-keys", nil, bearer(admin))).Items
			if want := map[bool]int{true: 1, false: 0}[status == 200]; len(keys) != want {
				t.Errorf("%d API keys, want %d", len(keys), want)
			}
		})
	}
}
