// Package authn authenticates requests at Berth's edge and guards routes:
// it reads bearer tokens (access tokens and API keys) and browser session
// cookies, applies the cookie CSRF origin rules and CORS, checks each
// route's declared permission, and applies the rate limits. Handlers and
// the Kubernetes proxy glue get the caller as an *identity.Principal.
package authn

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/edgetls"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/ratelimit"
)

// Authenticate's refusals are *fault.Error values: fault.Unauthenticated
// (no credentials, or credentials that are not valid: 401) or
// fault.Forbidden (valid credentials that may not do this: 403), with a
// message safe to show the client. The proxy renders them as Kubernetes
// Status objects; the API as Berth's JSON errors.
func unauthenticated(msg string) error { return fault.New(fault.Unauthenticated, "%s", msg) }

func forbidden(msg string) error { return fault.New(fault.Forbidden, "%s", msg) }

// Options configures an Authenticator.
type Options struct {
	Service *identity.Service
	Limiter *ratelimit.Limiter
	// Trusted are the proxies whose X-Forwarded-* headers are believed.
	Trusted *ratelimit.Trusted
	// CookieName is the browser session cookie's name.
	CookieName string
	// AllowedOrigins may make CORS requests and send cookie-authenticated
	// unsafe requests. "*" lets any origin read responses but never with
	// credentials, and never counts as trusted for cookies.
	AllowedOrigins []string
	Logger         *slog.Logger
}

// Authenticator establishes who made a request. It is safe for concurrent
// use.
type Authenticator struct {
	svc        *identity.Service
	limiter    *ratelimit.Limiter
	trusted    *ratelimit.Trusted
	cookieName string
	origins    map[string]bool
	anyOrigin  bool
	log        *slog.Logger

	// kept remembers, per connection, the last access token verified on
	// it (net.Conn → *keptToken): clients send the same token on every
	// request of a kept-alive connection, and finding it byte for byte
	// the same, its decision still good (identity.Verified), costs a
	// fraction of verifying it again. Entries go when the connection
	// closes (ConnState); keptCount bounds them should that not happen.
	kept      sync.Map
	keptCount atomic.Int64
}

// keptToken is a connection's last verified access token.
type keptToken struct {
	header []byte // the whole Authorization value
	v      *identity.Verified
}

// maxKept bounds the connections remembered at once.
const maxKept = 1 << 16

