package clusters

import (
	"slices"
	"testing"
)

func TestPermissionsMissing(t *testing.T) {
	extras := []string{"berth.dev/auth-method"}
	for _, tc := range []struct {
		p    Permissions
		want []string
	}{
		{Permissions{true, true, true, true, true}, nil},
		// Nodes are not essential, nor is kubectl --as.
		{Permissions{true, true, true, false, true}, nil},
		{Permissions{true, true, true, true, false}, nil},
		{Permissions{false, true, true, true, true}, []string{"impersonate users"}},
		{Permissions{}, []string{"impersonate users", "impersonate groups", "impersonate the extra fields berth.dev/auth-method"}},
	} {
		if got := tc.p.missing(extras); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestExtraKeysFollowIdentity(t *testing.T) {
	for _, omit := range []bool{false, true} {
		s := &Service{opts: Options{ImpersonatePrefix: "berth:", OmitExtras: omit}}
		got := s.extraKeys()
		want := []string{"berth.dev/auth-method", "berth.dev/client-ip", "berth.dev/request-id"}
		if omit {
			want = nil
		}
		if !slices.Equal(got, want) {
			t.Errorf("omit extras %v: %q, want %q", omit, got, want)
		}
	}
}
