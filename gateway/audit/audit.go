// Package audit keeps Berth's append-only record of security-relevant acts:
// sign-ins, credential changes and user administration (CategorySecurity,
// with break-glass kubeconfigs), gateway settings such as cluster
// registration and signing keys (CategorySettings), and what users do to
// clusters: writes through the proxy, node operations and join tokens
// (CategoryCluster). Events are stored in Badger under time-sortable
// ids, so the newest are read first by walking the table backwards.
package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/store"
)

// Categories group events for the ?category= filter.
const (
	// CategorySecurity covers authentication, credentials and user
	// administration.
	CategorySecurity = "security"
	// CategorySettings covers changes to gateway settings.
	CategorySettings = "settings"
	// CategoryCluster covers acts on a cluster's contents: writes through
	// the proxy, node operations, join tokens.
	CategoryCluster = "cluster"
)

// Results of an audited act.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
)

// Event is one audited act. It names who did what to which resource, how
// they were authenticated and from where — and never carries a secret:
// callers put identifiers (user ids, key ids, display prefixes) in it,
// never passwords, tokens or keys.
type Event struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Category string    `json:"category"`
	// Action is what was done: login, logout, create, update, delete,
	// revoke, use, password_change, …
	Action string `json:"action"`
	// ResourceType and ResourceID name what it was done to (user, session,
	// api_key, access_key, refresh_token, role, settings).
	ResourceType string `json:"resource_type"`
	ResourceID   string `json:"resource_id,omitempty"`
	// Result is success or failure; Reason says why a failure failed, as a
	// short code (bad_password, unknown_user, locked, disabled, reused …).
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
	// ActorID is the user who acted (for a failed sign-in, the account the
	// attempt named, when it exists); ActorName is their username.
	ActorID    string `json:"actor_id,omitempty"`
	ActorName  string `json:"actor_name,omitempty"`
	AuthMethod string `json:"auth_method,omitempty"`
	// CredentialID is the id of the token, session or key used — never the
	// credential itself.
	CredentialID string            `json:"credential_id,omitempty"`
	ClientIP     string            `json:"client_ip,omitempty"`
	UserAgent    string            `json:"user_agent,omitempty"`
	RequestID    string            `json:"request_id,omitempty"`
	Details      map[string]string `json:"details,omitempty"`

	// ClientRequestID is the X-Request-Id the client sent, kept apart
	// from RequestID, which Berth always makes itself.
	ClientRequestID string `json:"client_request_id,omitempty"`
}

// Events is the audit table. It has no indexes: queries walk it newest
// first and stop at a limit or a time, which keeps writes cheap.
var Events = store.NewTable[Event]("audit_events")

