package identity

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/store"
)

// Limits on API-key fields.
const (
	maxKeyName   = 64
	maxScopes    = 32
	maxScopeLen  = 128
	apiKeyPrefix = 12 // "brt_" and 8 characters shown in lists
	accessKeyLen = 32 // hex characters of an access key and a secret key
	// lastUsedEvery throttles last_used_at updates (and the audit "use"
	// event) to one per key per interval, so key traffic does not turn
	// every request into a write.
	lastUsedEvery = time.Minute
)

// clusterNameRE is a DNS-1123 subdomain, what Kubernetes-style cluster
// names are.
var clusterNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)

// NewAPIKey is the input for CreateAPIKey.
type NewAPIKey struct {
	// UserID owns the key; empty means the actor.
	UserID string
	Name   string
	Scopes []string
	// ExpiresAt is optional; zero means the key does not expire.
	ExpiresAt time.Time
}

// CreateAPIKey mints an API key and returns its record and the key itself,
// which is shown this once. Scopes may only narrow what the owner can do;
// a scoped key may not mint keys, which would let it escape its scope. A
// users:admin may create keys for other users (the proxy's kubeconfig
// download does, with a cluster:<name> scope).
func (s *Service) CreateAPIKey(ctx context.Context, actor *Principal, in NewAPIKey, m Meta) (*APIKey, string, error) {
	if actor.Scoped() {
		return nil, "", forbidden("a scoped API key cannot create credentials")
	}
	owner := in.UserID
	if owner == "" {
		owner = actor.UserID
	}
	if owner != actor.UserID && !actor.Can(PermUsersAdmin) {
		return nil, "", notFound("user")
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || len(name) > maxKeyName || !printable(name) {
		return nil, "", invalid("name must be 1 to %d printable characters", maxKeyName)
	}
	now := s.now().UTC()
	if !in.ExpiresAt.IsZero() && !in.ExpiresAt.After(now) {
		return nil, "", invalid("expires_at must be in the future")
	}
	scopes, err := s.checkScopes(in.Scopes)
	if err != nil {
		return nil, "", err
	}
	secret, err := newOpaqueToken(APIKeyPrefix)
	if err != nil {
		return nil, "", err
	}
	k := &APIKey{ID: store.NewID("key"), UserID: owner, Name: name, Prefix: secret[:apiKeyPrefix],
		Digest: s.keys.digest("api_key", secret), Scopes: scopes, CreatedAt: now, ExpiresAt: in.ExpiresAt.UTC()}
	err = s.db.Update(func(tx *store.Tx) error {
		u, err := usersTable.Get(tx, owner)
		if err != nil {
			if isNotFound(err) {
				return notFound("user")
			}
			return err
		}
		// A key may not carry a permission its owner lacks: it would grant
		// nothing, and the owner would believe it does.
		perms, err := resolvePermissions(tx, u.Roles)
		if err != nil {
			return err
		}
		for _, sc := range scopes {
			if !strings.HasPrefix(sc, ClusterScopePrefix) && !slices.Contains(perms, sc) && !slices.Contains(perms, PermAll) {
				return invalid("scope %q is not among the owner's permissions", sc)
			}
		}
		if err := s.checkAPIKeyCap(tx, owner, now); err != nil {
			return err
		}
		return apiKeysTable.Insert(tx, k.ID, k)
	})
	if err != nil {
		return nil, "", err
	}
	s.record(ctx, actor, m, audit.Event{Action: "create", ResourceType: "api_key", ResourceID: k.ID,
		Details: map[string]string{"owner_id": owner, "prefix": k.Prefix, "scopes": strings.Join(scopes, " ")}})
	return k, secret, nil
}

// checkAPIKeyCap refuses one more key for a user who already holds
// MaxAPIKeys live (unexpired) keys. Without a cap every key has its own
// rate-limit bucket, so a user could scale any flood by minting keys.
// It runs in the creating transaction, so two racing creations cannot
// both pass it.
func (s *Service) checkAPIKeyCap(tx *store.Tx, owner string, now time.Time) error {
	if s.set.MaxAPIKeys <= 0 {
		return nil
	}
	ids, err := apiKeysTable.IDsBy(tx, "user", owner)
	if err != nil {
		return fmt.Errorf("count api keys: %w", err)
	}
	live := 0
	for _, id := range ids {
		k, err := apiKeysTable.Get(tx, id)
		if err != nil {
			if isNotFound(err) {
				continue // expired and gone
			}
			return fmt.Errorf("count api keys: %w", err)
		}
		if k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt) {
			live++
		}
	}
	if live >= s.set.MaxAPIKeys {
		return conflict("the user already holds %d API keys, the most allowed; revoke one first", s.set.MaxAPIKeys)
	}
	return nil
}

