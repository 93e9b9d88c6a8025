package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
)

// Access tokens are signed by one Ed25519 key at a time. Rotation makes a
// new key the signer and keeps the old one for verification only, for as
// long as a token it signed can live (the longest token lifetime plus the
// leeway), so nobody is signed out by a routine rotation. An operator who
// fears a key has leaked rotates with retire_previous: the old keys go at
// once and every access token they signed stops working; clients renew
// with their refresh tokens or access keys, which are not JWTs.

// signingKeyRecord is a signing key as stored, its seed sealed with the
// gateway's secret box under a context naming the key.
type signingKeyRecord struct {
	ID        string    `json:"id"`
	Sealed    []byte    `json:"sealed"`
	CreatedAt time.Time `json:"created_at"`
	// RetiredAt is when the key stopped signing; zero while it signs.
	RetiredAt time.Time `json:"retired_at,omitzero"`
	// VerifyUntil is when tokens it signed are no longer accepted; set on
	// retirement.
	VerifyUntil time.Time `json:"verify_until,omitzero"`
}

// signingKeyTable keeps the signing keys. Retired keys are deleted once
// their verification window has passed.
var signingKeyTable = store.NewTable[signingKeyRecord]("signing_keys")

func signingKeyContext(id string) string { return "identity/signing_keys/" + id }

