package gateway

import (
	"strings"
	"testing"
)

func TestKubeconfigServerFor(t *testing.T) {
	for _, tc := range []struct {
		publicURL, httpsAddr string
		want, err            string
	}{
		{"https://berth.example.com", "0.0.0.0:8443", "https://berth.example.com", ""},
		{"", "127.0.0.1:8443", "https://127.0.0.1:8443", ""},
		{"", "[::1]:8443", "https://[::1]:8443", ""},
		{"", "0.0.0.0:8443", "", "set public_url"},
		{"", "[::]:8443", "", "set public_url"},
		{"", "", "", "no HTTPS listener"},
	} {
		got, err := kubeconfigServerFor(tc.publicURL, tc.httpsAddr)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q %q: %q %v, want %q %q", tc.publicURL, tc.httpsAddr, got, err, tc.want, tc.err)
		}
	}
}