// Options configures a Log.
type Options struct {
	// Retention is how long events are kept; zero keeps them forever.
	Retention time.Duration
	// MaxEvents is how many events are kept at most; past it the oldest
	// go first. Zero means no bound.
	MaxEvents int
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Log records and queries audit events. It is safe for concurrent use.
type Log struct {
	db        *store.DB
	now       func() time.Time
	retention time.Duration
	maxEvents int
	log       *slog.Logger
}

// New returns a Log writing to db.
func New(db *store.DB, opts Options) *Log {
	l := &Log{db: db, now: opts.Now, retention: opts.Retention, maxEvents: opts.MaxEvents, log: opts.Logger}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l
}

// Field bounds: an audit record is evidence, not a place to store whatever
// a client sent.
const (
	maxField     = 256
	maxDetails   = 16
	maxDetailKey = 64
)

// Record appends e, filling in its id, time and category (security by
// default) and, when ctx is a request, Berth's request id and the
// client's own. A failure to write is logged, not returned: the act being
// audited has already happened, and a full disk must not turn every
// sign-in into a 500.
func (l *Log) Record(ctx context.Context, e Event) {
	if err := l.Append(ctx, &e); err != nil {
		l.log.Error("audit event not recorded", "action", e.Action, "resource_type", e.ResourceType, "err", err)
	}
}

// Append is Record returning the write error, for callers that must fail
// when the audit trail cannot be written.
func (l *Log) Append(ctx context.Context, e *Event) error {
	return l.db.Update(func(tx *store.Tx) error { return l.AppendTx(ctx, tx, e) })
}

// AppendTx writes e inside the caller's transaction, so an event and the
// change it records commit together (or not at all).
func (l *Log) AppendTx(ctx context.Context, tx *store.Tx, e *Event) error {
	if e.Action == "" || e.ResourceType == "" {
		return errors.New("audit: event needs an action and a resource type")
	}
	e.ID = store.NewID("aud")
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	if e.Category == "" {
		e.Category = CategorySecurity
	}
	if e.Result == "" {
		e.Result = ResultSuccess
	}
	if rc, ok := ctx.(*fasthttp.RequestCtx); ok {
		if e.RequestID == "" {
			e.RequestID = httpapi.RequestID(rc)
		}
		if e.ClientRequestID == "" {
			e.ClientRequestID = httpapi.ClientRequestID(rc)
		}
	}
	bound(e)
	return Events.Insert(tx, e.ID, e)
}

func bound(e *Event) {
	for _, f := range []*string{&e.Category, &e.Action, &e.ResourceType, &e.ResourceID, &e.Result, &e.Reason,
		&e.ActorID, &e.ActorName, &e.AuthMethod, &e.CredentialID, &e.ClientIP, &e.UserAgent, &e.RequestID, &e.ClientRequestID} {
		*f = truncate(*f, maxField)
	}
	if len(e.Details) > 0 {
		d := make(map[string]string, min(len(e.Details), maxDetails))
		for k, v := range e.Details {
			if len(d) == maxDetails {
				break
			}
			d[truncate(k, maxDetailKey)] = truncate(v, maxField)
		}
		e.Details = d
	}
}

// truncate cuts s to at most n bytes on a rune boundary and drops control
// characters, so a crafted User-Agent cannot forge lines in an export.
func truncate(s string, n int) string {
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(clean) <= n {
		return clean
	}
	clean = clean[:n]
	for !utf8.ValidString(clean) {
		clean = clean[:len(clean)-1]
	}
	return clean
}

// Query selects events, newest first.
type Query struct {
	Category     string
	ResourceType string
	Action       string
	// ActorID keeps events whose actor is this user.
	ActorID string
	// Since drops events older than this time.
	Since time.Time
	// Limit is the page size (1 to MaxLimit).
	Limit int
	// Cursor continues a previous query: the id of the last event it
	// returned.
	Cursor string
}

// Paging limits for Query.
const (
	DefaultLimit = 100
	MaxLimit     = 500
)

// Find returns up to q.Limit events matching q, newest first, and the cursor
// for the next page ("" when there is none).
func (l *Log) Find(q Query) ([]Event, string, error) {
	if q.Limit < 1 || q.Limit > MaxLimit {
		return nil, "", fmt.Errorf("audit: limit must be 1 to %d", MaxLimit)
	}
	out := make([]Event, 0, min(q.Limit, 64))
	next := ""
	err := l.db.View(func(tx *store.Tx) error {
		return Events.Scan(tx, store.ScanOptions{Reverse: true, After: q.Cursor}, func(id string, e *Event) (bool, error) {
			if !q.Since.IsZero() && e.Time.Before(q.Since) {
				return false, nil
			}
			if !q.matches(e) {
				return true, nil
			}
			if len(out) == q.Limit {
				// One more match exists, so the page is not the last.
				next = out[len(out)-1].ID
				return false, nil
			}
			out = append(out, *e)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("query audit events: %w", err)
	}
	return out, next, nil
}

func (q *Query) matches(e *Event) bool {
	return (q.Category == "" || e.Category == q.Category) &&
		(q.ResourceType == "" || e.ResourceType == q.ResourceType) &&
		(q.Action == "" || e.Action == q.Action) &&
		(q.ActorID == "" || e.ActorID == q.ActorID)
}

// purgeBatch bounds one purge transaction well under Badger's limits; on
// etcd a transaction's writes are bounded lower (store.RecordsPerTxn).
const purgeBatch = 1000

// Purge deletes events older than the retention period, then the oldest
// events past MaxEvents, and returns how many it removed. Ids sort by
// time, so both walk from the oldest and stop at the first event to keep.
// Without the bound on count, a flood of audited refusals (every refused
// proxied write is an event, up to the rate limit) would grow the log
// without end within the retention period.
func (l *Log) Purge() (int, error) {
	total := 0
	if l.retention > 0 {
		cutoff := l.now().Add(-l.retention)
		n, err := l.purgeOldest(func(e *Event, _ int) bool { return e.Time.Before(cutoff) })
		total += n
		if err != nil {
			return total, err
		}
	}
	if l.maxEvents > 0 {
		count, err := l.count()
		if err != nil {
			return total, err
		}
		excess := count - l.maxEvents
		n, err := l.purgeOldest(func(_ *Event, removed int) bool { return removed < excess })
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// count returns how many events are stored.
func (l *Log) count() (int, error) {
	n := 0
	err := l.db.View(func(tx *store.Tx) error {
		return Events.Scan(tx, store.ScanOptions{}, func(string, *Event) (bool, error) {
			n++
			return true, nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("count audit events: %w", err)
	}
	return n, nil
}

// purgeOldest deletes events from the oldest while drop says so; drop is
// also told how many this call removed before the event. Deletes go in
// batches (purgeBatch, or fewer on etcd), each its own transaction.
func (l *Log) purgeOldest(drop func(e *Event, removed int) bool) (int, error) {
	total := 0
	batch := min(purgeBatch, l.db.RecordsPerTxn(1))
	for {
		var ids []string
		err := l.db.View(func(tx *store.Tx) error {
			return Events.Scan(tx, store.ScanOptions{}, func(id string, e *Event) (bool, error) {
				if !drop(e, total+len(ids)) {
					return false, nil
				}
				ids = append(ids, id)
				return len(ids) < batch, nil
			})
		})
		if err != nil {
			return total, fmt.Errorf("purge audit events: %w", err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		err = l.db.Update(func(tx *store.Tx) error {
			for _, id := range ids {
				if err := Events.Delete(tx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("purge audit events: %w", err)
		}
		total += len(ids)
		if len(ids) < batch {
			return total, nil
		}
	}
}

// Run purges every interval until ctx ends. The gateway runs it in the
// background while it serves.
func (l *Log) Run(ctx context.Context, every time.Duration) {
	if (l.retention <= 0 && l.maxEvents <= 0) || every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := l.Purge(); err != nil {
			l.log.Warn("audit retention purge failed", "err", err)
		} else if n > 0 {
			l.log.Info("audit retention purge", "removed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
