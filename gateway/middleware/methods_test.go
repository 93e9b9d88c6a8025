package middleware

import "testing"

func TestMethodLabel(t *testing.T) {
	for m, want := range map[string]string{
		"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH", "DELETE": "DELETE", "OPTIONS": "OPTIONS",
		"get": "other", "CONNECT": "other", "TRACE": "other", "PROPFIND": "other", "": "other", "GET ": "other",
	} {
		if got := MethodLabel(m); got != want {
			t.Errorf("MethodLabel(%q) = %q, want %q", m, got, want)
		}
		if KnownMethod(m) != (want != "other") {
			t.Errorf("KnownMethod(%q) = %v", m, KnownMethod(m))
		}
	}
}
