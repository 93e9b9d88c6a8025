package identity_test

import (
	"testing"
	"time"
)

// API keys per user are capped: one past auth.max_api_keys is 409 and
// changes nothing. Expired and revoked keys do not count, and another
// user's keys are their own.
func TestAPIKeyCapPerUser(t *testing.T) {
	ag := startAuth(t, map[string]string{"BERTH_AUTH_MAX_API_KEYS": "2"})
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	kimUser := ag.CreateUser(t, admin, "kim", "kim-password-01")
	kim := ag.Login(t, "kim", "kim-password-01").AccessToken

	create := func(tok string, want int, body map[string]any) apiKeyOut {
		t.Helper()
		k := decode[apiKeyOut](t, ag.must(t, want, "POST", "/api/v1/auth/api-keys", body, bearer(tok)))
		ag.secret(k.Key)
		return k
	}
	create(kim, 201, map[string]any{"name": "short", "expires_at": ag.clock.Now().Add(time.Hour)})
	second := create(kim, 201, map[string]any{"name": "ci"})

	before := ag.State(t)
	status, body, _ := ag.call(t, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "third"}, bearer(kim))
	if e := decodeError(t, body); status != 409 || e.Error != "conflict" {
		t.Fatalf("third key: %d %s, want 409 conflict", status, body)
	}
	if ag.State(t) != before {
		t.Error("the refused key changed state")
	}
	// The admin creating one for kim meets the same cap.
	ag.must(t, 409, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "by-admin", "user_id": kimUser.ID}, bearer(admin))
	// The cap is per user: the admin still has room.
	create(admin, 201, map[string]any{"name": "admin-own"})

	// Once the short-lived key has expired, it no longer counts.
	ag.clock.Advance(2 * time.Hour)
	kim = ag.Login(t, "kim", "kim-password-01").AccessToken
	create(kim, 201, map[string]any{"name": "after-expiry"})
	ag.must(t, 409, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "over"}, bearer(kim))
	// Revoking one makes room again.
	ag.must(t, 204, "DELETE", "/api/v1/auth/api-keys/"+second.ID, nil, bearer(kim))
	create(kim, 201, map[string]any{"name": "after-revoke"})
}
