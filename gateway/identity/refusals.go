package identity

import (
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Refusals more precise than ErrUnauthenticated, which they wrap: a
// client told that its credential expired or was revoked knows to fetch a
// new one rather than to check what it typed. Neither says anything about
// a credential the caller does not already hold.
var (
	// ErrExpired: an API key, access token or session past its expiry.
	ErrExpired = fmt.Errorf("%w: the credential has expired", ErrUnauthenticated)
	// ErrRevoked: an access token whose session was ended (logout,
	// revocation). A revoked API key is deleted and reads as unknown.
	ErrRevoked = fmt.Errorf("%w: the credential was revoked", ErrUnauthenticated)
)

// tokenExpired reports whether verifying an access token failed only
// because it expired. The signature is checked before the claims, so a
// forged token never reads as expired.
func tokenExpired(err error) bool { return errors.Is(err, jwt.ErrTokenExpired) }
