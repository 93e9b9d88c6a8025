package sso

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/store"
)

// flow is a started sign-in, named by the digest of its state. It holds
// the digest of the browser's binding cookie, never the cookie, the nonce
// or the PKCE verifier.
type flow struct {
	ID       string `json:"id"`
	Provider string `json:"provider"`
	Browser  string `json:"browser"`
	// Next is where a browser sign-in lands: a local path.
	Next string `json:"next,omitempty"`
	// CLI is the loopback sign-in's request, when the CLI started it.
	CLI       *cliRequest `json:"cli,omitempty"`
	CreatedAt time.Time   `json:"created_at"`
	ExpiresAt time.Time   `json:"expires_at"`
}

// cliRequest is what `berth login` asked for: where to send its browser
// back, the state to echo, and the challenge its verifier must meet.
type cliRequest struct {
	RedirectURI string `json:"redirect_uri"`
	State       string `json:"state"`
	Challenge   string `json:"challenge"`
}

var flowsTable = store.NewTable[flow]("sso_flows").WithExpiry(func(f *flow) time.Time { return f.ExpiresAt })

// oneTimeCode is the CLI's code, named by its digest: single use, CodeTTL,
// good only with the verifier of Challenge.
type oneTimeCode struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Provider  string    `json:"provider"`
	Challenge string    `json:"challenge"`
	ExpiresAt time.Time `json:"expires_at"`
}

var codesTable = store.NewTable[oneTimeCode]("sso_codes").WithExpiry(func(c *oneTimeCode) time.Time { return c.ExpiresAt })

// LoginRequest is what GET …/login was asked.
type LoginRequest struct {
	// Next is the local path a browser lands on ("" is /).
	Next string
	// CLIRedirectURI, CLIState and CLIChallenge come together, from the
	// CLI's loopback sign-in; CLIChallengeMethod is empty or S256.
	CLIRedirectURI, CLIState, CLIChallenge, CLIChallengeMethod string
}

// Started is a sign-in ready to go to the provider.
type Started struct {
	// AuthURL is the provider's authorization URL to redirect to.
	AuthURL string
	// CookieName and CookieValue bind the flow to the browser; Secure says
	// whether the cookie needs HTTPS (the callback is https).
	CookieName, CookieValue string
	Secure                  bool
}

// cookiePrefix starts each flow's binding cookie; the rest is derived
// from the state, so two sign-ins in two tabs do not overwrite each other.
const cookiePrefix = "berth_sso_"

// CookiePath is the binding cookie's path behind an http callback: only
// the SSO endpoints see it.
const CookiePath = "/api/v1/auth/sso/"

// hostPrefix names the binding cookie behind an https callback. Browsers
// take a __Host- cookie only from its own host over https, with Path=/ and
// no Domain, so a host sharing Berth's parent domain, or anyone on the
// network, cannot plant one with an attacker's flow in a victim's browser
// (cookie tossing, which would make it finish the attacker's sign-in).
const hostPrefix = "__Host-"

// cookiePath is the binding cookie's path: "/" is what __Host- requires.
func cookiePath(secure bool) string {
	if secure {
		return "/"
	}
	return CookiePath
}

// isBindingCookie reports whether a cookie's name is a flow's.
func isBindingCookie(name string) bool {
	return strings.HasPrefix(strings.TrimPrefix(name, hostPrefix), cookiePrefix)
}

// maxBrowserFlows bounds the binding cookies one browser holds: a start
// that finds this many clears them (their sign-ins are abandoned) before
// setting its own, so no page can pile them up in a victim's browser.
const maxBrowserFlows = 5

func (s *Service) cookieName(state string, secure bool) string {
	name := cookiePrefix + s.digest("cookie name", state)[:16]
	if secure {
		name = hostPrefix + name
	}
	return name
}

// secure says whether the provider's callback is https, which makes the
// binding cookie Secure and __Host-.
func (p *provider) secure() bool { return strings.HasPrefix(p.RedirectURL, "https://") }

func random() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return b64(b), nil
}

// secrets derives the flow's nonce and PKCE verifier from its state and
// the browser's cookie value: neither is stored, and neither can be known
// without the cookie.
func (s *Service) secrets(state, browser string) (nonce, verifier string) {
	return b64(s.mac("nonce", state, browser)), b64(s.mac("pkce verifier", state, browser))
}

