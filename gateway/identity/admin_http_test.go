package identity_test

import (
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/audit"
)

func TestUserAdministration(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	u := ag.CreateUser(t, admin, "judy", "judy-password-12")
	if u.Status != "active" || strings.Join(u.Roles, ",") != "user" {
		t.Fatalf("created: %+v", u)
	}
	got := ag.must(t, 200, "GET", "/api/v1/users/"+u.ID, nil, bearer(admin))
	if strings.Contains(string(got), "password") && !strings.Contains(string(got), "password_changed_at") || strings.Contains(string(got), "argon2") {
		t.Errorf("user view leaks the hash: %s", got)
	}
	list := decode[struct {
		Items    []userOut `json:"items"`
		Total    int       `json:"total"`
		Page     int       `json:"page"`
		PageSize int       `json:"page_size"`
	}](t, ag.must(t, 200, "GET", "/api/v1/users?page=1&page_size=1", nil, bearer(admin)))
	if list.Total != 2 || len(list.Items) != 1 || list.PageSize != 1 {
		t.Errorf("paged list: %+v", list)
	}
	up := decode[userOut](t, ag.must(t, 200, "PUT", "/api/v1/users/"+u.ID,
		map[string]any{"display_name": "Judy H", "groups": []string{"dev", "ops"}, "roles": []string{"user", "admin"}}, bearer(admin)))
	if strings.Join(up.Groups, ",") != "dev,ops" || len(up.Roles) != 2 {
		t.Errorf("update: %+v", up)
	}

	before := ag.State(t)
	badCreates := []struct {
		name   string
		body   any
		status int
	}{
		{"duplicate username", map[string]any{"username": "judy", "password": "another-password"}, 409},
		{"duplicate, other case", map[string]any{"username": "JUDY", "password": "another-password"}, 409},
		{"bad username", map[string]any{"username": "judy smith", "password": "another-password"}, 400},
		{"long username", map[string]any{"username": strings.Repeat("j", 65), "password": "another-password"}, 400},
		{"short password", map[string]any{"username": "ken", "password": "short"}, 400},
		{"long password", map[string]any{"username": "ken", "password": strings.Repeat("p", 300)}, 400},
		{"unknown role", map[string]any{"username": "ken", "password": "another-password", "roles": []string{"root"}}, 400},
		{"system group", map[string]any{"username": "ken", "password": "another-password", "groups": []string{"system:masters"}}, 400},
		{"long display name", map[string]any{"username": "ken", "password": "another-password", "display_name": strings.Repeat("d", 200)}, 400},
		{"bad email", map[string]any{"username": "ken", "password": "another-password", "email": "not an email"}, 400},
		{"unknown field", raw(`{"username":"ken","password":"another-password","is_admin":true}`), 400},
		{"garbled", raw(`{"username":"ken",`), 400},
		{"array", raw(`[]`), 400},
	}
	for _, tt := range badCreates {
		status, body, _ := ag.call(t, "POST", "/api/v1/users", tt.body, bearer(admin))
		if status != tt.status {
			t.Errorf("%s: %d, want %d: %s", tt.name, status, tt.status, body)
		}
	}
	for name, body := range map[string]any{
		"bad status":   map[string]any{"status": "banned"},
		"system group": map[string]any{"groups": []string{"system:nodes"}},
		"no roles":     map[string]any{"roles": []string{}},
		"bad role":     map[string]any{"roles": []string{"nope"}},
	} {
		if status, b, _ := ag.call(t, "PUT", "/api/v1/users/"+u.ID, body, bearer(admin)); status != 400 {
			t.Errorf("update %s: %d %s", name, status, b)
		}
	}
	ag.must(t, 404, "PUT", "/api/v1/users/usr_nope", map[string]any{"display_name": "x"}, bearer(admin))
	ag.must(t, 404, "GET", "/api/v1/users/usr_nope", nil, bearer(admin))
	ag.must(t, 404, "DELETE", "/api/v1/users/usr_nope", nil, bearer(admin))
	ag.must(t, 400, "GET", "/api/v1/users?page_size=501", nil, bearer(admin))
	ag.must(t, 400, "GET", "/api/v1/users?page=0", nil, bearer(admin))
	if ag.State(t) != before {
		t.Fatal("refused user changes changed state")
	}

	// The last active admin can be neither demoted, disabled nor deleted.
	ag.must(t, 200, "PUT", "/api/v1/users/"+u.ID, map[string]any{"roles": []string{"user"}}, bearer(admin))
	me := decode[meOut](t, ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(admin)))
	before = ag.State(t)
	ag.must(t, 409, "PUT", "/api/v1/users/"+me.ID, map[string]any{"status": "disabled"}, bearer(admin))
	ag.must(t, 409, "PUT", "/api/v1/users/"+me.ID, map[string]any{"roles": []string{"user"}}, bearer(admin))
	ag.must(t, 409, "DELETE", "/api/v1/users/"+me.ID, nil, bearer(admin))
	if ag.State(t) != before {
		t.Fatal("refused last-admin changes changed state")
	}

	// An admin password reset ends the user's sessions.
	jt := ag.Login(t, "judy", "judy-password-12")
	ag.secret("judy-password-99")
	ag.must(t, 400, "POST", "/api/v1/users/"+u.ID+"/password", map[string]any{"password": "short"}, bearer(admin))
	ag.must(t, 204, "POST", "/api/v1/users/"+u.ID+"/password", map[string]any{"password": "judy-password-99"}, bearer(admin))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(jt.AccessToken))
	ag.must(t, 401, "POST", "/api/v1/auth/login", map[string]any{"username": "judy", "password": "judy-password-12"})
	jt2 := ag.Login(t, "judy", "judy-password-99")

	// Login history: the admin sees judy's; judy sees her own.
	hist := decode[struct {
		Items []struct {
			Result   string `json:"result"`
			Method   string `json:"method"`
			ClientIP string `json:"client_ip"`
			Time     time.Time
		} `json:"items"`
		Total int `json:"total"`
	}](t, ag.must(t, 200, "GET", "/api/v1/users/"+u.ID+"/login-history", nil, bearer(admin)))
	if hist.Total != 3 || hist.Items[0].Result != "success" || hist.Items[1].Result != "failure" || hist.Items[0].ClientIP != "127.0.0.1" || hist.Items[0].Method != "password" {
		t.Errorf("login history: %+v", hist)
	}
	ag.must(t, 200, "GET", "/api/v1/auth/me/login-history", nil, bearer(jt2.AccessToken))
	ag.must(t, 403, "GET", "/api/v1/users/"+u.ID+"/login-history", nil, bearer(jt2.AccessToken))

	// Delete ends everything of the user.
	key := decode[apiKeyOut](t, ag.must(t, 201, "POST", "/api/v1/auth/api-keys", map[string]any{"name": "k"}, bearer(jt2.AccessToken))).Key
	ag.secret(key)
	ag.must(t, 204, "DELETE", "/api/v1/users/"+u.ID, nil, bearer(admin))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(key))
	ag.must(t, 401, "GET", "/api/v1/auth/me", nil, bearer(jt2.AccessToken))
	ag.must(t, 401, "POST", "/api/v1/auth/login", map[string]any{"username": "judy", "password": "judy-password-99"})
	for _, action := range []string{"create", "update", "password_reset", "delete"} {
		if !ag.HasEventOn(t, "user", action, audit.ResultSuccess) {
			t.Errorf("user %s not audited", action)
		}
	}
}

