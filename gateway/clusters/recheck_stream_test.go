package clusters

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/identity"
)

// streamCheck decides again only when a write concerns the stream, and
// then as a new request would. The credential re-check is a stand-in here
// (identity.Reverify has its own tests on a real store); what is under
// test is the decision around it.
func TestStreamCheck(t *testing.T) {
	viewer := []Member{{Cluster: "c1", Kind: "user", Subject: "usr_ann", Role: "view"}}
	past, soon := time.Now().Add(-time.Second), time.Now().Add(time.Hour)
	tests := []struct {
		name string
		// before is the user's Berth groups when the stream opened; the
		// rest is what the store says once the write happened.
		before  []string
		members []Member
		groups  []string
		err     error
		write   func(l *changeLog)
		allowed bool
		reads   int // credential re-checks
		// expires is the credential's expiry when the stream opened;
		// renewed is what the store says now (a refresh moves it).
		expires, renewed time.Time
	}{
		{"nothing written", nil, viewer, nil, nil, func(*changeLog) {}, true, 0, time.Time{}, time.Time{}},
		{"someone else written", nil, viewer, nil, nil, func(l *changeLog) { l.add(false, "u/usr_bob", "s/ses_9") }, true, 0, time.Time{}, time.Time{}},
		{"own session written, still valid", nil, viewer, nil, nil, func(l *changeLog) { l.add(false, "s/ses_1") }, true, 1, time.Time{}, time.Time{}},
		{"session revoked", nil, viewer, nil, identity.ErrUnauthenticated, func(l *changeLog) { l.add(false, "s/ses_1") }, false, 1, time.Time{}, time.Time{}},
		{"store error keeps the stream", nil, viewer, nil, errors.New("disk on fire"), func(l *changeLog) { l.add(false, "u/usr_ann") }, true, 1, soon, time.Time{}},
		{"membership removed", nil, nil, nil, nil, func(l *changeLog) { l.add(true) }, false, 1, time.Time{}, time.Time{}},
		{"role raised", nil, []Member{{Cluster: "c1", Kind: "user", Subject: "usr_ann", Role: "edit"}}, nil, nil, func(l *changeLog) { l.add(true) }, false, 1, time.Time{}, time.Time{}},
		{"group gained", nil, viewer, []string{"ops"}, nil, func(l *changeLog) { l.add(false, "u/usr_ann") }, true, 1, time.Time{}, time.Time{}},
		{"group lost", []string{"ops"}, viewer, nil, nil, func(l *changeLog) { l.add(false, "u/usr_ann") }, false, 1, time.Time{}, time.Time{}},
		{"expiry ahead", nil, viewer, nil, nil, func(*changeLog) {}, true, 0, soon, time.Time{}},
		{"expired, nothing written", nil, viewer, nil, identity.ErrUnauthenticated, func(*changeLog) {}, false, 1, past, time.Time{}},
		{"expired, but the session was extended", nil, viewer, nil, nil, func(*changeLog) {}, true, 1, past, soon},
		{"expired, and identity's answer agrees", nil, viewer, nil, nil, func(*changeLog) {}, false, 1, past, past},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Service{opts: Options{ImpersonatePrefix: "berth:", Now: time.Now}, log: slog.New(slog.DiscardHandler),
				cache: map[string]*cachedCluster{"c1": {members: viewer}}}
			p := &identity.Principal{UserID: "usr_ann", Username: "ann", Permissions: []string{identity.PermClustersRead},
				AuthMethod: identity.MethodPassword, SessionID: "ses_1", CredentialID: "jti_1"}
			p.Groups, p.ExpiresAt = tt.before, tt.expires
			checkedAt := s.changes.current()
			role, _ := s.Access(p, "c1")
			was := s.Identity(p, role, "192.0.2.1", "req-1")
			reads := 0
			reauth := func() (*identity.Principal, error) {
				reads++
				if tt.err != nil {
					return nil, tt.err
				}
				now := *p
				now.Groups, now.ExpiresAt = tt.groups, tt.renewed
				return &now, nil
			}
			check := s.streamCheck(reauth, p, "c1", was, checkedAt)

			tt.write(&s.changes)
			s.cache["c1"] = &cachedCluster{members: tt.members}
			if got := check(); got != tt.allowed || reads != tt.reads {
				t.Fatalf("allowed %v after %d credential checks, want %v after %d", got, reads, tt.allowed, tt.reads)
			}
			// An allowed stream has a pass scheduled at its credential's
			// expiry, as last read; it is not checked again until then or
			// another write.
			if tt.allowed {
				want := tt.expires
				if tt.reads > 0 && tt.err == nil {
					want = tt.renewed
				}
				if got := s.expiries.peek(); !got.Equal(want) {
					t.Errorf("next pass scheduled at %v, want %v", got, want)
				}
			}
			if tt.allowed && tt.err == nil {
				if !check() || reads != tt.reads {
					t.Errorf("second check without a write read the credential again (%d)", reads)
				}
			}
		})
	}
}

// The expiry schedule keeps the earliest expiry reported and wakes the
// pass loop only when it moves earlier.
func TestExpirySchedule(t *testing.T) {
	e := expirySchedule{rearm: make(chan struct{}, 1)}
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	woken := func() bool {
		select {
		case <-e.rearm:
			return true
		default:
			return false
		}
	}
	steps := []struct {
		note      time.Time
		want      time.Time
		wakesLoop bool
	}{
		{time.Time{}, time.Time{}, false}, // never expires
		{t0.Add(time.Hour), t0.Add(time.Hour), true},
		{t0.Add(2 * time.Hour), t0.Add(time.Hour), false},
		{t0.Add(time.Minute), t0.Add(time.Minute), true},
		{t0.Add(time.Minute), t0.Add(time.Minute), false},
	}
	for i, st := range steps {
		e.note(st.note)
		if got := e.peek(); !got.Equal(st.want) {
			t.Errorf("step %d: next %v, want %v", i, got, st.want)
		}
		if w := woken(); w != st.wakesLoop {
			t.Errorf("step %d: loop woken %v, want %v", i, w, st.wakesLoop)
		}
	}
	e.reset()
	if !e.peek().IsZero() {
		t.Error("reset kept an expiry")
	}
	e.note(t0.Add(3 * time.Hour))
	if !e.peek().Equal(t0.Add(3*time.Hour)) || !woken() {
		t.Error("after reset, a later expiry is the earliest again")
	}
}
