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
		{"store error keeps the stream", nil, viewer, nil, errors.New("disk on fire"), func(l *changeLog) { l.add(false, "u/usr_ann") }, true, 1, time.Time{}, time.Time{}},
		{"membership removed", nil, nil, nil, nil, func(l *changeLog) { l.add(true) }, false, 1, time.Time{}, time.Time{}},
		{"role raised", nil, []Member{{Cluster: "c1", Kind: "user", Subject: "usr_ann", Role: "edit"}}, nil, nil, func(l *changeLog) { l.add(true) }, false, 1, time.Time{}, time.Time{}},
		{"group gained", nil, viewer, []string{"ops"}, nil, func(l *changeLog) { l.add(false, "u/usr_ann") }, true, 1, time.Time{}, time.Time{}},
		{"group lost", []string{"ops"}, viewer, nil, nil, func(l *changeLog) { l.add(false, "u/usr_ann") }, false, 1, time.Time{}, time.Time{}},
		{"expiry ahead", nil, viewer, nil, nil, func(*changeLog) {}, true, 0, soon, soon},
		{"expired, nothing written", nil, viewer, nil, identity.ErrUnauthenticated, func(*changeLog) {}, false, 1, past, time.Time{}},
		{"expired, but the session was extended", nil, viewer, nil, nil, func(*changeLog) {}, true, 1, past, soon},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Service{opts: Options{ImpersonatePrefix: "berth:"}, log: slog.New(slog.DiscardHandler),
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
			// Allowed once, it is not checked again until another write or
			// its expiry, for which a pass is scheduled.
			if tt.allowed && tt.err == nil {
				if !check() || reads != tt.reads {
					t.Errorf("second check without a write read the credential again (%d)", reads)
				}
				if got := s.expiries.peek(); !got.Equal(tt.renewed) {
					t.Errorf("next pass scheduled at %v, want the expiry %v", got, tt.renewed)
				}
			}
		})
	}
}
