package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
)

// The audit log is bounded by age (audit.retention_days) and by size
// (audit.max_events): the housekeeping purge keeps the newest events and
// drops the rest, as GET /api/v1/audit then shows.
func TestAuditRetentionByAgeAndSize(t *testing.T) {
	ag := startAuth(t, map[string]string{"BERTH_AUDIT_MAX_EVENTS": "5", "BERTH_AUDIT_RETENTION_DAYS": "1"})
	admin := ag.login(t, "admin", adminPassword).AccessToken
	type page struct {
		Items []audit.Event `json:"items"`
	}
	list := func() []audit.Event {
		t.Helper()
		return decode[page](t, ag.must(t, 200, "GET", "/api/v1/audit?limit=500", nil, bearer(admin))).Items
	}
	// A flood of audited refusals: failed sign-ins, each an event.
	ag.secret("wrong-password-00")
	for i := 0; i < 12; i++ {
		ag.must(t, 401, "POST", "/api/v1/auth/login", map[string]any{"username": fmt.Sprintf("ghost-%02d", i), "password": "wrong-password-00"})
	}
	before := list()
	if len(before) < 13 {
		t.Fatalf("%d events before the purge, want at least 13", len(before))
	}
	purge := func() int {
		t.Helper()
		n, err := ag.audit.Purge() // what the housekeeping loop runs every audit.purge_interval
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := purge(); n != len(before)-5 {
		t.Errorf("size purge removed %d, want %d", n, len(before)-5)
	}
	after := list()
	if len(after) != 5 {
		t.Fatalf("%d events after the size purge, want 5", len(after))
	}
	for i := range after {
		if after[i].ID != before[i].ID {
			t.Errorf("event %d after the purge is %s, want the newest %s", i, after[i].ID, before[i].ID)
		}
	}

	// Two days on, only what happened since is kept.
	ag.clock.Advance(48 * time.Hour)
	admin = ag.login(t, "admin", adminPassword).AccessToken
	if n := purge(); n != 5 {
		t.Errorf("age purge removed %d, want the 5 old events", n)
	}
	left := list()
	if len(left) != 1 || left[0].Action != "login" || left[0].ActorName != "admin" {
		t.Errorf("after the age purge: %+v, want only the new sign-in", left)
	}
}