func (s *Service) checkScopes(in []string) ([]string, error) {
	if len(in) > maxScopes {
		return nil, invalid("at most %d scopes", maxScopes)
	}
	out := make([]string, 0, len(in))
	for _, sc := range in {
		if len(sc) > maxScopeLen {
			return nil, invalid("scope is longer than %d characters", maxScopeLen)
		}
		if c, ok := strings.CutPrefix(sc, ClusterScopePrefix); ok {
			if !clusterNameRE.MatchString(c) {
				return nil, invalid("scope %q: cluster name must be a DNS name", sc)
			}
		} else if !KnownPermission(sc) {
			return nil, invalid("unknown scope %q (want a permission or cluster:<name>)", sc)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	slices.Sort(out)
	return out, nil
}

// VerifyAPIKey checks a bearer API key and returns its principal. Its
// last_used_at is updated (and a "use" audit event written) at most once a
// minute per key.
func (s *Service) VerifyAPIKey(ctx context.Context, raw string, m Meta) (*Principal, error) {
	if !wellFormedOpaque(raw, APIKeyPrefix) {
		return nil, ErrUnauthenticated
	}
	digest := s.keys.digest("api_key", raw)
	now := s.now()
	key := grantAPIKey + digest
	g, ok := s.cachedGrant(key, now)
	if !ok {
		epoch := s.grants.begin()
		err := s.db.View(func(tx *store.Tx) error {
			k, _, err := apiKeysTable.GetBy(tx, "digest", digest)
			if err != nil {
				if isNotFound(err) {
					return ErrUnauthenticated
				}
				return err
			}
			if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
				return ErrExpired
			}
			p, err := principalFor(tx, k.UserID, MethodAPIKey, k.ID, "", k.Scopes)
			if err != nil {
				return err
			}
			g = &grant{p: *p, expiresAt: k.ExpiresAt, lastUsedAt: k.LastUsedAt}
			return nil
		})
		if err != nil {
			return nil, err
		}
		s.grants.put(key, epoch, g)
	}
	p := g.principal(g.p.CredentialID)
	if now.Sub(g.lastUsedAt) >= lastUsedEvery {
		// The write drops the cached grant, so the next request reads the
		// new last_used_at.
		s.touchAPIKey(ctx, p, p.CredentialID, now, m)
	}
	return p, nil
}

func (s *Service) touchAPIKey(ctx context.Context, p *Principal, id string, now time.Time, m Meta) {
	err := s.db.Update(func(tx *store.Tx) error {
		k, err := apiKeysTable.Get(tx, id)
		if err != nil {
			return err
		}
		k.LastUsedAt = now.UTC()
		return apiKeysTable.Put(tx, id, k)
	})
	if err != nil {
		if !isNotFound(err) {
			s.log.Warn("api key last_used_at not updated", "key_id", id, "err", err)
		}
		return
	}
	s.record(ctx, p, m, audit.Event{Action: "use", ResourceType: "api_key", ResourceID: id})
}

// ListAPIKeys returns a user's keys, newest first.
func (s *Service) ListAPIKeys(actor *Principal, userID string) ([]APIKey, error) {
	if err := ownerCheck(actor, userID, "user"); err != nil {
		return nil, err
	}
	return listByUser(s.db, apiKeysTable, userID)
}

// RevokeAPIKey deletes a key; its next use fails.
func (s *Service) RevokeAPIKey(ctx context.Context, actor *Principal, id string, m Meta) error {
	var owner string
	err := s.db.Update(func(tx *store.Tx) error {
		k, err := apiKeysTable.Get(tx, id)
		if err != nil {
			if isNotFound(err) {
				return notFound("API key")
			}
			return err
		}
		if err := ownerCheck(actor, k.UserID, "API key"); err != nil {
			return err
		}
		owner = k.UserID
		return apiKeysTable.Delete(tx, id)
	})
	if err != nil {
		return err
	}
	s.record(ctx, actor, m, audit.Event{Action: "revoke", ResourceType: "api_key", ResourceID: id,
		Details: map[string]string{"owner_id": owner}})
	return nil
}

// CreateAccessKey mints a KubeCube-style access-key pair for the actor and
// returns its record and the secret key, shown this once. A user may hold
// MaxAccessKeys pairs; one more is a conflict.
func (s *Service) CreateAccessKey(ctx context.Context, actor *Principal, m Meta) (*AccessKey, string, error) {
	if actor.Scoped() {
		return nil, "", forbidden("a scoped API key cannot create credentials")
	}
	access, err := newHex(accessKeyLen / 2)
	if err != nil {
		return nil, "", err
	}
	secret, err := newHex(accessKeyLen / 2)
	if err != nil {
		return nil, "", err
	}
	k := &AccessKey{ID: store.NewID("ak"), UserID: actor.UserID, AccessKey: access,
		SecretDigest: s.keys.digest("access_secret", secret), CreatedAt: s.now().UTC()}
	err = s.db.Update(func(tx *store.Tx) error {
		ids, err := accessKeysTable.IDsBy(tx, "user", actor.UserID)
		if err != nil {
			return err
		}
		if len(ids) >= s.set.MaxAccessKeys {
			return conflict("you already hold %d access keys, the most allowed; delete one first", s.set.MaxAccessKeys)
		}
		return accessKeysTable.Insert(tx, k.ID, k)
	})
	if err != nil {
		return nil, "", err
	}
	s.record(ctx, actor, m, audit.Event{Action: "create", ResourceType: "access_key", ResourceID: k.ID,
		Details: map[string]string{"access_key": k.AccessKey}})
	return k, secret, nil
}

// ListAccessKeys returns a user's access keys, newest first.
func (s *Service) ListAccessKeys(actor *Principal, userID string) ([]AccessKey, error) {
	if err := ownerCheck(actor, userID, "user"); err != nil {
		return nil, err
	}
	return listByUser(s.db, accessKeysTable, userID)
}

// DeleteAccessKey removes an access key and ends the tokens it issued.
func (s *Service) DeleteAccessKey(ctx context.Context, actor *Principal, id string, m Meta) error {
	now := s.now().UTC()
	var owner string
	var more bool
	err := s.db.Update(func(tx *store.Tx) error {
		k, err := accessKeysTable.Get(tx, id)
		if err != nil {
			if isNotFound(err) {
				return notFound("access key")
			}
			return err
		}
		if err := ownerCheck(actor, k.UserID, "access key"); err != nil {
			return err
		}
		owner = k.UserID
		if err := accessKeysTable.Delete(tx, id); err != nil {
			return err
		}
		more, err = revokeWhere(tx, "credential", id, now, "access_key_deleted", s.db.RecordsPerTxn(sessionWrites))
		return err
	})
	if err != nil {
		return err
	}
	if more {
		if err := s.finishRevoking("credential", id, "access_key_deleted"); err != nil {
			return err
		}
	}
	s.record(ctx, actor, m, audit.Event{Action: "revoke", ResourceType: "access_key", ResourceID: id,
		Details: map[string]string{"owner_id": owner}})
	return nil
}

// revokeWhere revokes the live sessions an index maps value to: at most
// limit of them, fewer once tx is Full (at least one); more reports that
// some are left for another transaction.
func revokeWhere(tx *store.Tx, index, value string, now time.Time, reason string, limit int) (more bool, err error) {
	ids, err := sessionsTable.IDsBy(tx, index, value)
	if err != nil {
		return false, err
	}
	revoked := 0
	for _, sid := range ids {
		sess, err := sessionsTable.Get(tx, sid)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return false, err
		}
		if !sess.RevokedAt.IsZero() {
			continue
		}
		if revoked == limit || (revoked > 0 && tx.Full()) {
			return true, nil
		}
		sess.RevokedAt, sess.RevokeReason = now, reason
		if err := sessionsTable.Put(tx, sid, sess); err != nil {
			return false, err
		}
		revoked++
	}
	return false, nil
}

