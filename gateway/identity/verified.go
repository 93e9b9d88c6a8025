package identity

import "time"

// Verified is what VerifyAccessTokenKept decided for one access token, for
// a caller that is likely to be shown the very same token again — the
// gateway, for the next request on the same connection. StillVerified
// then says whether the decision still holds without verifying the token,
// reading the grant caches or allocating: it holds exactly as long as the
// caches behind VerifyAccessToken would give the same answer, that is
// while no write has invalidated any grant since (the grant cache's
// epoch), the signing keys are the same, neither the token nor its
// session has expired, and (on replicas) the store is fresh.
type Verified struct {
	p     Principal
	epoch uint64
	keys  *keySet
	until time.Time // the earlier of the token's and the session's expiry
}

// VerifyAccessTokenKept is VerifyAccessToken, also returning the decision
// for StillVerified.
func (s *Service) VerifyAccessTokenKept(raw string) (*Principal, *Verified, error) {
	// Read before anything else: a write landing while the token is
	// checked moves the epoch, and the decision is then never reused.
	epoch := s.grants.begin()
	keys := s.tokens.keys.Load()
	p, claims, err := s.verifyAccessToken(raw)
	if err != nil {
		return nil, nil, err
	}
	v := &Verified{p: *p, epoch: epoch, keys: keys, until: p.ExpiresAt}
	if claims.ExpiresAt != nil {
		if exp := claims.ExpiresAt.Time; v.until.IsZero() || exp.Before(v.until) {
			v.until = exp
		}
	}
	if v.until.IsZero() {
		return p, nil, nil // never kept without an end
	}
	return p, v, nil
}

// StillVerified returns a fresh copy of v's principal if v still holds
// now (see Verified).
func (s *Service) StillVerified(v *Verified) (*Principal, bool) {
	if v == nil || s.grants.epoch.Load() != v.epoch || s.tokens.keys.Load() != v.keys ||
		!s.now().Before(v.until) || !s.db.Fresh(GrantStaleness) {
		return nil, false
	}
	p := v.p
	return &p, true
}