// Begin starts a sign-in through the named provider.
func (s *Service) Begin(ctx context.Context, name string, req LoginRequest, m identity.Meta) (*Started, error) {
	p, err := s.provider(name)
	if err != nil {
		return nil, err
	}
	f := &flow{Provider: p.Name}
	if req.CLIRedirectURI != "" || req.CLIState != "" || req.CLIChallenge != "" || req.CLIChallengeMethod != "" {
		if f.CLI, err = checkCLI(req); err != nil {
			return nil, err
		}
	} else if f.Next, err = SafeNext(req.Next); err != nil {
		return nil, err
	}
	op, reason, err := s.discover(ctx, p)
	if err != nil {
		s.recordFailure(ctx, p.Name, reason, m, nil)
		return nil, err
	}
	if err := s.admitStart(); err != nil {
		// Not audited: a flood would otherwise fill the audit log with
		// its own refusals.
		return nil, err
	}
	state, err := random()
	if err != nil {
		return nil, err
	}
	browser, err := random()
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	f.ID, f.Browser = s.digest("state", state), s.digest("browser", browser)
	f.CreatedAt, f.ExpiresAt = now, now.Add(FlowTTL)
	if err := s.db.Update(func(tx *store.Tx) error { return flowsTable.Insert(tx, f.ID, f) }); err != nil {
		return nil, err
	}
	nonce, verifier := s.secrets(state, browser)
	authURL := p.oauth2Config(op).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	return &Started{AuthURL: authURL, CookieName: s.cookieName(state, p.secure()), CookieValue: browser,
		Secure: p.secure()}, nil
}

// admitStart takes a place for a new flow from the bound on starts, or
// says when to come back.
func (s *Service) admitStart() error {
	now := s.now()
	r := s.starts.ReserveN(now, 1)
	if d := r.DelayFrom(now); !r.OK() || d > 0 {
		r.CancelAt(now)
		if d <= 0 {
			d = time.Second
		}
		if last := s.startsWarned.Load(); last == 0 || now.Sub(time.Unix(0, last)) >= time.Minute {
			// Once a minute, not once a refusal: a flood must not flood the log.
			s.startsWarned.Store(now.UnixNano())
			s.log.Warn("sso: too many sign-ins started; refusing new ones for now", "retry_after", d)
		}
		return fault.New(fault.Unavailable, "too many sign-ins are under way; try again shortly").Retry(d)
	}
	return nil
}

// SafeNext returns where a browser may be sent after signing in: a path
// on Berth's own origin. Anything a browser could read as another origin
// ("//evil", "/\evil", a scheme, control characters it strips) is refused,
// so the sign-in cannot be an open redirect.
func SafeNext(next string) (string, error) {
	if next == "" {
		return "/", nil
	}
	bad := fault.New(fault.Invalid, "next must be a path on this site, like /clusters")
	if len(next) > 1024 || next[0] != '/' || strings.HasPrefix(next, "//") ||
		strings.ContainsFunc(next, func(r rune) bool { return r < 0x21 || r == 0x7f || r == '\\' }) {
		return "", bad
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return "", bad
	}
	// Percent-encoded slashes and backslashes at the start decode to the
	// same tricks in some browsers and proxies.
	if p := strings.ToLower(next); strings.HasPrefix(p, "/%2f") || strings.HasPrefix(p, "/%5c") {
		return "", bad
	}
	return next, nil
}

var (
	challengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	verifierRE  = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)
	cliStateRE  = regexp.MustCompile(`^[\x21-\x7e]{1,256}$`)
)

// checkCLI validates the loopback sign-in's parameters: a redirect URI on
// this machine's loopback interface only (http://127.0.0.1, [::1] or
// localhost, with a port), a state, and an S256 challenge.
func checkCLI(req LoginRequest) (*cliRequest, error) {
	if req.CLIRedirectURI == "" || req.CLIState == "" || req.CLIChallenge == "" {
		return nil, fault.New(fault.Invalid, "cli_redirect_uri, cli_state and cli_code_challenge go together")
	}
	if req.CLIChallengeMethod != "" && req.CLIChallengeMethod != "S256" {
		return nil, fault.New(fault.Invalid, "cli_code_challenge_method must be S256")
	}
	if !challengeRE.MatchString(req.CLIChallenge) {
		return nil, fault.New(fault.Invalid, "cli_code_challenge must be the base64url SHA-256 of the verifier (43 characters)")
	}
	if !cliStateRE.MatchString(req.CLIState) {
		return nil, fault.New(fault.Invalid, "cli_state must be 1 to 256 printable characters")
	}
	uri, err := loopbackURI(req.CLIRedirectURI)
	if err != nil {
		return nil, err
	}
	return &cliRequest{RedirectURI: uri, State: req.CLIState, Challenge: req.CLIChallenge}, nil
}