// sessionWrites is what revoking one session writes: the record and its
// three index entries.
const sessionWrites = 4

// finishRevoking revokes, batch after batch, the sessions a transaction
// could not fit (see revokeWhere): its change (a user disabled, a
// password reset) has committed, and the rest follow at once.
func (s *Service) finishRevoking(index, value, reason string) error {
	for more := true; more; {
		err := s.db.Update(func(tx *store.Tx) error {
			var err error
			more, err = revokeWhere(tx, index, value, tx.Now(), reason, s.db.RecordsPerTxn(sessionWrites))
			return err
		})
		if err != nil {
			return fmt.Errorf("revoke the remaining sessions: %w", err)
		}
	}
	return nil
}

// ListSessions returns a user's live sessions, newest first.
func (s *Service) ListSessions(actor *Principal, userID string) ([]Session, error) {
	if err := ownerCheck(actor, userID, "user"); err != nil {
		return nil, err
	}
	all, err := listByUser(s.db, sessionsTable, userID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	live := all[:0]
	for _, sess := range all {
		if sess.Active(now) {
			live = append(live, sess)
		}
	}
	return live, nil
}

// RevokeSession ends one session at once.
func (s *Service) RevokeSession(ctx context.Context, actor *Principal, id string, m Meta) error {
	now := s.now().UTC()
	err := s.db.Update(func(tx *store.Tx) error {
		sess, err := sessionsTable.Get(tx, id)
		if err != nil {
			if isNotFound(err) {
				return notFound("session")
			}
			return err
		}
		if err := ownerCheck(actor, sess.UserID, "session"); err != nil {
			return err
		}
		if !sess.Active(now) {
			return notFound("session")
		}
		sess.RevokedAt, sess.RevokeReason = now, "revoked"
		return sessionsTable.Put(tx, id, sess)
	})
	if err != nil {
		return err
	}
	s.record(ctx, actor, m, audit.Event{Action: "revoke", ResourceType: "session", ResourceID: id})
	return nil
}

// LoginHistoryPage returns one page of a user's sign-in attempts, newest
// first, and the total.
func (s *Service) LoginHistoryPage(actor *Principal, userID string, page, pageSize int) ([]LoginRecord, int, error) {
	if err := ownerCheck(actor, userID, "user"); err != nil {
		return nil, 0, err
	}
	var out []LoginRecord
	total := 0
	err := s.db.View(func(tx *store.Tx) error {
		ids, err := loginHistoryTable.IDsBy(tx, "user", userID)
		if err != nil {
			return err
		}
		slices.Reverse(ids)
		total = len(ids)
		start := (page - 1) * pageSize
		for i := start; i < len(ids) && i < start+pageSize; i++ {
			r, err := loginHistoryTable.Get(tx, ids[i])
			if err != nil {
				if isNotFound(err) {
					continue
				}
				return err
			}
			out = append(out, *r)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("login history: %w", err)
	}
	return out, total, nil
}

// listByUser reads every record a "user" index maps userID to, newest
// first (ids sort by creation time).
func listByUser[T any](db *store.DB, t *store.Table[T], userID string) ([]T, error) {
	var out []T
	err := db.View(func(tx *store.Tx) error {
		ids, err := t.IDsBy(tx, "user", userID)
		if err != nil {
			return err
		}
		for i := len(ids) - 1; i >= 0; i-- {
			v, err := t.Get(tx, ids[i])
			if err != nil {
				if isNotFound(err) {
					continue
				}
				return err
			}
			out = append(out, *v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t.Name(), err)
	}
	return out, nil
}

// printable reports whether s has no control characters.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
