package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/audit"
)

// A client's X-Request-Id never becomes Berth's request id: the response,
// the error body, the audit event and the access log carry Berth's own,
// and the client's (when plain) is kept apart as client_request_id.
func TestClientRequestIDKeptApart(t *testing.T) {
	ag := startAuth(t, nil)
	for _, tt := range []struct {
		sent, kept string
	}{
		{"client-chosen-1", "client-chosen-1"},
		{"<script>alert(1)</script>", ""},
		{strings.Repeat("x", 129), ""},
	} {
		ag.secret("wrong-password-77")
		status, body, hdr := ag.call(t, "POST", "/api/v1/auth/login",
			map[string]any{"username": "admin", "password": "wrong-password-77"}, header("X-Request-Id", tt.sent))
		id := hdr.Get("X-Request-Id")
		if status != 401 || id == tt.sent || len(id) != 24 {
			t.Fatalf("sent %q: status %d, X-Request-Id %q: want Berth's own id", tt.sent, status, id)
		}
		if e := decodeError(t, body); e.RequestID != id {
			t.Errorf("error body request_id %q, header %q", e.RequestID, id)
		}
		evs := ag.auditEvents(t, audit.Query{Action: "login", Limit: 1})
		if len(evs) != 1 || evs[0].RequestID != id || evs[0].ClientRequestID != tt.kept {
			t.Errorf("sent %q: audit event %+v, want request_id %q and client_request_id %q", tt.sent, evs, id, tt.kept)
		}
		line := accessLogLine(t, ag.logs.String(), id)
		if line == nil || line["client_request_id"] != nilIfEmpty(tt.kept) {
			t.Errorf("sent %q: access log line %v, want client_request_id %q", tt.sent, line, tt.kept)
		}
	}
	// Berth's id is not the client's even when the client sends a
	// perfectly plain one that looks like Berth's.
	_, _, hdr := ag.call(t, "GET", "/healthz", nil, header("X-Request-Id", "0123456789abcdef01234567"))
	if hdr.Get("X-Request-Id") == "0123456789abcdef01234567" {
		t.Error("a client id that looks like Berth's was taken")
	}
}

// accessLogLine finds the access log record of request id in JSON logs.
func accessLogLine(t *testing.T, logs, id string) map[string]any {
	t.Helper()
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if m["msg"] == "request" && m["request_id"] == id {
			return m
		}
	}
	return nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
