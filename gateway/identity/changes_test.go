package identity

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/store"
)

// Only writes to the records a principal's access rests on are changes;
// anything else in the same commit (an audit event, a cluster) is not.
func TestChangesNameOnlyAccessRecords(t *testing.T) {
	got := identityChanges([]store.Change{
		{Table: usersTable.Name(), ID: "usr_1"},
		{Table: "audit_events", ID: "evt_1"},
		{Table: sessionsTable.Name(), ID: "ses_1"},
		{Table: apiKeysTable.Name(), ID: "key_1"},
		{Table: rolesTable.Name(), ID: "reader"},
		{Table: "clusters", ID: "prod"},
		{Table: loginHistoryTable.Name(), ID: "lh_1"},
	})
	want := []Change{{UserChanged, "usr_1"}, {SessionChanged, "ses_1"}, {APIKeyChanged, "key_1"}, {RoleChanged, "reader"}}
	if !slices.Equal(got, want) {
		t.Errorf("changes = %v, want %v", got, want)
	}
	if got := identityChanges([]store.Change{{Table: "audit_events", ID: "evt_1"}}); got != nil {
		t.Errorf("an audit write is a change: %v", got)
	}
}

// OnChange hooks hear of a write after it is committed, with the grant
// cache already current, and never of a commit that touched nothing of
// identity's.
func TestOnChange(t *testing.T) {
	now := time.Now()
	s, db := newTestService(t, &now, Settings{AccessTokenTTL: time.Minute, RefreshTokenTTL: time.Hour, SessionTTL: time.Hour, AccessKeyTokenTTL: time.Hour})
	var heard [][]Change
	s.OnChange(func(c []Change) { heard = append(heard, c) })
	u, err := s.CreateUser(context.Background(), grantAdmin, NewUser{Username: "ann", Password: "a-long-password-1"}, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if len(heard) == 0 || !slices.Contains(heard[len(heard)-1], Change{UserChanged, u.ID}) {
		t.Errorf("creating a user: heard %v", heard)
	}
	n := len(heard)
	other := store.NewTable[struct{}]("not_identity")
	if err := db.Update(func(tx *store.Tx) error { return other.Put(tx, "x", &struct{}{}) }); err != nil {
		t.Fatal(err)
	}
	if len(heard) != n {
		t.Errorf("a write to another table was heard: %v", heard[n:])
	}
}