func TestCustomRoles(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	before := ag.State(t)
	for name, body := range map[string]any{
		"unknown permission": map[string]any{"name": "auditor", "permissions": []string{"audit:write"}},
		"wildcard":           map[string]any{"name": "auditor", "permissions": []string{"*"}},
		"no permissions":     map[string]any{"name": "auditor", "permissions": []string{}},
		"bad name":           map[string]any{"name": "Auditor!", "permissions": []string{"audit:read"}},
		"long description":   map[string]any{"name": "auditor", "permissions": []string{"audit:read"}, "description": strings.Repeat("d", 300)},
	} {
		if status, b, _ := ag.call(t, "POST", "/api/v1/roles", body, bearer(admin)); status != 400 {
			t.Errorf("%s: %d %s", name, status, b)
		}
	}
	ag.must(t, 403, "POST", "/api/v1/roles", map[string]any{"name": "admin", "permissions": []string{"audit:read"}}, bearer(admin))
	ag.must(t, 403, "PUT", "/api/v1/roles/user", map[string]any{"permissions": []string{"audit:read"}}, bearer(admin))
	ag.must(t, 403, "DELETE", "/api/v1/roles/admin", nil, bearer(admin))
	if ag.State(t) != before {
		t.Fatal("refused role changes changed state")
	}
	ag.must(t, 201, "POST", "/api/v1/roles", map[string]any{"name": "auditor", "description": "reads audit", "permissions": []string{"audit:read"}}, bearer(admin))
	ag.must(t, 409, "POST", "/api/v1/roles", map[string]any{"name": "auditor", "permissions": []string{"audit:read"}}, bearer(admin))
	if r := ag.must(t, 200, "GET", "/api/v1/roles/auditor", nil, bearer(admin)); !strings.Contains(string(r), `"permissions":["audit:read"]`) {
		t.Errorf("role: %s", r)
	}
	ag.must(t, 404, "GET", "/api/v1/roles/nope", nil, bearer(admin))
	ag.must(t, 400, "PUT", "/api/v1/roles/auditor", map[string]any{"name": "renamed", "permissions": []string{"audit:read"}}, bearer(admin))
	ag.must(t, 404, "PUT", "/api/v1/roles/nope", map[string]any{"permissions": []string{"audit:read"}}, bearer(admin))
	u := ag.CreateUser(t, admin, "leo", "leo-password-123", "auditor")
	lt := ag.Login(t, "leo", "leo-password-123").AccessToken
	ag.must(t, 200, "GET", "/api/v1/audit", nil, bearer(lt))
	ag.must(t, 403, "GET", "/api/v1/users", nil, bearer(lt))
	me := decode[meOut](t, ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(lt)))
	if strings.Join(me.Permissions, ",") != "audit:read" {
		t.Errorf("resolved permissions %v", me.Permissions)
	}
	// A role change applies to the next request with the same token.
	ag.must(t, 200, "PUT", "/api/v1/roles/auditor", map[string]any{"permissions": []string{"clusters:read"}}, bearer(admin))
	ag.must(t, 403, "GET", "/api/v1/audit", nil, bearer(lt))
	ag.must(t, 409, "DELETE", "/api/v1/roles/auditor", nil, bearer(admin))
	ag.must(t, 200, "PUT", "/api/v1/users/"+u.ID, map[string]any{"roles": []string{"user"}}, bearer(admin))
	ag.must(t, 204, "DELETE", "/api/v1/roles/auditor", nil, bearer(admin))
	roles := ag.must(t, 200, "GET", "/api/v1/roles", nil, bearer(admin))
	if strings.Contains(string(roles), "auditor") || !strings.Contains(string(roles), `"builtin":true`) {
		t.Errorf("roles: %s", roles)
	}
	if perms := ag.must(t, 200, "GET", "/api/v1/permissions", nil, bearer(admin)); !strings.Contains(string(perms), "audit:read") {
		t.Errorf("permissions: %s", perms)
	}
}

