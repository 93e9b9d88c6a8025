package identity_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/internal/apitest"
)

type meOut = apitest.Me

func TestLoginRefreshRotationAndLogout(t *testing.T) {
	ag := startAuth(t, nil)
	tp := ag.Login(t, "admin", adminPassword)
	if tp.ExpiresIn != 900 {
		t.Errorf("expires_in = %d, want 900 (15 min)", tp.ExpiresIn)
	}
	me := decode[meOut](t, ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(tp.AccessToken)))
	if me.Username != "admin" || me.AuthMethod != "password" || me.SessionID == "" || len(me.Permissions) != 1 || me.Permissions[0] != "*" {
		t.Fatalf("me: %+v", me)
	}
	// The token endpoints answer with Cache-Control: no-store.
	_, _, hdr := ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": "admin", "password": adminPassword})
	if hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("login Cache-Control = %q", hdr.Get("Cache-Control"))
	}

	// Refresh rotates: a new pair, the old refresh token used up.
	tp2 := decode[tokenPair](t, ag.must(t, 200, "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": tp.RefreshToken}))
	ag.secret(tp2.AccessToken, tp2.RefreshToken)
	if tp2.RefreshToken == tp.RefreshToken || tp2.AccessToken == tp.AccessToken {
		t.Fatal("refresh did not rotate")
	}
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(tp2.AccessToken))

	// Reusing the spent refresh token revokes the whole family: the thief's
	// copy and the rightful holder's newer tokens alike.
	before := ag.State(t)
	_ = before
	ag.must(t, 401, "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": tp.RefreshToken})
	ag.must(t, 401, "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": tp2.RefreshToken})
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(tp2.AccessToken))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(tp.AccessToken))
	if !ag.HasEventOn(t, "session", "revoke", audit.ResultFailure) {
		t.Error("refresh-token reuse not audited")
	}

	// Logout ends the session now, not at expiry.
	tp3 := ag.Login(t, "admin", adminPassword)
	ag.must(t, 204, "POST", "/api/v1/auth/logout", nil, bearer(tp3.AccessToken))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(tp3.AccessToken))
	ag.must(t, 401, "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": tp3.RefreshToken})

	// Expiry: the access token dies after 15 minutes; a refresh still works.
	tp4 := ag.Login(t, "admin", adminPassword)
	ag.clock.Advance(16 * time.Minute)
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(tp4.AccessToken))
	tp5 := decode[tokenPair](t, ag.must(t, 200, "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": tp4.RefreshToken}))
	ag.secret(tp5.AccessToken, tp5.RefreshToken)
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(tp5.AccessToken))

	for _, ev := range [][2]string{{"login", audit.ResultSuccess}, {"logout", audit.ResultSuccess}, {"refresh", audit.ResultSuccess}} {
		if !ag.HasEventOn(t, "session", ev[0], ev[1]) {
			t.Errorf("no %s/%s audit event", ev[0], ev[1])
		}
	}
	evs := ag.Events(t, audit.Query{Action: "login"})
	if evs[0].ClientIP != "127.0.0.1" || evs[0].AuthMethod != "password" || evs[0].ActorName != "admin" || evs[0].RequestID == "" {
		t.Errorf("login event lacks context: %+v", evs[0])
	}
	if lh := ag.must(t, 200, "GET", "/api/v1/auth/me/login-history", nil, bearer(tp5.AccessToken)); !strings.Contains(string(lh), `"result":"success"`) {
		t.Errorf("login history: %s", lh)
	}
}

func TestWrongPasswordAndUnknownUserAnswerAlike(t *testing.T) {
	ag := startAuth(t, nil)
	before := ag.State(t)
	s1, b1, _ := ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": "admin", "password": "wrong-password-123"})
	s2, b2, _ := ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": "nobody", "password": "wrong-password-123"})
	e1, e2 := decodeError(t, b1), decodeError(t, b2)
	if s1 != 401 || s2 != 401 || e1.Message != e2.Message || e1.Error != e2.Error {
		t.Errorf("answers differ: %d %+v / %d %+v", s1, e1, s2, e2)
	}
	if ag.State(t) != before {
		t.Error("failed logins changed state")
	}
	if !ag.HasEventOn(t, "session", "login", audit.ResultFailure) {
		t.Error("failed login not audited")
	}
	ag.secret("wrong-password-123")
}

// Bad JSON, missing fields, oversize fields: 4xx, nothing changed.
func TestLoginBadInput(t *testing.T) {
	ag := startAuth(t, nil)
	before := ag.State(t)
	tests := []struct {
		name   string
		body   any
		ct     string
		status int
	}{
		{"no body", nil, "application/json", 400},
		{"empty object", raw(`{}`), "", 400},
		{"garbled JSON", raw(`{"username": "admin", "password": `), "", 400},
		{"trailing data", raw(`{"username":"admin","password":"x"} {}`), "", 400},
		{"unknown field", raw(`{"username":"admin","password":"x","admin":true}`), "", 400},
		{"wrong types", raw(`{"username":1,"password":["x"]}`), "", 400},
		{"form instead of JSON", raw(`username=admin&password=x`), "application/x-www-form-urlencoded", 415},
		{"no content type", raw(`{"username":"admin","password":"x"}`), "-", 415},
		{"oversize username", map[string]any{"username": strings.Repeat("a", 65), "password": "whatever-password"}, "", 400},
		{"oversize password", map[string]any{"username": "admin", "password": strings.Repeat("p", 257)}, "", 400},
		{"empty password", map[string]any{"username": "admin", "password": ""}, "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []opt
			switch tt.ct {
			case "":
			case "-":
				opts = append(opts, func(r *http.Request) { r.Header.Del("Content-Type") })
			default:
				opts = append(opts, header("Content-Type", tt.ct))
			}
			status, body, _ := ag.call(t, "POST", "/api/v1/auth/login", tt.body, opts...)
			if status != tt.status {
				t.Errorf("status %d, want %d: %s", status, tt.status, body)
			}
			if e := decodeError(t, body); e.Code != status || e.RequestID == "" {
				t.Errorf("error shape: %s", body)
			}
		})
	}
	if ag.State(t) != before {
		t.Error("bad input changed state")
	}
}