// New builds an Authenticator. Origins must be scheme://host[:port].
func New(opts Options) (*Authenticator, error) {
	a := &Authenticator{
		svc: opts.Service, limiter: opts.Limiter, trusted: opts.Trusted,
		cookieName: opts.CookieName, origins: map[string]bool{}, log: opts.Logger,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.cookieName == "" {
		a.cookieName = DefaultCookieName
	}
	for _, o := range opts.AllowedOrigins {
		if o == "*" {
			a.anyOrigin = true
			continue
		}
		n, ok := normalizeOrigin(o)
		if !ok {
			return nil, fmt.Errorf("allowed origin %q: want scheme://host[:port]", o)
		}
		a.origins[n] = true
	}
	return a, nil
}

// DefaultCookieName is the browser session cookie's default name. The
// __Host- prefix makes browsers accept the cookie only from Berth's own
// host over https, set with Path=/ and no Domain (SetSessionCookie sets it
// so): a page on a sibling domain (tenant.example.com beside
// berth.example.com) cannot plant a session of its choosing in the
// browser ("cookie tossing"), which it could with Domain=example.com on a
// cookie of any other name.
const DefaultCookieName = "__Host-berth_session"

// CookieName is the browser session cookie's name.
func (a *Authenticator) CookieName() string { return a.cookieName }

const clientIPKey = "berth.authn.client_ip"

// PrincipalFrom returns the principal a guard or Authenticate stored on the
// request, or nil. It is identity.PrincipalFrom, where identity's own
// handlers read it.
func PrincipalFrom(ctx *fasthttp.RequestCtx) *identity.Principal { return identity.PrincipalFrom(ctx) }

// Authenticate establishes the request's principal from its Authorization
// header (an access token or an API key) or, failing that, its session
// cookie. A cookie-authenticated request with an unsafe method must also
// pass the CSRF origin check. The principal is remembered on the request
// and its user id recorded for the access log. A refusal is a *fault.Error
// of kind Unauthenticated or Forbidden.
func (a *Authenticator) Authenticate(ctx *fasthttp.RequestCtx) (*identity.Principal, error) {
	return a.authenticate(ctx, true)
}

// AuthenticateWithoutSession is Authenticate for routes a browser session
// must never reach: the Kubernetes proxy, whose answers are tenant content
// on Berth's own origin and which upgrades to exec, attach and
// port-forward WebSockets. kubectl and REST clients send a bearer token, an
// API key or a client certificate; a browser sends its cookie on its own,
// from any page on a same-site origin, including a pod's page served
// through the proxy. So the session cookie is ignored: a request that has
// nothing else gets 401. A client certificate, which a browser may also
// present on its own, must come with no foreign Origin or Referer, whatever
// the method: a WebSocket handshake is a GET.
func (a *Authenticator) AuthenticateWithoutSession(ctx *fasthttp.RequestCtx) (*identity.Principal, error) {
	return a.authenticate(ctx, false)
}

// errSessionRefused answers a request that offers only a session cookie
// where sessions do not count.
var errSessionRefused = unauthenticated("browser sessions are not accepted here; send Authorization: Bearer <token> or a client certificate")

// authenticate establishes the principal; sessions says whether a session
// cookie counts.
func (a *Authenticator) authenticate(ctx *fasthttp.RequestCtx, sessions bool) (*identity.Principal, error) {
	if p := PrincipalFrom(ctx); p != nil {
		if !sessions && p.AuthMethod == identity.MethodSession {
			return nil, errSessionRefused
		}
		return p, nil
	}
	var (
		p   *identity.Principal
		err error
	)
	if h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization); len(h) > 0 {
		if p, ok := a.keptPrincipal(ctx.Conn(), h); ok {
			identity.SetPrincipal(ctx, p)
			httpapi.SetPrincipal(ctx, p.UserID)
			return p, nil
		}
		tok, perr := ParseBearer(h)
		if perr != nil {
			return nil, unauthenticated("the Authorization header must be \"Bearer <token>\"")
		}
		if strings.HasPrefix(tok, identity.APIKeyPrefix) {
			p, err = a.svc.VerifyAPIKey(ctx, tok, a.Meta(ctx))
		} else {
			if conn := ctx.Conn(); conn != nil {
				var v *identity.Verified
				p, v, err = a.svc.VerifyAccessTokenKept(tok)
				if v != nil {
					a.keep(conn, h, v)
				}
			} else {
				p, err = a.svc.VerifyAccessToken(tok)
			}
		}
	} else if c := ctx.Request.Header.Cookie(a.cookieName); len(c) > 0 && sessions {
		p, err = a.svc.VerifySessionCookie(string(c))
		if err == nil && !safeMethod(ctx.Method()) {
			if cerr := a.CheckOrigin(ctx, true); cerr != nil {
				return nil, cerr
			}
		}
	} else if cn, orgs, ok := edgetls.ClientIdentity(ctx.TLSConnectionState()); ok {
		// A browser may present a client certificate on its own, like a
		// cookie, so unsafe methods from a foreign origin are refused;
		// kubectl sends no Origin and passes.
		p, err = a.verifyClientCertificate(ctx.TLSConnectionState(), cn, orgs)
		if err == nil && (!safeMethod(ctx.Method()) || !sessions) {
			if cerr := a.CheckOrigin(ctx, false); cerr != nil {
				return nil, cerr
			}
		}
	} else if len(ctx.Request.Header.Cookie(a.cookieName)) > 0 {
		return nil, errSessionRefused
	} else {
		return nil, unauthenticated("sign in, or send Authorization: Bearer <token>")
	}
	if err != nil {
		if errors.Is(err, identity.ErrUnauthenticated) {
			return nil, unauthenticated(refusal(err))
		}
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	identity.SetPrincipal(ctx, p)
	httpapi.SetPrincipal(ctx, p.UserID)
	return p, nil
}

// keptPrincipal returns the principal of the access token last verified
// on conn, if header is exactly its Authorization value and the decision
// still holds.
func (a *Authenticator) keptPrincipal(conn net.Conn, header []byte) (*identity.Principal, bool) {
	if conn == nil {
		return nil, false
	}
	e, ok := a.kept.Load(conn)
	if !ok {
		return nil, false
	}
	k := e.(*keptToken)
	if !sameToken(k.header, header) {
		return nil, false
	}
	return a.svc.StillVerified(k.v)
}

// signatureTail is how much of the end of an Authorization value
// sameToken compares in constant time: a JWT's Ed25519 signature is its
// last 86 characters.
const signatureTail = 128

// sameToken reports whether sent is byte for byte the kept Authorization
// value. A connection may carry several clients' requests (a trusted
// proxy in front of Berth), so the comparison must not tell by its timing
// how much of another client's token matched: the end, which holds the
// signature — the only part that authenticates — is compared in constant
// time; the rest (scheme, header and claims, readable by whoever holds
// the token) as fast as it goes. Hashing the whole value instead would
// cost as much as the verification cache it saves.
func sameToken(kept, sent []byte) bool {
	if len(kept) != len(sent) {
		return false
	}
	cut := max(0, len(kept)-signatureTail)
	tail := subtle.ConstantTimeCompare(kept[cut:], sent[cut:]) == 1
	return bytes.Equal(kept[:cut], sent[:cut]) && tail
}

// keep remembers v as conn's last verified token, sent as header.
func (a *Authenticator) keep(conn net.Conn, header []byte, v *identity.Verified) {
	if conn == nil {
		return
	}
	k := &keptToken{header: bytes.Clone(header), v: v}
	if _, loaded := a.kept.Swap(conn, k); !loaded {
		if a.keptCount.Add(1) > maxKept {
			a.forget(conn)
		}
	}
}

func (a *Authenticator) forget(conn net.Conn) {
	if _, loaded := a.kept.LoadAndDelete(conn); loaded {
		a.keptCount.Add(-1)
	}
}

// ConnState is the server's connection hook: a connection closed or
// handed over (an upgrade) is forgotten.
func (a *Authenticator) ConnState(conn net.Conn, state fasthttp.ConnState) {
	if state == fasthttp.StateClosed || state == fasthttp.StateHijacked {
		a.forget(conn)
	}
}

// Reauthenticator returns a function that checks the credential behind p,
// which Authenticate returned for ctx, again against the store as it is
// when called, and returns the principal it grants then. It lets work that
// outlives the request (a watch, an exec session) notice that access was
// withdrawn. The function does not use ctx.
func (a *Authenticator) Reauthenticator(ctx *fasthttp.RequestCtx, p *identity.Principal) func() (*identity.Principal, error) {
	if p.AuthMethod == identity.MethodClientCert {
		// The groups come from the certificate, which the connection keeps
		// until the certificate expires.
		state := ctx.TLSConnectionState()
		cn, orgs, _ := edgetls.ClientIdentity(state)
		return func() (*identity.Principal, error) { return a.verifyClientCertificate(state, cn, orgs) }
	}
	return func() (*identity.Principal, error) { return a.svc.Reverify(p) }
}

// verifyClientCertificate maps the verified client certificate of state
// to its principal, which expires with the certificate chain: the
// handshake checked the dates once, but a kept-alive connection, or a
// stream, can outlive them.
func (a *Authenticator) verifyClientCertificate(state *tls.ConnectionState, cn string, orgs []string) (*identity.Principal, error) {
	if state == nil || len(state.VerifiedChains) == 0 {
		return nil, identity.ErrUnauthenticated
	}
	var notAfter time.Time
	for _, c := range state.VerifiedChains[0] {
		if notAfter.IsZero() || c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	return a.svc.VerifyClientCertificate(cn, orgs, notAfter)
}

// safeMethod reports methods that must not change state, which CSRF rules
// therefore let through.
func safeMethod(m []byte) bool {
	switch string(m) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions, fasthttp.MethodTrace:
		return true
	}
	return false
}

// tokenByte marks the characters of RFC 6750's b64token before any
// padding: a table, because every request's token (a JWT is some 500
// bytes) is checked character by character.
var tokenByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

// ParseBearer extracts the token from an Authorization header value of the
// form "Bearer <token>" (scheme case-insensitive, RFC 6750). The token must
// be 1 to identity.MaxTokenLength characters of the b64token alphabet; the
// header is refused before any parsing when it is longer than that could
// be, so a megabyte of dots costs nothing.
func ParseBearer(h []byte) (string, error) {
	const scheme = "bearer"
	if len(h) > len(scheme)+8+identity.MaxTokenLength {
		return "", errors.New("authorization header too long")
	}
	if len(h) <= len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) || (h[len(scheme)] != ' ' && h[len(scheme)] != '\t') {
		return "", errors.New("not a bearer authorization")
	}
	tok := bytes.TrimRight(bytes.TrimLeft(h[len(scheme):], " \t"), " \t")
	if len(tok) == 0 || len(tok) > identity.MaxTokenLength {
		return "", errors.New("bearer token empty or too long")
	}
	for i, c := range tok {
		if tokenByte[c] {
			continue
		}
		if c != '=' {
			return "", errors.New("bearer token has characters outside the token alphabet")
		}
		// Padding ends the token.
		if len(bytes.TrimLeft(tok[i:], "=")) != 0 {
			return "", errors.New("bearer token has data after padding")
		}
		break
	}
	return string(tok), nil
}