func TestAuditEndpoint(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	ag.CreateUser(t, admin, "mia", "mia-password-123")
	mia := ag.Login(t, "mia", "mia-password-123").AccessToken
	for i := 0; i < 3; i++ {
		ag.call(t, "POST", "/api/v1/auth/login", map[string]any{"username": "mia", "password": "wrong-password-7"})
	}
	ag.secret("wrong-password-7")

	type page struct {
		Items      []audit.Event `json:"items"`
		NextCursor string        `json:"next_cursor"`
	}
	all := decode[page](t, ag.must(t, 200, "GET", "/api/v1/audit", nil, bearer(admin)))
	if len(all.Items) < 6 || all.NextCursor != "" {
		t.Fatalf("audit: %d items, cursor %q", len(all.Items), all.NextCursor)
	}
	for i := 1; i < len(all.Items); i++ {
		if all.Items[i-1].ID < all.Items[i].ID {
			t.Fatal("not newest first")
		}
	}
	fails := decode[page](t, ag.must(t, 200, "GET", "/api/v1/audit?category=security&resource_type=session&action=login", nil, bearer(admin)))
	nFail := 0
	for _, e := range fails.Items {
		if e.Action != "login" || e.ResourceType != "session" {
			t.Errorf("filter let through %+v", e)
		}
		if e.Result == "failure" {
			nFail++
		}
	}
	if nFail != 3 {
		t.Errorf("%d failed logins in audit, want 3", nFail)
	}
	// Cursor paging walks everything once.
	var seen []string
	cursor := ""
	for i := 0; i < 50; i++ {
		p := decode[page](t, ag.must(t, 200, "GET", "/api/v1/audit?limit=2&cursor="+cursor, nil, bearer(admin)))
		for _, e := range p.Items {
			seen = append(seen, e.ID)
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(seen) != len(all.Items) {
		t.Errorf("paging saw %d of %d", len(seen), len(all.Items))
	}
	since := ag.clock.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	if p := decode[page](t, ag.must(t, 200, "GET", "/api/v1/audit?since="+since, nil, bearer(admin))); len(p.Items) != 0 {
		t.Errorf("since in the future returned %d", len(p.Items))
	}
	me := decode[meOut](t, ag.must(t, 200, "GET", "/api/v1/auth/me", nil, bearer(mia)))
	if p := decode[page](t, ag.must(t, 200, "GET", "/api/v1/audit?actor="+me.ID, nil, bearer(admin))); len(p.Items) == 0 {
		t.Error("actor filter found nothing for mia")
	}
	for _, q := range []string{"limit=0", "limit=501", "limit=x", "since=yesterday", "colour=blue", "actor=" + strings.Repeat("a", 200)} {
		ag.must(t, 400, "GET", "/api/v1/audit?"+q, nil, bearer(admin))
	}
	ag.must(t, 200, "GET", "/api/v1/audit?limit=500", nil, bearer(admin))
	// Not for plain users; their own activities instead.
	ag.must(t, 403, "GET", "/api/v1/audit", nil, bearer(mia))
	ag.must(t, 401, "GET", "/api/v1/audit", nil)
	acts := decode[page](t, ag.must(t, 200, "GET", "/api/v1/activities?action=login", nil, bearer(mia)))
	if len(acts.Items) != 4 { // one success, three failures
		t.Errorf("mia's login activities: %d", len(acts.Items))
	}
	// Events name who, how and from where, and never carry a secret (the
	// cleanup scan checks the latter for every test).
	e := acts.Items[len(acts.Items)-1]
	if e.ActorID != me.ID || e.ClientIP == "" || e.Time.IsZero() || e.Category != "security" {
		t.Errorf("event fields: %+v", e)
	}
}
