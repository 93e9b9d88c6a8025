package clusters

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/proxy"
)

// A watch, a followed log or an exec session outlives the access check made
// when it opened. The service therefore records every write that may
// withdraw access (changeLog), and asks each open stream to check itself
// again after such writes (recheckStreams → proxy.Pool.Recheck →
// streamCheck). A stream whose user, session or key was not written to
// answers from memory; only the streams a write concerns read the store.

// recheckSpacing is the least time between passes over the open streams:
// writes in between are merged into the next pass. Passes also run when
// the earliest session, key or certificate behind an open stream expires,
// and every Options.RecheckInterval for all of them, a safety net that
// also catches expiries a changed wall clock moved.
const recheckSpacing = time.Second

// maxChanges bounds the change log. A stream that last checked before the
// oldest entry kept checks itself against the store.
const maxChanges = 4096

// changeLog numbers the writes that may withdraw access and keeps the most
// recent ones, so a stream can ask whether anything it rests on changed
// since it last checked.
type changeLog struct {
	gen     atomic.Uint64 // the newest entry's generation
	mu      sync.Mutex
	entries []change // oldest first
	// dropped is the newest generation with entries no longer kept.
	dropped uint64
}

// change is one write: to the record named by key ("u/" user id, "s/"
// session id, "k/" API key id), or, with all, to something every stream
// rests on (a role, a membership) or the passing of time.
type change struct {
	gen uint64
	all bool
	key string
}

// current returns the newest generation.
func (l *changeLog) current() uint64 { return l.gen.Load() }

// add records one write touching keys, or every stream if all.
func (l *changeLog) add(all bool, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	gen := l.gen.Load() + 1
	if all {
		l.entries = append(l.entries, change{gen: gen, all: true})
	}
	for _, k := range keys {
		l.entries = append(l.entries, change{gen: gen, key: k})
	}
	if n := len(l.entries) - maxChanges; n > 0 {
		l.dropped = l.entries[n-1].gen
		l.entries = slices.Delete(l.entries, 0, n)
	}
	// Published last: a reader that sees gen finds its entries.
	l.gen.Store(gen)
}