// ClientIP returns the request's client address (resolved once per
// request through the trusted proxies).
func (a *Authenticator) ClientIP(ctx *fasthttp.RequestCtx) netip.Addr {
	if ip, ok := ctx.UserValue(clientIPKey).(netip.Addr); ok {
		return ip
	}
	ip := ratelimit.ClientIP(ctx, a.trusted)
	ctx.SetUserValue(clientIPKey, ip)
	return ip
}

// Meta returns the request's origin details for sessions and audit.
func (a *Authenticator) Meta(ctx *fasthttp.RequestCtx) identity.Meta {
	ua := ctx.Request.Header.UserAgent()
	if len(ua) > 256 {
		ua = ua[:256]
	}
	return identity.Meta{ClientIP: a.ClientIP(ctx).String(), UserAgent: string(ua)}
}

// Limiter returns the rate limiter, for the proxy and /join.
func (a *Authenticator) Limiter() *ratelimit.Limiter { return a.limiter }

// Limit applies scope's limit to key: nil when the request may go on,
// else the 429 refusal (fault.TooMany with Retry-After) to return.
func (a *Authenticator) Limit(scope, key string) error {
	if ok, wait := a.limiter.Allow(scope, key); !ok {
		return tooMany(wait)
	}
	return nil
}

// AllowPrincipal applies scope's limit to the principal's credential (its
// API key, or its user for other credentials) and then scope's per-user
// limit (ratelimit.UserScope) to its user, so every credential of a user
// also draws from one shared bucket. It reports whether the request may
// go on and, if not, how long to wait.
func (a *Authenticator) AllowPrincipal(scope string, p *identity.Principal) (bool, time.Duration) {
	if ok, wait := a.limiter.Allow(scope, p.RateKey()); !ok {
		return false, wait
	}
	if us := ratelimit.UserScope(scope); us != "" {
		return a.limiter.Allow(us, p.UserID)
	}
	return true, 0
}

