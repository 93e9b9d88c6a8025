package authn

import (
	"fmt"
	"testing"

	"github.com/berthgw/berth/gateway/identity"
)

func TestRefusal(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{identity.ErrExpired, "your credential has expired"},
		{fmt.Errorf("verify: %w", identity.ErrExpired), "your credential has expired"},
		{identity.ErrRevoked, "your credential was revoked (its session was signed out)"},
		{identity.ErrUnauthenticated, "invalid, expired or revoked credentials"},
	} {
		if got := refusal(tc.err); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
}
