package identity_test

import (
	"testing"
)

// Every refusal of identity's endpoints answers with its status, code and
// message in Berth's error shape, whichever layer refused: the handler's
// own checks, the service, or the route guard.
func TestRefusalAnswers(t *testing.T) {
	ag := startAuth(t, nil)
	admin := ag.Login(t, "admin", adminPassword).AccessToken
	ag.CreateUser(t, admin, "noor", "noor-password-01")
	noor := ag.Login(t, "noor", "noor-password-01").AccessToken
	ag.secret("wrong-password-1")

	tests := []struct {
		name         string
		method, path string
		body         any
		opts         []opt
		status       int
		code         string
		message      string
	}{
		// The guard's 401s carry a Bearer challenge; a refused sign-in or
		// refresh does not (see below).
		{"wrong password", "POST", "/api/v1/auth/login", map[string]any{"username": "admin", "password": "wrong-password-1"}, nil,
			401, "unauthorized", "invalid username or password"},
		{"unknown refresh token", "POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": "nope"}, nil,
			401, "unauthorized", "invalid, expired or already used refresh token"},
		{"garbage bearer", "GET", "/api/v1/auth/me", nil, []opt{bearer("garbage")},
			401, "unauthorized", "invalid, expired or revoked credentials"},
		{"no credentials", "GET", "/api/v1/auth/me", nil, nil,
			401, "unauthorized", "sign in, or send Authorization: Bearer <token>"},
		{"missing key pair", "POST", "/api/v1/auth/token", map[string]any{"access_key": "a"}, nil,
			400, "invalid_request", "access key and secret key are required"},
		{"unknown user", "GET", "/api/v1/users/usr_nope", nil, []opt{bearer(admin)},
			404, "not_found", "user not found"},
		{"unknown role", "GET", "/api/v1/roles/nope", nil, []opt{bearer(admin)},
			404, "not_found", "role not found"},
		{"taken username", "POST", "/api/v1/users", map[string]any{"username": "noor", "password": "noor-password-02"}, []opt{bearer(admin)},
			409, "conflict", `username "noor" is taken`},
		{"renamed role", "PUT", "/api/v1/roles/viewer", map[string]any{"name": "other"}, []opt{bearer(admin)},
			400, "invalid_request", "a role cannot be renamed"},
		{"not an admin", "GET", "/api/v1/users", nil, []opt{bearer(noor)},
			403, "forbidden", "this needs the users:admin permission"},
		{"bad audit filter", "GET", "/api/v1/audit?colour=blue", nil, []opt{bearer(admin)},
			400, "invalid_request", `unknown parameter "colour"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, hdr := ag.call(t, tt.method, tt.path, tt.body, tt.opts...)
			e := decodeError(t, body)
			if status != tt.status || e.Code != tt.status || e.Error != tt.code || e.Message != tt.message || e.RequestID == "" {
				t.Errorf("%d %s, want %d %s %q", status, body, tt.status, tt.code, tt.message)
			}
			guarded := tt.path == "/api/v1/auth/me" && status == 401
			if challenge := hdr.Get("WWW-Authenticate"); guarded != (challenge == `Bearer realm="berth"`) {
				t.Errorf("WWW-Authenticate %q", challenge)
			}
		})
	}
}
