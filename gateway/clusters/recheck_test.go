package clusters

import (
	"fmt"
	"testing"

	"github.com/berthgw/berth/gateway/identity"
)

// A stream asks the change log whether anything it rests on was written
// since it last checked; only then does it read the store.
func TestChangeLog(t *testing.T) {
	ann := principalKeys(&identity.Principal{UserID: "usr_ann", SessionID: "ses_1", AuthMethod: identity.MethodPassword, CredentialID: "jti_1"})
	key := principalKeys(&identity.Principal{UserID: "usr_ann", AuthMethod: identity.MethodAPIKey, CredentialID: "key_1"})
	tests := []struct {
		name   string
		writes func(l *changeLog)
		keys   []string
		want   bool
	}{
		{"nothing written", func(*changeLog) {}, ann, false},
		{"another user", func(l *changeLog) { l.add(false, "u/usr_bob") }, ann, false},
		{"another session", func(l *changeLog) { l.add(false, "s/ses_2") }, ann, false},
		{"the user", func(l *changeLog) { l.add(false, "u/usr_ann") }, ann, true},
		{"the session", func(l *changeLog) { l.add(false, "s/ses_9", "s/ses_1") }, ann, true},
		{"the session, for a key", func(l *changeLog) { l.add(false, "s/ses_1") }, key, false},
		{"the key", func(l *changeLog) { l.add(false, "k/key_1") }, key, true},
		{"a role or membership", func(l *changeLog) { l.add(true) }, key, true},
		{"unrelated writes, many", func(l *changeLog) {
			for i := range maxChanges - 1 {
				l.add(false, fmt.Sprintf("u/usr_%d", i))
			}
		}, ann, false},
		{"more unrelated writes than kept", func(l *changeLog) {
			for i := range maxChanges + 1 {
				l.add(false, fmt.Sprintf("u/usr_%d", i))
			}
		}, ann, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l changeLog
			l.add(false, "u/usr_ann") // before the stream's check
			since := l.current()
			tt.writes(&l)
			if got := l.changedSince(since, tt.keys); got != tt.want {
				t.Errorf("changedSince = %v, want %v", got, tt.want)
			}
			// Once checked at the newest generation, nothing is new.
			if l.changedSince(l.current(), tt.keys) {
				t.Error("changedSince(current) = true")
			}
		})
	}
}

// OnRoleChange hooks run after writes that may change someone's role on a
// cluster (users, roles, memberships), not after sign-ins and key use.
func TestOnRoleChange(t *testing.T) {
	// Writes to other tables (audit events) never reach the hook:
	// identity's TestChangesNameOnlyAccessRecords checks that.
	tests := []struct {
		kind  identity.ChangeKind
		fires bool
	}{
		{identity.UserChanged, true},
		{identity.RoleChanged, true},
		{identity.SessionChanged, false},
		{identity.APIKeyChanged, false},
	}
	for _, tt := range tests {
		s := &Service{recheck: make(chan struct{}, 1)}
		fired := 0
		s.OnRoleChange(func() { fired++ })
		s.onIdentityChange([]identity.Change{{Kind: tt.kind, ID: "x"}})
		if (fired == 1) != tt.fires {
			t.Errorf("a write of kind %d ran the hook %d times, want firing %v", tt.kind, fired, tt.fires)
		}
	}
	s := &Service{recheck: make(chan struct{}, 1)}
	fired := 0
	s.OnRoleChange(func() { fired++ })
	s.membershipChanged()
	if fired != 1 {
		t.Errorf("a membership write ran the hook %d times", fired)
	}
}
