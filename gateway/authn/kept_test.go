package authn

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/berthgw/berth/gateway/identity"
)

// keptServer serves who the request authenticated as, over an in-memory
// listener, with the authenticator's connection hook as the gateway sets it.
func keptServer(t *testing.T, a *Authenticator) *fasthttputil.InmemoryListener {
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{ConnState: a.ConnState, Handler: func(ctx *fasthttp.RequestCtx) {
		p, err := a.Authenticate(ctx)
		if err != nil {
			ctx.SetStatusCode(fasthttp.StatusUnauthorized)
			return
		}
		fmt.Fprintf(ctx, "%s %s %s", p.Username, p.SessionID, p.CredentialID)
	}}
	go srv.Serve(ln) //nolint:errcheck // ends with the listener
	t.Cleanup(func() { ln.Close() })
	return ln
}

// ask sends one request on conn, kept alive, and returns the status and body.
func ask(t *testing.T, conn net.Conn, r *bufio.Reader, authorization string) (int, string) {
	t.Helper()
	if _, err := fmt.Fprintf(conn, "GET /who HTTP/1.1\r\nHost: b\r\nAuthorization: %s\r\n\r\n", authorization); err != nil {
		t.Fatal(err)
	}
	var resp fasthttp.Response
	if err := resp.Read(r); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode(), string(resp.Body())
}

// A connection keeps its last verified token, and what ends the token ends
// the kept decision on the very next request: logout here; the identity
// package's tests run every other change against StillVerified. Another
// token on the same connection is its own; a closed connection is
// forgotten.
func TestKeptTokenPerConnection(t *testing.T) {
	a, svc, token, _ := newTestAuth(t)
	ctx := context.Background()
	ln := keptServer(t, a)
	conn, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)

	code, first := ask(t, conn, r, "Bearer "+token)
	if code != 200 || !strings.HasPrefix(first, "admin ") {
		t.Fatalf("first: %d %q", code, first)
	}
	if n := a.keptCount.Load(); n != 1 {
		t.Fatalf("%d connections kept, want 1", n)
	}
	for range 3 {
		if code, again := ask(t, conn, r, "Bearer "+token); code != 200 || again != first {
			t.Fatalf("kept: %d %q, want %q", code, again, first)
		}
	}
	// A different spelling of the same token is not the kept header, and
	// is verified afresh (and accepted).
	if code, _ := ask(t, conn, r, "bearer  "+token); code != 200 {
		t.Errorf("other spelling: %d", code)
	}

	// A second session's token on the same connection replaces the first.
	u, err := svc.SignIn(ctx, "admin", "bench-password-1", identity.MethodPassword, identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	tp2, err := svc.IssueTokens(ctx, u, identity.MethodPassword, "", identity.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	code, second := ask(t, conn, r, "Bearer "+tp2.AccessToken)
	if code != 200 || second == first {
		t.Fatalf("second token: %d %q (first %q)", code, second, first)
	}

	// Logging the second session out refuses its token at once on this
	// connection, while the first session's token still works.
	p2, err := svc.VerifyAccessToken(tp2.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Logout(ctx, p2, identity.Meta{}); err != nil {
		t.Fatal(err)
	}
	if code, body := ask(t, conn, r, "Bearer "+tp2.AccessToken); code != 401 {
		t.Errorf("logged-out token on its connection: %d %q", code, body)
	}
	if code, body := ask(t, conn, r, "Bearer "+token); code != 200 || body != first {
		t.Errorf("first token after the other's logout: %d %q", code, body)
	}
	// A garbled token after a good one is refused, not taken for it.
	if code, _ := ask(t, conn, r, "Bearer "+token[:len(token)-2]+"xx"); code != 401 {
		t.Errorf("tampered token: %d", code)
	}

	conn.Close()
	for i := 0; i < 1000 && a.keptCount.Load() != 0; i++ {
		time.Sleep(time.Millisecond) // the server notices the close on its next read
	}
	if n := a.keptCount.Load(); n != 0 {
		t.Errorf("%d connections still kept after closing", n)
	}
}

// Many connections are bounded: past maxKept none is kept, each still
// authenticated.
func TestKeptIsBounded(t *testing.T) {
	a, _, token, _ := newTestAuth(t)
	a.keptCount.Store(maxKept)
	ln := keptServer(t, a)
	conn, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if code, _ := ask(t, conn, r, "Bearer "+token); code != 200 {
		t.Fatalf("%d", code)
	}
	entries := 0
	a.kept.Range(func(any, any) bool { entries++; return true })
	if entries != 0 || a.keptCount.Load() != maxKept {
		t.Errorf("kept past the bound: %d entries, count %d", entries, a.keptCount.Load())
	}
}

func TestSameToken(t *testing.T) {
	tok := []byte("Bearer " + strings.Repeat("h", 40) + "." + strings.Repeat("p", 300) + "." + strings.Repeat("s", 86))
	flip := func(i int) []byte {
		b := bytes.Clone(tok)
		b[i] ^= 1
		return b
	}
	cases := map[string]struct {
		sent []byte
		want bool
	}{
		"same":             {bytes.Clone(tok), true},
		"first byte":       {flip(0), false},
		"in the claims":    {flip(100), false},
		"at the cut":       {flip(len(tok) - signatureTail), false},
		"in the signature": {flip(len(tok) - 5), false},
		"last byte":        {flip(len(tok) - 1), false},
		"shorter":          {tok[:len(tok)-1], false},
		"longer":           {append(bytes.Clone(tok), ' '), false},
		"short and same":   {[]byte("Bearer x"), false},
	}
	for name, c := range cases {
		if got := sameToken(tok, c.sent); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
	if !sameToken([]byte("Bearer x"), []byte("Bearer x")) || sameToken([]byte("Bearer x"), []byte("Bearer y")) {
		t.Error("short values")
	}
}
