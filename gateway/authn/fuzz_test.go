package authn

import (
	"bytes"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/identity"
)

// FuzzParseBearer checks that any Authorization header either is refused
// or yields a token that is a bounded, trimmed substring of the header in
// the b64token alphabet — never a panic, never something the header did
// not contain.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{
		"Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln",
		"bearer brt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"Bearer ......................................",
		"Bearer a==",
		"Bearer a=b",
		"Basic dXNlcjpwYXNz",
		"Bearer\t\ttok\t",
		"Bearer tok en",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, h []byte) {
		tok, err := ParseBearer(h)
		if err != nil {
			if tok != "" {
				t.Fatal("token returned with an error")
			}
			return
		}
		if tok == "" || len(tok) > identity.MaxTokenLength {
			t.Fatalf("token length %d", len(tok))
		}
		if !bytes.Contains(h, []byte(tok)) {
			t.Fatal("token is not part of the header")
		}
		if !strings.EqualFold(string(h[:6]), "bearer") {
			t.Fatal("accepted another scheme")
		}
		if strings.ContainsAny(tok, " \t\r\n\"") {
			t.Fatalf("token holds whitespace or quotes: %q", tok)
		}
		if i := strings.IndexByte(tok, '='); i >= 0 && strings.Trim(tok[i:], "=") != "" {
			t.Fatalf("data after padding: %q", tok)
		}
	})
}

// FuzzNormalizeOrigin checks the origin normaliser is idempotent and that
// what it accepts has no path, query or credentials.
func FuzzNormalizeOrigin(f *testing.F) {
	for _, s := range []string{"https://a.example", "HTTP://A:80", "http://[::1]:1", "null", "https://a/b", "https://u@a", "http://a?b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := normalizeOrigin(s)
		if !ok {
			return
		}
		again, ok2 := normalizeOrigin(n)
		if !ok2 || again != n {
			t.Fatalf("%q → %q → %q (%v)", s, n, again, ok2)
		}
		rest := n[strings.Index(n, "://")+3:]
		if strings.ContainsAny(rest, "/?#@") {
			t.Fatalf("%q normalised to %q", s, n)
		}
	})
}
