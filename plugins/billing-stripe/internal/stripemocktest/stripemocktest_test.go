package stripemocktest

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The version the cache is keyed by must be the one the tools module
// builds, or a stale binary would pass for the pinned one.
func TestVersionMatchesToolsModule(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(ToolsDir(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "github.com/stripe/stripe-mock "+Version+"\n") {
		t.Fatalf("testdata/stripe-mock/go.mod does not require stripe-mock %s:\n%s", Version, data)
	}
}

// TestStart runs the pinned stripe-mock on loopback and asks it for the
// balance, with a test key and without one.
func TestStart(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %q is not on loopback", s.URL)
	}
	resp, err := http.Get(s.URL + "/v1/balance")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a request without a key got %d, want 401", resp.StatusCode)
	}
	// It validates requests against Stripe's specification, which is what
	// makes a test against it mean something.
	for form, want := range map[string]int{"mode=payment&no_such_parameter=1": 400, "mode=weekly": 400} {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/checkout/sessions", strings.NewReader(form))
		req.Header.Set("Authorization", "Bearer "+TestKey)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST /v1/checkout/sessions %s: %d, want %d", form, resp.StatusCode, want)
		}
	}
	if !strings.Contains(s.Output(), "stripe-mock "+Version) {
		t.Errorf("stripe-mock did not report %s:\n%s", Version, s.Output())
	}
}
