package identity

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/internal/lru"
)

// maxGrants bounds the grant cache: one entry per session, browser cookie
// or API key in use.
const maxGrants = 10_000

// grant is what authenticating one credential reads from the store: the
// principal as read (user, rights, the session or key used) and the limits
// of that session or key. A request gets a copy, with the presenting
// token's own id as its credential where that differs.
type grant struct {
	p Principal
	// expiresAt is when the session or key stops working; zero for never.
	expiresAt time.Time
	// lastUsedAt is an API key's, to pace its last_used_at updates.
	lastUsedAt time.Time
}

// principal is the grant as a request's Principal. The slices are shared
// with the cache: nothing may modify a Principal's slices in place.
func (g *grant) principal(credentialID string) *Principal {
	p := g.p
	p.CredentialID, p.ExpiresAt = credentialID, g.expiresAt
	return &p
}

// grantCache keeps recently used grants so a request does not read its
// session, user and roles from the store every time. Entries never outlive
// what they were read from: every committed write to a session, user, role
// or API key drops the entries it could change before the write returns
// (see invalidate), so revocation, disabling and role changes still apply
// to the very next request, as they did without the cache.
type grantCache struct {
	mu sync.Mutex
	// epoch counts invalidations. A grant read from a snapshot taken before
	// an invalidation is not stored (see put), and a Verified taken before
	// one is no longer good (see Service.StillVerified). Written under mu.
	epoch   atomic.Uint64
	entries *lru.Map[*grant]
}

func newGrantCache() *grantCache {
	return &grantCache{entries: lru.New[*grant](maxGrants)}
}

// Cache keys by credential kind.
const (
	grantSession = "s/" // + session id, for access tokens
	grantCookie  = "c/" // + cookie digest
	grantAPIKey  = "k/" // + key digest
)

// GrantStaleness bounds how long a replica on etcd that stopped hearing
// from etcd keeps answering from its cached grants: past it, it asks the
// store, which answers 503 while etcd is out of reach. Another replica's
// revocation may have been missed meanwhile; this is how long.
const GrantStaleness = 5 * time.Second

// cachedGrant returns the grant cached under key if it is still in force
// at now and the cache can be trusted: on replicas, only while this one
// hears from etcd (see GrantStaleness).
func (s *Service) cachedGrant(key string, now time.Time) (*grant, bool) {
	if !s.db.Fresh(GrantStaleness) {
		return nil, false
	}
	return s.grants.get(key, now)
}

// get returns the grant cached under key if it is still in force at now.
func (c *grantCache) get(key string, now time.Time) (*grant, bool) {
	c.mu.Lock()
	g, ok := c.entries.Get(key)
	c.mu.Unlock()
	if !ok || (!g.expiresAt.IsZero() && !now.Before(g.expiresAt)) {
		return nil, false
	}
	return g, true
}

// begin returns the epoch to pass to put; call it before opening the
// transaction the grant is read in.
func (c *grantCache) begin() uint64 { return c.epoch.Load() }

// put caches g under key unless an invalidation happened since begin
// returned epoch: the grant may then have been read before a write that
// changed it, and the hook that would have dropped it already ran.
func (c *grantCache) put(key string, epoch uint64, g *grant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch.Load() == epoch {
		c.entries.Put(key, g)
	}
}

// invalidate is the store's commit hook: it drops the grants that the
// written records could change.
func (c *grantCache) invalidate(changes []store.Change) {
	var users, sessions, keys []string
	all := false
	for _, ch := range changes {
		switch ch.Table {
		case usersTable.Name():
			users = append(users, ch.ID)
		case sessionsTable.Name():
			sessions = append(sessions, ch.ID)
		case apiKeysTable.Name():
			keys = append(keys, ch.ID)
		case rolesTable.Name(), store.AllChanged.Table:
			// A role's permissions reach every user holding it; a replica
			// that lost track of writes cannot tell what changed.
			all = true
		}
	}
	if !all && len(users)+len(sessions)+len(keys) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	if all {
		c.entries.Clear()
		return
	}
	c.entries.RemoveIf(func(_ string, g *grant) bool {
		return slices.Contains(users, g.p.UserID) ||
			(g.p.SessionID != "" && slices.Contains(sessions, g.p.SessionID)) ||
			(g.p.AuthMethod == MethodAPIKey && slices.Contains(keys, g.p.CredentialID))
	})
}
