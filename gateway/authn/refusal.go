package authn

import (
	"errors"

	"github.com/berthgw/berth/gateway/identity"
)

// refusal is what a client whose credential was refused is told: that it
// expired, or was revoked, when the identity service knows; otherwise one
// answer for everything else, so nothing is learnt about credentials the
// client does not hold.
func refusal(err error) string {
	switch {
	case errors.Is(err, identity.ErrExpired):
		return "your credential has expired"
	case errors.Is(err, identity.ErrRevoked):
		return "your credential was revoked (its session was signed out)"
	}
	return "invalid, expired or revoked credentials"
}