// changedSince reports whether a write after generation since may concern
// a stream resting on keys.
func (l *changeLog) changedSince(since uint64, keys []string) bool {
	if l.gen.Load() == since {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped > since {
		return true
	}
	for i := len(l.entries) - 1; i >= 0 && l.entries[i].gen > since; i-- {
		if e := l.entries[i]; e.all || slices.Contains(keys, e.key) {
			return true
		}
	}
	return false
}

// principalKeys names the records p's access rests on, as the change log
// names them.
func principalKeys(p *identity.Principal) []string {
	keys := []string{"u/" + p.UserID}
	if p.SessionID != "" {
		keys = append(keys, "s/"+p.SessionID)
	}
	if p.AuthMethod == identity.MethodAPIKey {
		keys = append(keys, "k/"+p.CredentialID)
	}
	return keys
}

// onIdentityChange is the identity service's change hook (OnChange). It
// records writes to the records a principal's access rests on (users, their
// roles, sessions, API keys) and asks for a pass. Identity runs it after
// dropping its own cached grants, so a request that reads the new
// generation finds no stale grant cached. Memberships are recorded by
// their own writers, after the cache Access reads is refreshed.
func (s *Service) onIdentityChange(changes []identity.Change) {
	var keys []string
	all, roleMayChange := false, false
	for _, c := range changes {
		switch c.Kind {
		case identity.UserChanged:
			keys = append(keys, "u/"+c.ID)
			roleMayChange = true
		case identity.SessionChanged:
			keys = append(keys, "s/"+c.ID)
		case identity.APIKeyChanged:
			keys = append(keys, "k/"+c.ID)
		case identity.RoleChanged:
			all, roleMayChange = true, true
		}
	}
	if all || len(keys) > 0 {
		s.changes.add(all, keys...)
		s.askRecheck()
	}
	if roleMayChange {
		s.roleMayHaveChanged()
	}
}

// membershipChanged records a membership write; call it after refresh.
func (s *Service) membershipChanged() {
	s.changes.add(true)
	s.askRecheck()
	s.roleMayHaveChanged()
}

// OnRoleChange registers fn to run after a write that may change someone's
// role on a cluster: a membership, a user (groups, status, deletion) or a
// Berth role. fn must be quick; it runs on the writer's goroutine.
func (s *Service) OnRoleChange(fn func()) {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	s.roleHooks = append(s.roleHooks, fn)
}

func (s *Service) roleMayHaveChanged() {
	s.hooksMu.Lock()
	hooks := s.roleHooks
	s.hooksMu.Unlock()
	for _, fn := range hooks {
		fn()
	}
}

// RecheckStreams makes every open stream check its access against the
// store again, for changes the service does not see written (signing keys
// withdrawn after a leak).
func (s *Service) RecheckStreams() {
	s.changes.add(true)
	s.askRecheck()
}

// askRecheck asks for a pass over the open streams; requests made while
// one runs are merged into the next.
func (s *Service) askRecheck() {
	select {
	case s.recheck <- struct{}{}:
	default:
	}
}

// expirySchedule is the earliest expiry among open streams' credentials,
// so a pass runs when it comes rather than at the next tick. Each stream
// reports its expiry whenever it is checked and still allowed; a pass
// starts from none, and the streams that survive it report theirs again.
type expirySchedule struct {
	mu   sync.Mutex
	next time.Time
	// rearm tells the pass loop that next moved earlier.
	rearm chan struct{}
}

// note reports a stream's expiry; zero is never.
func (e *expirySchedule) note(t time.Time) {
	if t.IsZero() {
		return
	}
	e.mu.Lock()
	earlier := e.next.IsZero() || t.Before(e.next)
	if earlier {
		e.next = t
	}
	e.mu.Unlock()
	if earlier {
		select {
		case e.rearm <- struct{}{}:
		default:
		}
	}
}

// reset forgets the expiries before a pass.
func (e *expirySchedule) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.next = time.Time{}
}

func (e *expirySchedule) peek() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.next
}

// recheckStreams runs the passes until Stop.
func (s *Service) recheckStreams() {
	t := time.NewTicker(s.opts.RecheckInterval)
	defer t.Stop()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	for {
		wait := time.Hour
		if next := s.expiries.peek(); !next.IsZero() {
			wait = next.Sub(s.opts.Now())
		}
		expiry.Reset(wait)
		select {
		case <-s.stop:
			return
		case <-s.expiries.rearm:
			continue
		case <-s.recheck:
		case <-expiry.C:
		case <-t.C:
			s.changes.add(true) // every stream reads the store again
		}
		s.expiries.reset()
		if n := s.pool.Recheck(); n > 0 {
			s.log.Info("open streams ended: access withdrawn", "streams", n)
		}
		select {
		case <-s.stop:
			return
		case <-time.After(recheckSpacing):
		}
	}
}

// streamCheck returns the Identity.StillAllowed of a stream that p opened
// on cluster as was, after an access check that read nothing written after
// generation checkedAt. It answers from memory unless a later write
// concerns p or p's credential has reached its expiry (which a refresh
// may have moved); then it decides again as a new request would: the session
// or key still works (bound to the session, not to the access token's
// own short life, as kubectl does not reopen a watch when it refreshes its
// token), p still reaches the cluster, and Berth would assert the same
// user and at least the same groups. A changed cluster role changes the
// role group, so it ends the stream; the client reconnects with its new
// identity. A Berth group gained leaves the stream as it is.
func (s *Service) streamCheck(reauth func() (*identity.Principal, error), p *identity.Principal, cluster string, was proxy.Identity, checkedAt uint64) func() bool {
	allowed, _ := s.streamAccess(reauth, p, cluster, was, checkedAt)
	return allowed
}

