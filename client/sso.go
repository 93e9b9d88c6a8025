package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Provider is a single sign-on provider Berth offers.
type Provider struct {
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	LoginURL    string `json:"login_url"`
}

// Providers lists the single sign-on providers (GET /api/v1/auth/providers).
func (c *Client) Providers(ctx context.Context) ([]Provider, error) {
	var l struct {
		Items []Provider `json:"items"`
	}
	if err := c.call(ctx, http.MethodGet, "/api/v1/auth/providers", false, nil, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// SSOToken trades the code the loopback received, with the PKCE verifier
// only this process knows, for tokens (POST /api/v1/auth/sso/token).
func (c *Client) SSOToken(ctx context.Context, code, verifier string) (*Tokens, error) {
	var t Tokens
	if err := c.call(ctx, http.MethodPost, "/api/v1/auth/sso/token", false, map[string]string{"code": code, "code_verifier": verifier}, &t); err != nil {
		return nil, err
	}
	return &t, t.check()
}

// SSO is one browser sign-in, as kubectl oidc-login does it: Berth sends
// the browser, after the provider, to a one-use listener on this
// machine's loopback with a code, which only this process can trade for
// tokens (it alone holds the PKCE verifier).
type SSO struct {
	Client *Client
	// Provider is the provider's name; empty means the only one offered.
	Provider string
	// Open shows the sign-in URL to the user (a browser, or a line to
	// follow by hand).
	Open func(loginURL string) error
	// Timeout bounds the wait for the browser; 5 minutes when zero.
	Timeout time.Duration
	// Now is the clock the tokens' expiry is reckoned by; time.Now when
	// nil.
	Now func() time.Time
}

// Login runs the sign-in and returns the tokens, with the time the
// token request was sent.
func (s *SSO) Login(ctx context.Context) (*Tokens, time.Time, error) {
	provider, err := s.provider(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	verifier, err := randomString(32)
	if err != nil {
		return nil, time.Time{}, err
	}
	state, err := randomString(24)
	if err != nil {
		return nil, time.Time{}, err
	}
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("loopback listener for the browser: %w", err)
	}
	cb := newCallback(state)
	srv := &http.Server{Handler: cb, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		// Gracefully: the browser's tab gets its page before the
		// listener goes.
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	redirect := "http://" + ln.Addr().String() + "/callback"
	q := url.Values{"cli_redirect_uri": {redirect}, "cli_state": {state}, "cli_code_challenge": {challenge}}
	loginURL := s.Client.Server + "/api/v1/auth/sso/" + url.PathEscape(provider) + "/login?" + q.Encode()
	if err := s.Open(loginURL); err != nil {
		return nil, time.Time{}, err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	wait, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var code string
	select {
	case r := <-cb.result:
		if r.err != nil {
			return nil, time.Time{}, r.err
		}
		code = r.code
	case <-wait.Done():
		if ctx.Err() != nil {
			return nil, time.Time{}, ctx.Err()
		}
		return nil, time.Time{}, fmt.Errorf("no answer from the browser within %s: sign in again", timeout)
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	start := now()
	t, err := s.Client.SSOToken(ctx, code, verifier)
	return t, start, err
}

// provider picks the provider to sign in with.
func (s *SSO) provider(ctx context.Context) (string, error) {
	ps, err := s.Client.Providers(ctx)
	if err != nil {
		return "", fmt.Errorf("single sign-on providers: %w", err)
	}
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
		if s.Provider != "" && p.Name == s.Provider {
			return p.Name, nil
		}
	}
	switch {
	case len(ps) == 0:
		return "", fmt.Errorf("%s offers no single sign-on: sign in with a username and password", s.Client.Server)
	case s.Provider != "":
		return "", fmt.Errorf("%s offers no provider %q: it offers %s", s.Client.Server, s.Provider, strings.Join(names, ", "))
	case len(ps) > 1:
		return "", fmt.Errorf("%s offers several providers (%s): choose one with --provider", s.Client.Server, strings.Join(names, ", "))
	}
	return ps[0].Name, nil
}

// callbackResult is what the loopback received.
type callbackResult struct {
	code string
	err  error
}

// callback is the loopback's handler: it takes one answer with the
// expected state and refuses everything else, so a page in the browser
// that guesses the port can neither inject its own code nor end the wait.
type callback struct {
	state  string
	mu     sync.Mutex
	done   bool
	result chan callbackResult
}

func newCallback(state string) *callback {
	return &callback{state: state, result: make(chan callbackResult, 1)}
}

func (cb *callback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/callback" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(cb.state)) != 1 {
		page(w, http.StatusBadRequest, "This sign-in answer is not for this berth login (its state does not match). Close this tab and try again.")
		return
	}
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if cb.done {
		page(w, http.StatusConflict, "berth login has already received its answer. You can close this tab.")
		return
	}
	if e := q.Get("error"); e != "" {
		cb.done = true
		msg := shown(e)
		if d := q.Get("error_description"); d != "" {
			msg += ": " + shown(d)
		}
		page(w, http.StatusOK, "Sign-in failed: "+msg+". You can close this tab.")
		cb.result <- callbackResult{err: fmt.Errorf("single sign-on refused: %s", msg)}
		return
	}
	code := q.Get("code")
	if code == "" {
		page(w, http.StatusBadRequest, "This sign-in answer holds no code. Close this tab and try again.")
		return
	}
	cb.done = true
	// The page first: once the result is sent, the listener may close.
	page(w, http.StatusOK, "Signed in. You can close this tab and return to the terminal.")
	cb.result <- callbackResult{code: code}
}

// shown is text the loopback was sent, fit for the terminal: whoever
// sends it may be a page that learned the state, so control characters
// (escape sequences a terminal would act on) become spaces, and it is cut
// to 200 characters.
func shown(s string) string {
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

func page(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><html><head><meta charset=\"utf-8\"><title>berth login</title></head><body><p>%s</p></body></html>\n", html.EscapeString(msg))
}

// randomString is n random bytes, base64url without padding (PKCE's
// verifier alphabet).
func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", errors.New("no randomness for the sign-in")
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