// loopbackURI accepts only http://127.0.0.1:<port>/…, http://[::1]:<port>/…
// and http://localhost:<port>/…, without user info, query or fragment,
// and returns it as Berth will write it.
func loopbackURI(raw string) (string, error) {
	bad := fault.New(fault.Invalid, "cli_redirect_uri must be http://127.0.0.1:<port>/…, http://[::1]:<port>/… or http://localhost:<port>/…")
	if len(raw) > 512 || strings.ContainsFunc(raw, func(r rune) bool { return r < 0x21 || r == 0x7f || r == '\\' }) {
		return "", bad
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" ||
		strings.Contains(raw, "#") || strings.Contains(raw, "?") {
		return "", bad
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", bad
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return "", bad
	}
	if host != "127.0.0.1" && host != "::1" && host != "localhost" {
		return "", bad
	}
	if u.Path != "" && !strings.HasPrefix(u.Path, "/") {
		return "", bad
	}
	return u.String(), nil
}

// Signed is a finished sign-in: the user, and for the CLI where to send
// the browser with the one-time code.
type Signed struct {
	User *identity.User
	// Next is the browser's landing path, for a browser sign-in.
	Next string
	// CLIRedirect is the loopback URL with code and state, for the CLI's.
	CLIRedirect string
}

// CallbackRequest is what the provider sent the browser back with.
type CallbackRequest struct {
	State, Code, Error string
	// Cookie returns the value of the named cookie ("" when absent).
	Cookie func(name string) string
}

// refusal is a sign-in refused for an audit reason, with the answer.
type refusal struct {
	reason string
	err    error
}

var (
	errStaleState = fault.New(fault.Invalid, "this sign-in is unknown, expired or already used; start again")
	errWrongBrows = fault.New(fault.Invalid, "this sign-in was started in another browser; start again")
	errNotSigned  = fault.New(fault.Unauthenticated, "the identity provider's answer could not be verified; start again")
)

// Finish completes a sign-in from the provider's callback: the flow is
// taken (once) if the browser holds its cookie, the code is exchanged with
// the PKCE verifier, the ID token is checked, and identity admits the
// person it names.
func (s *Service) Finish(ctx context.Context, name string, req CallbackRequest, m identity.Meta) (*Signed, error) {
	p, err := s.provider(name)
	if err != nil {
		return nil, err
	}
	out, ref := s.finish(ctx, p, req, m)
	if ref != nil {
		if ref.reason != "" {
			s.recordFailure(ctx, p.Name, ref.reason, m, nil)
		}
		return nil, ref.err
	}
	return out, nil
}

func (s *Service) finish(ctx context.Context, p *provider, req CallbackRequest, m identity.Meta) (*Signed, *refusal) {
	if req.State == "" || len(req.State) > 128 {
		return nil, &refusal{"unknown_state", errStaleState}
	}
	browser := req.Cookie(s.cookieName(req.State, p.secure()))
	f, reason, err := s.takeFlow(req.State, browser)
	if err != nil {
		return nil, &refusal{"", err}
	}
	switch {
	case reason == "unknown_state":
		return nil, &refusal{reason, errStaleState}
	case reason != "":
		return nil, &refusal{reason, errWrongBrows}
	case f.Provider != p.Name:
		// Another provider's flow arriving here is a mix-up, not a
		// sign-in.
		return nil, &refusal{"provider_mismatch", errStaleState}
	case req.Error != "":
		return nil, &refusal{"idp_error", fault.New(fault.Unauthenticated, "the identity provider refused the sign-in (%s)", idpErrorCode(req.Error))}
	case req.Code == "" || len(req.Code) > 2048:
		return nil, &refusal{"no_code", fault.New(fault.Invalid, "the identity provider sent no code")}
	}
	op, reason, err := s.discover(ctx, p)
	if err != nil {
		return nil, &refusal{reason, err}
	}
	nonce, verifier := s.secrets(req.State, browser)
	xctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, s.client), callTimeout)
	defer cancel()
	tok, err := p.oauth2Config(op).Exchange(xctx, req.Code, oauth2.VerifierOption(verifier))
	if err != nil {
		s.log.Warn("sso: code exchange refused", "provider", p.Name, "err", err)
		return nil, &refusal{"exchange_failed", fault.New(fault.Unauthenticated, "the identity provider did not accept the sign-in; start again")}
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, &refusal{"no_id_token", errNotSigned}
	}
	claims, reason := s.verifyIDToken(xctx, p, op, raw, nonce)
	if reason != "" {
		return nil, &refusal{reason, errNotSigned}
	}
	ext, reason, err := p.identityOf(claims)
	if err != nil {
		return nil, &refusal{reason, err}
	}
	u, err := s.ids.SignInExternal(ctx, ext, p.Policy, m)
	if err != nil {
		// identity audited the refusal itself.
		return nil, &refusal{"", err}
	}
	out := &Signed{User: u, Next: f.Next}
	if f.CLI != nil {
		code, err := s.issueCode(u, p.Name, f.CLI.Challenge)
		if err != nil {
			return nil, &refusal{"", err}
		}
		q := url.Values{"code": {code}, "state": {f.CLI.State}}
		out.CLIRedirect = f.CLI.RedirectURI + "?" + q.Encode()
	}
	return out, nil
}