// streamAccess is streamCheck, also returning the proxy.Identity.Refusal
// that says why the check last said no: 401 when the credential no longer
// works, 403 when it works but no longer reaches the cluster as before.
func (s *Service) streamAccess(reauth func() (*identity.Principal, error), p *identity.Principal, cluster string, was proxy.Identity, checkedAt uint64) (allowed func() bool, refusal func() (int, string)) {
	return s.streamAccessAs(reauth, &Acting{Caller: p, As: p}, cluster, was, checkedAt)
}

// streamAccessAs is streamAccess for a stream that acts as a.As: reauth
// reads a.Caller's credential again. A stream opened with kubectl --as
// rests on both users: it ends when the caller's credential stops
// working or the caller may no longer act as the user, and when the
// user would no longer be acted as in the same way (disabled, no longer
// a member, a lower role, a group lost), as ProxyIdentity decides again.
func (s *Service) streamAccessAs(reauth func() (*identity.Principal, error), a *Acting, cluster string, was proxy.Identity, checkedAt uint64) (allowed func() bool, refusal func() (int, string)) {
	p := a.Caller
	keys := principalKeys(p)
	if a.Impersonating() {
		keys = append(keys, "u/"+a.As.UserID)
	}
	expires := p.ExpiresAt
	var mu sync.Mutex
	var refusedCode int
	var refusedWhy string
	refusal = func() (int, string) {
		mu.Lock()
		defer mu.Unlock()
		return refusedCode, refusedWhy
	}
	allowed = func() bool {
		mu.Lock()
		defer mu.Unlock()
		gen := s.changes.current()
		now := s.opts.Now()
		expired := !expires.IsZero() && !now.Before(expires)
		if !expired && !s.changes.changedSince(checkedAt, keys) {
			checkedAt = gen
			s.expiries.note(expires)
			return true
		}
		refuse := func(why string) bool {
			s.log.Info("stream ended: access withdrawn", "user", p.Username, "cluster", cluster, "reason", why)
			refusedCode, refusedWhy = 403, fmt.Sprintf("access to cluster %q was withdrawn: %s", cluster, why)
			return false
		}
		current, err := reauth()
		switch {
		case errors.Is(err, identity.ErrUnauthenticated):
			refuse("credential no longer valid")
			refusedCode = 401
			return false
		case err != nil && expired:
			// The store cannot say whether a refresh moved the expiry:
			// the expiry known here stands.
			refuse("credential expired (its renewal could not be checked: " + err.Error() + ")")
			refusedCode = 401
			return false
		case err != nil && s.db != nil && !s.db.Fresh(identity.GrantStaleness):
			// Cut off from the other replicas' writes for longer than a
			// cached grant is trusted: a revocation made elsewhere may be
			// missed, so fail closed, as new requests do.
			refuse("access cannot be confirmed: the store is out of reach")
			refusedCode = 503
			return false
		case err != nil:
			// A passing store error says nothing about access: keep the
			// stream and decide at the next pass.
			s.log.Warn("stream access not rechecked", "user", p.Username, "cluster", cluster, "err", err)
			s.expiries.note(expires)
			return true
		case !current.ExpiresAt.IsZero() && !now.Before(current.ExpiresAt):
			// Expired by this clock though not by identity's: they are the
			// same clock, so this cannot happen, but a stream must not
			// live on a time already past.
			refuse("credential expired")
			refusedCode = 401
			return false
		}
		again, err := s.actAs(current, cluster, a.Ask, Origin{})
		switch {
		case fault.Is(err, fault.NotFound):
			return refuse("no longer reaches the cluster")
		case fault.Is(err, fault.Forbidden):
			var fe *fault.Error
			errors.As(err, &fe)
			return refuse(fe.Message)
		case err != nil:
			s.log.Warn("stream access not rechecked", "user", p.Username, "cluster", cluster, "err", err)
			s.expiries.note(expires)
			return true
		}
		asserted := again.Identity
		if asserted.User != was.User {
			return refuse("user renamed")
		}
		for _, g := range was.Groups {
			if !slices.Contains(asserted.Groups, g) {
				return refuse("lost group " + g)
			}
		}
		checkedAt, expires = gen, current.ExpiresAt
		s.expiries.note(expires)
		return true
	}
	return allowed, refusal
}