// tooMany is the refusal of a rate limit: 429, with Retry-After and the
// message naming the same whole seconds.
func tooMany(wait time.Duration) error {
	secs := ratelimit.RetryAfterSeconds(wait)
	return fault.New(fault.TooMany, "too many requests; retry in %d seconds", secs).Retry(time.Duration(secs) * time.Second)
}

// challenge adds the WWW-Authenticate challenge a 401 from Authenticate
// carries (RFC 7235), and returns err.
func challenge(ctx *fasthttp.RequestCtx, err error) error {
	if fault.Is(err, fault.Unauthenticated) {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="berth"`)
	}
	return err
}

// AuditEvent starts an audit event for the request: who made it (when
// authenticated), from where, with which client and request id. Callers add
// the action, resource and result.
func (a *Authenticator) AuditEvent(ctx *fasthttp.RequestCtx) audit.Event {
	ev := audit.Event{ClientIP: a.ClientIP(ctx).String(), UserAgent: string(ctx.UserAgent()), RequestID: httpapi.RequestID(ctx)}
	if p := PrincipalFrom(ctx); p != nil {
		ev.ActorID, ev.ActorName, ev.AuthMethod, ev.CredentialID = p.UserID, p.Username, p.AuthMethod, p.CredentialID
	}
	return ev
}

// ChangeEvent is the audit event of a settings change the caller asked
// for: AuditEvent in the settings category with action and the resource,
// its result the outcome of err (a failure's reason is its fault kind).
func (a *Authenticator) ChangeEvent(ctx *fasthttp.RequestCtx, action, resourceType, resourceID string, err error) audit.Event {
	ev := a.AuditEvent(ctx)
	ev.Category, ev.Action, ev.ResourceType, ev.ResourceID = audit.CategorySettings, action, resourceType, resourceID
	ev.Result = audit.ResultSuccess
	if err != nil {
		ev.Result, ev.Reason = audit.ResultFailure, fault.KindOf(err).String()
	}
	return ev
}