func TestDisabledUserStopsAtOnce(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	bob := ag.CreateUser(t, admin, "bob", "bob-password-123")
	tok := ag.Login(t, "bob", "bob-password-123")
	key := decode[struct {
		Key string `json:"key"`
	}](t, ag.must(t, 201, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "ci"}, bearer(tok.AccessToken))).Key
	ag.secret(key)
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(key))

	ag.must(t, 200, "PUT", "/api/v1/users/"+bob.ID, map[string]any{"status": "disabled"}, bearer(admin))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(tok.AccessToken))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(key))
	ag.must(t, 401, "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": tok.RefreshToken})
	ag.must(t, 401, "POST", "/api/v1/auth/login", map[string]any{"username": "bob", "password": "bob-password-123"})
	if !ag.HasEventOn(t, "user", "disable", audit.ResultSuccess) {
		t.Error("disable not audited")
	}
	// Enabled again, the API key works; the sessions stay ended.
	ag.must(t, 200, "PUT", "/api/v1/users/"+bob.ID, map[string]any{"status": "active"}, bearer(admin))
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(key))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(tok.AccessToken))
}

func TestChangePasswordEndsOtherSessions(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	ag.CreateUser(t, admin, "carol", "carol-password-1")
	here := ag.Login(t, "carol", "carol-password-1")
	there := ag.Login(t, "carol", "carol-password-1")

	before := ag.State(t)
	ag.must(t, 403, "PUT", "/api/v1/auth/me/password", map[string]any{"current_password": "not-her-password", "new_password": "carol-password-2"}, bearer(here.AccessToken))
	ag.must(t, 400, "PUT", "/api/v1/auth/me/password", map[string]any{"current_password": "carol-password-1", "new_password": "short"}, bearer(here.AccessToken))
	ag.must(t, 400, "PUT", "/api/v1/auth/me/password", map[string]any{"current_password": "carol-password-1"}, bearer(here.AccessToken))
	ag.must(t, 401, "PUT", "/api/v1/auth/me/password", map[string]any{"current_password": "carol-password-1", "new_password": "carol-password-2"})
	if ag.State(t) != before {
		t.Fatal("refused password changes changed state")
	}
	ag.secret("carol-password-2", "not-her-password")
	ag.must(t, 204, "PUT", "/api/v1/auth/me/password", map[string]any{"current_password": "carol-password-1", "new_password": "carol-password-2"}, bearer(here.AccessToken))
	ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(here.AccessToken))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(there.AccessToken))
	ag.must(t, 401, "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": there.RefreshToken})
	ag.must(t, 401, "POST", "/api/v1/auth/login", map[string]any{"username": "carol", "password": "carol-password-1"})
	ag.Login(t, "carol", "carol-password-2")
	if !ag.HasEventOn(t, "user", "password_change", audit.ResultSuccess) || !ag.HasEventOn(t, "user", "password_change", audit.ResultFailure) {
		t.Error("password changes not audited")
	}
}

type sessionsOut struct {
	Items []struct {
		ID      string `json:"id"`
		Method  string `json:"method"`
		Current bool   `json:"current"`
	} `json:"items"`
	Total int `json:"total"`
}

func TestSessionsAreOwnUnlessAdmin(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	dave := ag.CreateUser(t, admin, "dave", "dave-password-12")
	ag.CreateUser(t, admin, "erin", "erin-password-12")
	d1 := ag.Login(t, "dave", "dave-password-12")
	ag.Login(t, "dave", "dave-password-12")
	erin := ag.Login(t, "erin", "erin-password-12")

	mine := decode[sessionsOut](t, ag.must(t, 200, "GET", "/api/v1/auth/sessions", nil, bearer(d1.AccessToken)))
	if mine.Total != 2 || !(mine.Items[0].Current || mine.Items[1].Current) {
		t.Fatalf("dave's sessions: %+v", mine)
	}
	// Erin sees neither Dave's list nor can she end his session.
	ag.must(t, 404, "GET", "/api/v1/auth/sessions?user_id="+dave.ID, nil, bearer(erin.AccessToken))
	ag.must(t, 404, "DELETE", "/api/v1/auth/sessions/"+mine.Items[0].ID, nil, bearer(erin.AccessToken))
	// The admin sees and ends it.
	all := decode[sessionsOut](t, ag.must(t, 200, "GET", "/api/v1/auth/sessions?user_id="+dave.ID, nil, bearer(admin)))
	if all.Total != 2 {
		t.Fatalf("admin view: %+v", all)
	}
	for _, s := range all.Items {
		ag.must(t, 204, "DELETE", "/api/v1/auth/sessions/"+s.ID, nil, bearer(admin))
	}
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(d1.AccessToken))
	// The users' own activities hold their own events only.
	acts := decode[struct {
		Items []audit.Event `json:"items"`
	}](t, ag.must(t, 200, "GET", "/api/v1/activities", nil, bearer(erin.AccessToken)))
	if len(acts.Items) == 0 {
		t.Fatal("erin has no activities")
	}
	for _, e := range acts.Items {
		if e.ActorName != "erin" {
			t.Errorf("erin sees someone else's event: %+v", e)
		}
	}
	ag.must(t, 400, "GET", "/api/v1/activities?actor="+dave.ID, nil, bearer(erin.AccessToken))
}
