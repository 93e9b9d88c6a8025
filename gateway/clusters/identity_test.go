package clusters

import (
	"slices"
	"testing"

	"github.com/berthgw/berth/gateway/identity"
)

// What Berth asserts to a cluster: prefixed user and groups, and the
// extras unless they are turned off (each costs the API server an
// authorization check per request).
func TestIdentity(t *testing.T) {
	p := &identity.Principal{Username: "ann", Groups: []string{"ops", "dev"}, AuthMethod: identity.MethodAPIKey}
	tests := []struct {
		name       string
		opts       Options
		wantUser   string
		wantGroups []string
		wantExtra  []string
	}{
		{"default", Options{ImpersonatePrefix: "berth:"}, "berth:ann",
			[]string{"berth:role:edit", "berth:group:ops", "berth:group:dev"},
			[]string{"berth.dev/auth-method", "berth.dev/client-ip", "berth.dev/request-id"}},
		{"no extras", Options{ImpersonatePrefix: "edge-", OmitExtras: true}, "edge-ann",
			[]string{"edge-role:edit", "edge-group:ops", "edge-group:dev"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Service{opts: tt.opts}
			id := s.Identity(p, "edit", "192.0.2.7", "req-1")
			if id.User != tt.wantUser || !slices.Equal(id.Groups, tt.wantGroups) {
				t.Errorf("user %q groups %v, want %q %v", id.User, id.Groups, tt.wantUser, tt.wantGroups)
			}
			var keys []string
			for k := range id.Extra {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tt.wantExtra) {
				t.Errorf("extras %v, want %v", keys, tt.wantExtra)
			}
			if tt.wantExtra != nil && (id.Extra["berth.dev/client-ip"][0] != "192.0.2.7" || id.Extra["berth.dev/auth-method"][0] != identity.MethodAPIKey) {
				t.Errorf("extra values: %v", id.Extra)
			}
		})
	}
}
