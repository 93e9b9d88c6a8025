package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// browser follows the sign-in URL as a browser would: to Berth, which
// redirects to the loopback.
func browser(t *testing.T) func(string) (int, string) {
	return func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Errorf("browser: %v", err)
			return 0, ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
}

func TestSSOSignsInThroughTheLoopback(t *testing.T) {
	f := newFakeBerth(t)
	f.providers = []string{"corp"}
	cl := &Client{Server: f.srv.URL, HTTP: f.srv.Client()}
	pages := make(chan string, 1)
	sso := &SSO{Client: cl, Open: func(u string) error {
		lu, _ := url.Parse(u)
		if lu.Path != "/api/v1/auth/sso/corp/login" {
			t.Errorf("login URL path %q", lu.Path)
		}
		go func() { _, page := browser(t)(u); pages <- page }()
		return nil
	}}
	tok, _, err := sso.Login(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Errorf("tokens %+v", tok)
	}
	if page := <-pages; !strings.Contains(page, "close this tab") {
		t.Errorf("browser page %q", page)
	}
}

// The loopback takes one answer with the right state: another state is
// refused and the wait goes on; a second answer is refused.
func TestSSOLoopbackRefusesWrongStateAndASecondCode(t *testing.T) {
	f := newFakeBerth(t)
	f.providers = []string{"a", "b"}
	cl := &Client{Server: f.srv.URL, HTTP: f.srv.Client()}
	get := browser(t)
	results := make(chan string, 4)
	sso := &SSO{Client: cl, Provider: "b", Open: func(u string) error {
		lu, _ := url.Parse(u)
		q := lu.Query()
		cb := q.Get("cli_redirect_uri")
		go func() {
			// A page guessing the port, with its own code and state.
			status, _ := get(cb + "?" + url.Values{"code": {"attacker-code"}, "state": {"guess"}}.Encode())
			results <- "wrong state: " + http.StatusText(status)
			status, _ = get(cb + "?" + url.Values{"state": {q.Get("cli_state")}}.Encode())
			results <- "no code: " + http.StatusText(status)
			status, _ = get(u) // the real sign-in
			results <- "real: " + http.StatusText(status)
		}()
		return nil
	}}
	tok, _, err := sso.Login(context.Background())
	if err != nil {
		t.Fatalf("the real answer after a refused one: %v", err)
	}
	if tok.AccessToken == "" {
		t.Error("no token")
	}
	want := []string{"wrong state: Bad Request", "no code: Bad Request", "real: OK"}
	for _, w := range want {
		if got := <-results; got != w {
			t.Errorf("%s, want %s", got, w)
		}
	}
}

// Once a code is taken, another answer with the right state is refused:
// only the first reaches the exchange.
func TestSSOCallbackTakesOneCode(t *testing.T) {
	cb := newCallback("the-state")
	srv := httptest.NewServer(cb)
	defer srv.Close()
	get := browser(t)
	if status, _ := get(srv.URL + "/callback?code=first&state=the-state"); status != http.StatusOK {
		t.Fatalf("first answer: %d", status)
	}
	if status, _ := get(srv.URL + "/callback?code=second&state=the-state"); status != http.StatusConflict {
		t.Errorf("second answer: %d, want 409", status)
	}
	if status, _ := get(srv.URL + "/elsewhere?code=x&state=the-state"); status != http.StatusNotFound {
		t.Errorf("another path: %d, want 404", status)
	}
	if r := <-cb.result; r.code != "first" {
		t.Errorf("code handed over %q, want first", r.code)
	}
	select {
	case r := <-cb.result:
		t.Errorf("a second result was handed over: %+v", r)
	default:
	}
}

func TestSSOTimesOutWithoutAnAnswer(t *testing.T) {
	f := newFakeBerth(t)
	f.providers = []string{"corp"}
	cl := &Client{Server: f.srv.URL, HTTP: f.srv.Client()}
	sso := &SSO{Client: cl, Timeout: 50 * time.Millisecond, Open: func(string) error { return nil }}
	_, _, err := sso.Login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no answer from the browser") {
		t.Errorf("no browser: %v", err)
	}
}

func TestSSOProviderChoice(t *testing.T) {
	tests := []struct {
		offered  []string
		provider string
		want     string
	}{
		{nil, "", "offers no single sign-on"},
		{[]string{"a", "b"}, "", "choose one with --provider"},
		{[]string{"a"}, "z", `offers no provider "z"`},
	}
	for _, tt := range tests {
		f := newFakeBerth(t)
		f.providers = tt.offered
		sso := &SSO{Client: &Client{Server: f.srv.URL, HTTP: f.srv.Client()}, Provider: tt.provider,
			Open: func(string) error { return errors.New("must not open") }}
		if _, _, err := sso.Login(context.Background()); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v / %q: %v, want %q", tt.offered, tt.provider, err, tt.want)
		}
	}
}

func TestSSOProviderErrorEndsTheWait(t *testing.T) {
	f := newFakeBerth(t)
	f.providers = []string{"corp"}
	cl := &Client{Server: f.srv.URL, HTTP: f.srv.Client()}
	sso := &SSO{Client: cl, Open: func(u string) error {
		lu, _ := url.Parse(u)
		q := lu.Query()
		go browser(t)(q.Get("cli_redirect_uri") + "?" + url.Values{"error": {"access_denied"}, "error_description": {"user said no"}, "state": {q.Get("cli_state")}}.Encode())
		return nil
	}}
	if _, _, err := sso.Login(context.Background()); err == nil || !strings.Contains(err.Error(), "user said no") {
		t.Errorf("refused at the provider: %v", err)
	}
}

// What the loopback is sent is shown on its page and in the terminal: a
// page that learned the state (it is in the browser's history) must get
// neither script into the page nor escape sequences into the terminal,
// and the listener is on 127.0.0.1 only.
func TestSSOLoopbackShowsSentTextInertly(t *testing.T) {
	f := newFakeBerth(t)
	f.providers = []string{"corp"}
	cl := &Client{Server: f.srv.URL, HTTP: f.srv.Client()}
	pages := make(chan string, 1)
	sso := &SSO{Client: cl, Open: func(u string) error {
		lu, _ := url.Parse(u)
		q := lu.Query()
		cb, err := url.Parse(q.Get("cli_redirect_uri"))
		if err != nil || cb.Hostname() != "127.0.0.1" {
			t.Errorf("loopback redirect %q: not on 127.0.0.1", q.Get("cli_redirect_uri"))
		}
		go func() {
			_, page := browser(t)(cb.String() + "?" + url.Values{"error": {"<script>alert(1)</script>"},
				"error_description": {"\x1b]52;c;aGk=\x07\x1b[2J" + strings.Repeat("x", 4000)}, "state": {q.Get("cli_state")}}.Encode())
			pages <- page
		}()
		return nil
	}}
	_, _, err := sso.Login(context.Background())
	if err == nil {
		t.Fatal("an error answer signed in")
	}
	if strings.ContainsFunc(err.Error(), func(r rune) bool { return r < 0x20 || r == 0x7f }) || len(err.Error()) > 600 {
		t.Errorf("the terminal would get %q", err.Error())
	}
	if page := <-pages; strings.Contains(page, "<script>") || !strings.Contains(page, "&lt;script&gt;") {
		t.Errorf("the page shows %q", page)
	}
}