// SigningKey describes a token signing key, without its secret.
type SigningKey struct {
	ID string `json:"id"`
	// Current is true for the key that signs new tokens.
	Current     bool      `json:"current"`
	CreatedAt   time.Time `json:"created_at"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
	VerifyUntil time.Time `json:"verify_until,omitzero"`
}

// keySet is the signing keys in force, as the token issuer uses them.
type keySet struct {
	signerID string
	signer   ed25519.PrivateKey
	// signerCreated is when the signer was made, for automatic rotation.
	signerCreated time.Time
	// verify holds the public key of the signer and of every retired key
	// whose tokens may still be live.
	verify map[string]ed25519.PublicKey
	// nextPrune is the earliest VerifyUntil among retired keys; zero when
	// there are none.
	nextPrune time.Time
	// withdrawn names the keys dropped after a leak while this process
	// ran; a stream opened with one of their tokens ends (see Reverify).
	// Streams do not survive a restart, so neither does this.
	withdrawn map[string]bool
}

// verificationWindow is how long a retired key keeps verifying: no token
// it signed outlives that.
func (s *Service) verificationWindow() time.Duration {
	return verificationWindow(s.set)
}

func verificationWindow(set Settings) time.Duration {
	return max(set.AccessTokenTTL, set.AccessKeyTokenTTL) + set.Leeway
}

// loadSigningKeys reads the keys in tx, first moving a key from before
// rotation existed into the table, and settles them (see settleSigningKeys).
func loadSigningKeys(tx *store.Tx, box *secretbox.Box, now time.Time, window time.Duration) (*keySet, error) {
	recs, err := scanSigningKeys(tx)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		rec, err := adoptLegacySigningKey(tx, box)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			if err := signingKeyTable.Insert(tx, rec.ID, rec); err != nil {
				return nil, err
			}
			recs = append(recs, rec)
		}
	}
	return settleSigningKeys(tx, box, recs, now, window)
}

// adoptLegacySigningKey moves the single signing key of earlier versions
// into the table under its old key id, so tokens it signed stay valid
// across the upgrade. It returns nil when there is none.
func adoptLegacySigningKey(tx *store.Tx, box *secretbox.Box) (*signingKeyRecord, error) {
	old, err := secrets.Get(tx, legacySigningKeyRecord)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seed, err := box.Open(old.Sealed, "identity/"+legacySigningKeyRecord)
	if err != nil {
		return nil, fmt.Errorf("open %s (is BERTH_SECRET_KEY the one this data was made with?): %w", legacySigningKeyRecord, err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s has %d bytes, want %d", legacySigningKeyRecord, len(seed), ed25519.SeedSize)
	}
	if err := secrets.Delete(tx, legacySigningKeyRecord); err != nil {
		return nil, err
	}
	return &signingKeyRecord{ID: old.KeyID, Sealed: box.Seal(seed, signingKeyContext(old.KeyID)), CreatedAt: old.CreatedAt}, nil
}

func newSigningKey(box *secretbox.Box, now time.Time) (*signingKeyRecord, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	id := store.NewID("jwk")
	return &signingKeyRecord{ID: id, Sealed: box.Seal(seed, signingKeyContext(id)), CreatedAt: now.UTC()}, nil
}

func scanSigningKeys(tx *store.Tx) ([]*signingKeyRecord, error) {
	var recs []*signingKeyRecord
	err := signingKeyTable.Scan(tx, store.ScanOptions{}, func(_ string, r *signingKeyRecord) (bool, error) {
		recs = append(recs, r)
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	return recs, nil
}

// settleSigningKeys brings the stored keys recs into order in tx and
// returns them as a keySet: retired keys whose window has passed are
// deleted; the newest key not retired signs, and any other key not retired
// (which only a store edited by hand could hold) is retired with a full
// window; with no key to sign, a new one is made.
func settleSigningKeys(tx *store.Tx, box *secretbox.Box, recs []*signingKeyRecord, now time.Time, window time.Duration) (*keySet, error) {
	var signer *signingKeyRecord
	for _, r := range recs {
		if r.RetiredAt.IsZero() && (signer == nil || r.CreatedAt.After(signer.CreatedAt)) {
			signer = r
		}
	}
	if signer == nil {
		rec, err := newSigningKey(box, now)
		if err != nil {
			return nil, err
		}
		if err := signingKeyTable.Insert(tx, rec.ID, rec); err != nil {
			return nil, err
		}
		signer, recs = rec, append(recs, rec)
	}
	ks := &keySet{verify: make(map[string]ed25519.PublicKey, len(recs))}
	for _, r := range recs {
		if r != signer && r.RetiredAt.IsZero() {
			r.RetiredAt, r.VerifyUntil = now.UTC(), now.Add(window).UTC()
			if err := signingKeyTable.Put(tx, r.ID, r); err != nil {
				return nil, err
			}
		}
		if r != signer && !now.Before(r.VerifyUntil) {
			if err := signingKeyTable.Delete(tx, r.ID); err != nil {
				return nil, fmt.Errorf("delete expired signing key: %w", err)
			}
			continue
		}
		seed, err := box.Open(r.Sealed, signingKeyContext(r.ID))
		if err != nil {
			return nil, fmt.Errorf("open signing key %s (is BERTH_SECRET_KEY the one this data was made with?): %w", r.ID, err)
		}
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("signing key %s has %d bytes, want %d", r.ID, len(seed), ed25519.SeedSize)
		}
		priv := ed25519.NewKeyFromSeed(seed)
		ks.verify[r.ID] = priv.Public().(ed25519.PublicKey)
		if r == signer {
			ks.signerID, ks.signer, ks.signerCreated = r.ID, priv, r.CreatedAt
		} else if ks.nextPrune.IsZero() || r.VerifyUntil.Before(ks.nextPrune) {
			ks.nextPrune = r.VerifyUntil
		}
	}
	return ks, nil
}

// RotateSigningKey makes a new key sign access tokens from now on. The
// keys it replaces keep verifying the tokens they signed until those
// expire, or, with retirePrevious, are withdrawn at once: every access
// token issued so far is refused, and the functions registered with
// OnSigningKeysWithdrawn run so that streams opened with such tokens end.
func (s *Service) RotateSigningKey(ctx context.Context, actor *Principal, m Meta, retirePrevious bool) (*SigningKey, error) {
	s.keyMu.Lock()
	key, err := s.rotateSigningKey(retirePrevious)
	s.keyMu.Unlock()
	if err != nil {
		return nil, err
	}
	s.record(ctx, actor, m, audit.Event{Category: audit.CategorySettings, Action: "rotate", ResourceType: "signing_key",
		ResourceID: key.ID, Details: map[string]string{"retire_previous": fmt.Sprint(retirePrevious), "trigger": "request"}})
	s.log.Info("token signing key rotated", "key_id", key.ID, "retire_previous", retirePrevious)
	return key, nil
}

// OnSigningKeysWithdrawn registers fn to run after RotateSigningKey has
// withdrawn keys, once their tokens are refused. fn must be quick.
func (s *Service) OnSigningKeysWithdrawn(fn func()) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	s.keysWithdrawn = append(s.keysWithdrawn, fn)
}

// rotateSigningKey makes a new signer; the caller holds keyMu.
func (s *Service) rotateSigningKey(retirePrevious bool) (*SigningKey, error) {
	now := s.now().UTC()
	rec, err := newSigningKey(s.box, now)
	if err != nil {
		return nil, err
	}
	var ks *keySet
	err = s.db.Update(func(tx *store.Tx) error {
		recs, err := scanSigningKeys(tx)
		if err != nil {
			return err
		}
		kept := []*signingKeyRecord{rec}
		for _, r := range recs {
			switch {
			case retirePrevious:
				if err := signingKeyTable.Delete(tx, r.ID); err != nil {
					return err
				}
				continue
			case r.RetiredAt.IsZero():
				r.RetiredAt, r.VerifyUntil = now, now.Add(s.verificationWindow())
				if err := signingKeyTable.Put(tx, r.ID, r); err != nil {
					return err
				}
			}
			kept = append(kept, r)
		}
		if err := signingKeyTable.Insert(tx, rec.ID, rec); err != nil {
			return err
		}
		ks, err = settleSigningKeys(tx, s.box, kept, now, s.verificationWindow())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rotate signing key: %w", err)
	}
	old := s.tokens.keys.Load()
	ks.withdrawn = old.withdrawn
	if retirePrevious {
		ks.withdrawn = maps.Clone(old.withdrawn)
		if ks.withdrawn == nil {
			ks.withdrawn = map[string]bool{}
		}
		for id := range old.verify {
			ks.withdrawn[id] = true
		}
	}
	s.tokens.setKeys(ks)
	if retirePrevious {
		for _, fn := range s.keysWithdrawn {
			fn()
		}
	}
	return &SigningKey{ID: rec.ID, Current: true, CreatedAt: rec.CreatedAt}, nil
}

// SigningKeys lists the keys in force, the signing one first, then the
// retired ones newest first.
func (s *Service) SigningKeys() ([]SigningKey, error) {
	var recs []*signingKeyRecord
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		recs, err = scanSigningKeys(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	signer := s.tokens.keys.Load().signerID
	now := s.now()
	out := make([]SigningKey, 0, len(recs))
	for _, r := range recs {
		if !r.RetiredAt.IsZero() && !now.Before(r.VerifyUntil) {
			continue
		}
		out = append(out, SigningKey{ID: r.ID, Current: r.ID == signer, CreatedAt: r.CreatedAt,
			RetiredAt: r.RetiredAt, VerifyUntil: r.VerifyUntil})
	}
	slices.SortFunc(out, func(a, b SigningKey) int {
		if a.Current != b.Current {
			if a.Current {
				return -1
			}
			return 1
		}
		return b.CreatedAt.Compare(a.CreatedAt)
	})
	return out, nil
}

// MaintainSigningKeys rotates the signing key when it is older than the
// configured rotation period and deletes retired keys whose window has
// passed. It returns when it next has work to do; zero when nothing is
// scheduled (no rotation period and no retired key).
func (s *Service) MaintainSigningKeys() (next time.Time, err error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	now := s.now()
	ks := s.tokens.keys.Load()
	every := s.set.SigningKeyRotation
	switch {
	case every > 0 && !now.Before(ks.signerCreated.Add(every)):
		key, err := s.rotateSigningKey(false)
		if err != nil {
			return now.Add(time.Minute), err
		}
		s.record(context.Background(), nil, Meta{}, audit.Event{Category: audit.CategorySettings, Action: "rotate",
			ResourceType: "signing_key", ResourceID: key.ID, ActorName: "berth",
			Details: map[string]string{"retire_previous": "false", "trigger": "schedule"}})
		s.log.Info("token signing key rotated on schedule", "key_id", key.ID)
	case !ks.nextPrune.IsZero() && !now.Before(ks.nextPrune):
		if err := s.reloadSigningKeys(); err != nil {
			return now.Add(time.Minute), err
		}
	}
	ks = s.tokens.keys.Load()
	if every > 0 {
		next = ks.signerCreated.Add(every)
	}
	if p := ks.nextPrune; !p.IsZero() && (next.IsZero() || p.Before(next)) {
		next = p
	}
	return next, nil
}

// reloadSigningKeys reads and settles the keys again, deleting those whose
// window has passed; the caller holds keyMu.
func (s *Service) reloadSigningKeys() error {
	var ks *keySet
	err := s.db.Update(func(tx *store.Tx) error {
		recs, err := scanSigningKeys(tx)
		if err != nil {
			return err
		}
		ks, err = settleSigningKeys(tx, s.box, recs, s.now(), s.verificationWindow())
		return err
	})
	if err != nil {
		return fmt.Errorf("reload signing keys: %w", err)
	}
	ks.withdrawn = s.tokens.keys.Load().withdrawn
	s.tokens.setKeys(ks)
	return nil
}

// RunSigningKeys keeps the signing keys maintained (see
// MaintainSigningKeys) until ctx ends. It wakes at least hourly, so a
// changed wall clock is noticed.
func (s *Service) RunSigningKeys(ctx context.Context) {
	for {
		next, err := s.MaintainSigningKeys()
		if err != nil {
			s.log.Error("signing key maintenance failed", "err", err)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(s.now()), time.Second))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// JWKS returns the public keys that verify access tokens, as a JSON Web
// Key Set (RFC 7517, Ed25519 keys as in RFC 8037), for services that check
// Berth's tokens themselves.
func (s *Service) JWKS() []byte {
	ks := s.tokens.keys.Load()
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	}
	ids := make([]string, 0, len(ks.verify))
	for id := range ks.verify {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(ids))}
	for _, id := range ids {
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(ks.verify[id]),
			Kid: id, Alg: accessAlg, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err) // plain strings only: cannot fail
	}
	return b
}

// followSigningKeys loads the signing keys again after another replica
// wrote them (a rotation, scheduled or asked for there): this replica then
// signs with the new key and verifies with the same keys as the rest.
// Keys that vanished before their verification window ended were
// withdrawn after a leak: their tokens are refused here too, and the
// OnSigningKeysWithdrawn functions run.
func (s *Service) followSigningKeys() {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	old := s.tokens.keys.Load()
	var recs []*signingKeyRecord
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		recs, err = scanSigningKeys(tx)
		return err
	})
	if err != nil {
		s.log.Error("reload signing keys written elsewhere", "err", err)
		return
	}
	present := map[string]bool{}
	for _, r := range recs {
		present[r.ID] = true
	}
	if err := s.reloadSigningKeys(); err != nil {
		s.log.Error("reload signing keys written elsewhere", "err", err)
		return
	}
	now := s.now()
	withdrawn := map[string]bool{}
	for id := range old.verify {
		// A retired key may also have gone because its window passed
		// (pruned): only one that vanished before the earliest window
		// ended, or the signer, was withdrawn.
		if !present[id] && (id == old.signerID || old.nextPrune.IsZero() || now.Before(old.nextPrune)) {
			withdrawn[id] = true
		}
	}
	if len(withdrawn) == 0 {
		return
	}
	ks := *s.tokens.keys.Load()
	ks.withdrawn = maps.Clone(old.withdrawn)
	if ks.withdrawn == nil {
		ks.withdrawn = map[string]bool{}
	}
	maps.Copy(ks.withdrawn, withdrawn)
	s.tokens.setKeys(&ks)
	for _, fn := range s.keysWithdrawn {
		fn()
	}
}