// takeFlow deletes and returns the flow named by state when browser is
// the cookie it was bound to. A flow presented without its cookie stays,
// so a stranger who learned the state cannot spoil the sign-in.
func (s *Service) takeFlow(state, browser string) (*flow, string, error) {
	var (
		f      *flow
		reason string
	)
	id, presented := s.digest("state", state), s.digest("browser", browser)
	now := s.now()
	err := s.db.Update(func(tx *store.Tx) error {
		f, reason = nil, ""
		got, err := flowsTable.Get(tx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			reason = "unknown_state"
			return nil
		case err != nil:
			return err
		case !now.Before(got.ExpiresAt):
			reason = "unknown_state"
			return flowsTable.Delete(tx, id)
		case browser == "" || subtle.ConstantTimeCompare([]byte(got.Browser), []byte(presented)) != 1:
			reason = "browser_mismatch"
			return nil
		}
		f = got
		return flowsTable.Delete(tx, id)
	})
	return f, reason, err
}

func idpErrorCode(s string) string {
	if len(s) > 64 || strings.ContainsFunc(s, func(r rune) bool { return !(r == '_' || r >= 'a' && r <= 'z') }) {
		return "error"
	}
	return s
}

// issueCode stores a one-time code for the CLI and returns it.
func (s *Service) issueCode(u *identity.User, provider, challenge string) (string, error) {
	code, err := random()
	if err != nil {
		return "", err
	}
	c := &oneTimeCode{ID: s.digest("code", code), UserID: u.ID, Provider: provider, Challenge: challenge,
		ExpiresAt: s.now().UTC().Add(CodeTTL)}
	return code, s.db.Update(func(tx *store.Tx) error { return codesTable.Insert(tx, c.ID, c) })
}

var errBadCode = fault.New(fault.Invalid, "invalid, expired or already used code, or a code_verifier that does not match it")

