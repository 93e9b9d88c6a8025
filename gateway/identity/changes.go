package identity

import (
	"sync"

	"github.com/berthgw/berth/gateway/store"
)

// ChangeKind names the kind of record a Change wrote.
type ChangeKind int

// The records a principal's access rests on.
const (
	UserChanged    ChangeKind = iota + 1 // a user: status, roles, groups, password, deletion
	SessionChanged                       // a session: signed out, revoked, expired
	APIKeyChanged                        // an API key: created, used, revoked
	RoleChanged                          // a Berth role: its permissions reach every holder
)

// Change is one committed write to a record a principal's access rests
// on. ID is the user's, session's or API key's id, or the role's name.
type Change struct {
	Kind ChangeKind
	ID   string
}

// changeHooks are the functions OnChange registered.
type changeHooks struct {
	mu  sync.Mutex
	fns []func([]Change)
}

// OnChange registers fn to run after every committed transaction that
// wrote records a principal's access rests on, with those writes, before
// the write returns to its caller: a holder of something derived from a
// principal (an open watch, a cached role) learns that it may be stale. fn
// runs after the service's own caches dropped what the writes made stale,
// so what fn reads through the service is current. fn must be quick; it
// runs on the writer's goroutine.
func (s *Service) OnChange(fn func([]Change)) {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.fns = append(s.hooks.fns, fn)
}

// onCommit is the service's store commit hook: the grant cache first, then
// the OnChange subscribers.
func (s *Service) onCommit(changes []store.Change) {
	s.grants.invalidate(changes)
	ids := identityChanges(changes)
	if len(ids) == 0 {
		return
	}
	s.hooks.mu.Lock()
	fns := s.hooks.fns
	s.hooks.mu.Unlock()
	for _, fn := range fns {
		fn(ids)
	}
}

// onForeignCommit is the service's hook for writes by other replicas:
// their signing keys become this replica's. (The sign-in lockout needs no
// hook: it is counted in the shared store, see beginAttempt.)
func (s *Service) onForeignCommit(changes []store.Change) {
	for _, c := range changes {
		if c.Table == signingKeyTable.Name() || c == store.AllChanged {
			// Reloading writes (it prunes): not on the follower's goroutine.
			go s.followSigningKeys()
			return
		}
	}
}

// identityChanges picks the writes to identity's records out of a commit.
func identityChanges(changes []store.Change) []Change {
	var out []Change
	for _, c := range changes {
		var k ChangeKind
		switch c.Table {
		case usersTable.Name():
			k = UserChanged
		case sessionsTable.Name():
			k = SessionChanged
		case apiKeysTable.Name():
			k = APIKeyChanged
		case rolesTable.Name():
			k = RoleChanged
		default:
			continue
		}
		out = append(out, Change{Kind: k, ID: c.ID})
	}
	return out
}
