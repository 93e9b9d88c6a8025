package clusters

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/berthgw/berth/gateway/identity"
)

// streamCheck decides again only when a write concerns the stream, and
// then as a new request would. The credential re-check is a stand-in here
// (identity.Reverify has its own tests on a real store); what is under
// test is the decision around it.
func TestStreamCheck(t *testing.T) {
	viewer := []Member{{Cluster: "c1", Kind: "user", Subject: "usr_ann", Role: "view"}}
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
	}{
		{"nothing written", nil, viewer, nil, nil, func(*changeLog) {}, true, 0},
		{"someone else written", nil, viewer, nil, nil, func(l *changeLog) { l.add(false, "u/usr_bob", "s/ses_9") }, true, 0},
		{"own session written, still valid", nil, viewer, nil, nil, func(l *changeLog) { l.add(false, "s/ses_1") }, true, 1},
		{"session revoked", nil, viewer, nil, identity.ErrUnauthenticated, func(l *changeLog) { l.add(false, "s/ses_1") }, false, 1},
		{"store error keeps the stream", nil, viewer, nil, errors.New("disk on fire"), func(l *changeLog) { l.add(false, "u/usr_ann") }, true, 1},
		{"membership removed", nil, nil, nil, nil, func(l *changeLog) { l.add(true) }, false, 1},
		{"role raised", nil, []Member{{Cluster: "c1", Kind: "user", Subject: "usr_ann", Role: "edit"}}, nil, nil, func(l *changeLog) { l.add(true) }, false, 1},
		{"group gained", nil, viewer, []string{"ops"}, nil, func(l *changeLog) { l.add(false, "u/usr_ann") }, true, 1},
		{"group lost", []string{"ops"}, viewer, nil, nil, func(l *changeLog) { l.add(false, "u/usr_ann") }, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Service{opts: Options{ImpersonatePrefix: "berth:"}, log: slog.New(slog.DiscardHandler),
				cache: map[string]*cachedCluster{"c1": {members: viewer}}}
			p := &identity.Principal{UserID: "usr_ann", Username: "ann", Permissions: []string{identity.PermClustersRead},
				AuthMethod: identity.MethodPassword, SessionID: "ses_1", CredentialID: "jti_1"}
			p.Groups = tt.before
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
				now.Groups = tt.groups
				return &now, nil
			}
			check := s.streamCheck(reauth, p, "c1", was, checkedAt)

			tt.write(&s.changes)
			s.cache["c1"] = &cachedCluster{members: tt.members}
			if got := check(); got != tt.allowed || reads != tt.reads {
				t.Fatalf("allowed %v after %d credential checks, want %v after %d", got, reads, tt.allowed, tt.reads)
			}
			// Allowed once, it is not checked again until another write.
			if tt.allowed && tt.err == nil {
				if !check() || reads != tt.reads {
					t.Errorf("second check without a write read the credential again (%d)", reads)
				}
			}
		})
	}
}