// Exchange trades the CLI's one-time code and its PKCE verifier for
// tokens, as a password sign-in would give. The code is used up by the
// first attempt, right or wrong, so it cannot be guessed at.
func (s *Service) Exchange(ctx context.Context, code, verifier string, m identity.Meta) (*identity.Tokens, error) {
	if code == "" || verifier == "" {
		return nil, fault.New(fault.Invalid, "code and code_verifier are required")
	}
	if len(code) > 128 {
		s.recordFailure(ctx, "", "malformed", m, nil)
		return nil, errBadCode
	}
	id := s.digest("code", code)
	now := s.now()
	var c *oneTimeCode
	err := s.db.Update(func(tx *store.Tx) error {
		c = nil
		got, err := codesTable.Get(tx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		c = got
		return codesTable.Delete(tx, id)
	})
	if err != nil {
		return nil, err
	}
	reason := ""
	switch {
	case c == nil:
		reason = "unknown_code"
	case !now.Before(c.ExpiresAt):
		reason = "code_expired"
	case !verifierRE.MatchString(verifier):
		// Checked only after the code was taken: a malformed verifier
		// spends it like a wrong one.
		reason = "malformed"
	case subtle.ConstantTimeCompare([]byte(challengeOf(verifier)), []byte(c.Challenge)) != 1:
		reason = "verifier_mismatch"
	}
	provider := ""
	if c != nil {
		provider = c.Provider
	}
	if reason != "" {
		s.recordFailure(ctx, provider, reason, m, nil)
		return nil, errBadCode
	}
	u, err := s.ids.GetUser(c.UserID)
	if err != nil || u.Status != identity.StatusActive {
		s.recordFailure(ctx, provider, "user_inactive", m, nil)
		return nil, errBadCode
	}
	return s.ids.IssueTokens(ctx, u, identity.MethodSSO, "", m)
}

// claimsOf is an ID token's claims, kept raw so any configured claim can
// be read.
type claimsOf map[string]json.RawMessage

func (c claimsOf) str(name string) string {
	var v string
	if raw, ok := c[name]; ok && json.Unmarshal(raw, &v) == nil {
		return v
	}
	return ""
}

// emailVerified reads email_verified, which some providers send as a
// string.
func (c claimsOf) emailVerified() bool {
	raw, ok := c["email_verified"]
	if !ok {
		return false
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && s == "true"
}

// strings reads a claim that is a list of strings, or one string.
func (c claimsOf) strings(name string) ([]string, bool) {
	raw, ok := c[name]
	if !ok {
		return nil, false
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list, true
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, true
	}
	return nil, false
}

// verifiedToken is what verifyIDToken vouches for.
type verifiedToken struct {
	issuer, subject string
	claims          claimsOf
}

// verifyIDToken checks the ID token (go-oidc: signature by the provider's
// keys, issuer, audience, expiry on Berth's clock), then what go-oidc
// leaves to its caller: the nonce of this flow, and, when the token has
// several audiences, that it was issued to Berth (azp). A refusal returns
// its audit reason, never the token.
func (s *Service) verifyIDToken(ctx context.Context, p *provider, op *oidc.Provider, raw, nonce string) (*verifiedToken, string) {
	v := op.Verifier(&oidc.Config{ClientID: p.ClientID, Now: s.now})
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		reason := whyRefused(err, raw, p)
		s.log.Warn("sso: ID token refused", "provider", p.Name, "reason", reason, "err", err)
		return nil, reason
	}
	if subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
		return nil, "nonce_mismatch"
	}
	var c claimsOf
	if err := tok.Claims(&c); err != nil {
		return nil, "bad_claims"
	}
	if len(tok.Audience) > 1 && c.str("azp") != p.ClientID {
		return nil, "wrong_audience"
	}
	if tok.Subject == "" || len(tok.Subject) > 255 {
		return nil, "bad_subject"
	}
	return &verifiedToken{issuer: tok.Issuer, subject: tok.Subject, claims: c}, ""
}

// whyRefused names, for the audit log, why go-oidc refused a token. The
// decision is go-oidc's; this only reads the (unverified) claims again to
// tell a wrong issuer from a wrong audience.
func whyRefused(err error, raw string, p *provider) string {
	var expired *oidc.TokenExpiredError
	if errors.As(err, &expired) {
		return "id_token_expired"
	}
	parts := strings.Split(raw, ".")
	if len(parts) == 3 {
		if payload, derr := b64decode(parts[1]); derr == nil {
			var c struct {
				Iss string          `json:"iss"`
				Aud json.RawMessage `json:"aud"`
			}
			if json.Unmarshal(payload, &c) == nil {
				var auds []string
				if json.Unmarshal(c.Aud, &auds) != nil {
					var one string
					_ = json.Unmarshal(c.Aud, &one)
					auds = []string{one}
				}
				switch {
				case c.Iss != p.Issuer:
					return "wrong_issuer"
				case !slices.Contains(auds, p.ClientID):
					return "wrong_audience"
				}
			}
		}
	}
	return "id_token_invalid"
}

// identityOf maps a verified token to the identity Berth admits, by the
// provider's claim settings; allowed_domains needs a verified email.
func (p *provider) identityOf(t *verifiedToken) (identity.ExternalIdentity, string, error) {
	c := t.claims
	email := ""
	if c.emailVerified() {
		email = strings.TrimSpace(c.str(p.EmailClaim))
	}
	if len(p.AllowedDomains) > 0 {
		_, domain, ok := strings.Cut(strings.ToLower(email), "@")
		if !ok || !slices.Contains(p.AllowedDomains, domain) {
			return identity.ExternalIdentity{}, "domain_not_allowed",
				fault.New(fault.Forbidden, "your account at the identity provider has no verified email address in a domain allowed here")
		}
	}
	if (p.UsernameClaim == p.EmailClaim || p.UsernameClaim == "email") && !c.emailVerified() {
		// The address is the username here: one the provider has not
		// verified would let anyone name themselves after someone else.
		return identity.ExternalIdentity{}, "unverified_username",
			fault.New(fault.Forbidden, "your username here is your email address, and the identity provider has not verified it")
	}
	id := identity.ExternalIdentity{Provider: p.Name, Issuer: t.issuer, Subject: t.subject,
		Username: c.str(p.UsernameClaim), Email: email, DisplayName: c.str("name")}
	if p.GroupsClaim != "" {
		id.GroupsAsserted = true
		id.Groups, _ = c.strings(p.GroupsClaim)
	}
	return id, "", nil
}
