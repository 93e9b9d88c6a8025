package proxy

import (
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
)

// Identity is who the proxy acts for towards the cluster.
type Identity struct {
	// User becomes Impersonate-User (already prefixed by the caller).
	User string
	// Groups become Impersonate-Group headers.
	Groups []string
	// Extra becomes Impersonate-Extra-<key> headers; keys are lower-cased
	// and percent-encoded as the API server expects.
	Extra map[string][]string
	// StillAllowed, if set, decides again whether a watch, followed log or
	// upgraded connection opened for this identity may go on; Pool.Recheck
	// asks it and ends the stream when it says no. A stream outlives the
	// check made when it opened, and access withdrawn since (a membership
	// removed, a session revoked, a user disabled) must end it too.
	StillAllowed func() bool
	// StreamKey names the principal whose stream limit a watch, followed
	// log or upgrade counts against (StreamLimits.PerPrincipal); empty,
	// only the cluster's limit applies.
	StreamKey string
	// Refusal, if set, says why StillAllowed last said no, for the final
	// watch event a withdrawn stream ends with; nil: 403 with a generic
	// message.
	Refusal func() (code int, message string)
}

// hopByHop are connection-level headers (RFC 9110 §7.6.1) that a proxy
// must not forward.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// dropped reports whether a client header must not reach the cluster:
// credentials for Berth, any attempt to choose an identity (Impersonate-*,
// and X-Remote-* which front-proxy authentication trusts), hop-by-hop
// headers, and headers the proxy sets itself.
func dropped(name string) bool {
	lower := strings.ToLower(name)
	switch lower {
	case "authorization", "cookie", "host", "content-length", "x-request-id", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip", "forwarded":
		return true
	}
	if strings.HasPrefix(lower, "impersonate-") || strings.HasPrefix(lower, "x-remote-") {
		return true
	}
	for _, h := range hopByHop {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// copyRequestHeaders copies the client's headers that may pass. Headers
// the client names in Connection are dropped too (they are hop-by-hop by
// declaration), but since the proxy adds its own identity headers after
// this copy, naming them in Connection cannot remove them — the trick
// behind Rancher's CVE-2021-31999 and capsule-proxy's CVE-2022-23652.
func copyRequestHeaders(dst, src *fasthttp.RequestHeader, upgrade bool) {
	named := map[string]bool{}
	for _, v := range src.PeekAll("Connection") {
		for _, part := range strings.Split(string(v), ",") {
			if p := strings.ToLower(strings.TrimSpace(part)); p != "" && p != "upgrade" {
				named[p] = true
			}
		}
	}
	for k, v := range src.All() {
		name := string(k)
		if dropped(name) || named[strings.ToLower(name)] {
			continue
		}
		dst.AddBytesV(name, v)
	}
	if upgrade {
		dst.Set("Connection", "Upgrade")
		dst.SetBytesV("Upgrade", src.Peek("Upgrade"))
	}
}

// setIdentity adds the cluster credential and the impersonation headers.
func setIdentity(h *fasthttp.RequestHeader, bearer string, id Identity) {
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	if id.User == "" {
		// The gateway calling as itself (the node history): no
		// impersonation at all, rather than an empty user.
		return
	}
	h.Set("Impersonate-User", id.User)
	for _, g := range id.Groups {
		h.Add("Impersonate-Group", g)
	}
	for k, vals := range id.Extra {
		name := "Impersonate-Extra-" + url.PathEscape(strings.ToLower(k))
		for _, v := range vals {
			h.Add(name, v)
		}
	}
}

// copyResponseHeaders copies the cluster's response headers to dst as the
// cluster sent them, except hop-by-hop headers, Set-Cookie (a cluster must
// not set cookies on the gateway's origin) and Content-Length (the server
// frames the body it writes). Nothing is added: fasthttp would otherwise
// report a missing Content-Type as "text/plain; charset=utf-8", on a 304
// too, and kubectl's HTTP cache merges a 304's headers into the cached
// discovery document, which it then misreads.
func copyResponseHeaders(dst, src *fasthttp.ResponseHeader) {
	src.SetNoDefaultContentType(true)
	dst.SetNoDefaultContentType(true)
	for k, v := range src.All() {
		name := string(k)
		if strings.EqualFold(name, "Set-Cookie") || strings.EqualFold(name, "Content-Length") {
			continue
		}
		hop := false
		for _, h := range hopByHop {
			if strings.EqualFold(h, name) {
				hop = true
				break
			}
		}
		if !hop {
			dst.AddBytesV(name, v)
		}
	}
}

// TenantHeaders are set on every answer under the proxy prefixes. What a
// cluster answers is tenant content: a pod's or service's page through
// …/proxy/… would otherwise run its scripts on Berth's own origin, with the
// signed-in user's cookies. "sandbox" without tokens gives the document an
// opaque origin and runs no scripts, forms or plugins; it replaces any
// policy the cluster sent, being stricter than any of them. nosniff stops a
// browser from guessing an active type the cluster did not declare.
var TenantHeaders = [][2]string{
	{"Content-Security-Policy", "sandbox"},
	{"X-Content-Type-Options", "nosniff"},
}

// setTenantHeaders sets TenantHeaders on h.
func setTenantHeaders(h *fasthttp.ResponseHeader) {
	for _, kv := range TenantHeaders {
		h.Set(kv[0], kv[1])
	}
}

// foreignRedirect reports whether h, the cluster's answer to ctx, redirects
// to an origin other than the request's own (scheme and host as the client
// reached Berth). A cluster's
// redirect to anywhere else would make Berth an open redirector on its own
// origin, so the proxy does not pass it on (see refuseRedirect). Relative
// references stay on Berth's origin; backslashes and control characters,
// which browsers strip or read as "/" ("/\evil.example" is
// "//evil.example" to them), make a Location foreign.
func foreignRedirect(ctx *fasthttp.RequestCtx, h *fasthttp.ResponseHeader) bool {
	if code := h.StatusCode(); code < 300 || code > 399 {
		return false
	}
	loc := h.Peek(fasthttp.HeaderLocation)
	if len(loc) == 0 {
		return false
	}
	scheme, host := requestOrigin(ctx)
	return !sameOrigin(string(loc), scheme, host)
}

// sameOrigin reports whether loc, a Location value, resolves to
// scheme://host.
func sameOrigin(loc, scheme, host string) bool {
	for i := 0; i < len(loc); i++ {
		if c := loc[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return false
		}
	}
	u, err := url.Parse(loc)
	if err != nil {
		return false
	}
	if u.Scheme == "" && u.Host == "" && !strings.HasPrefix(loc, "//") {
		return true // a relative reference: a path on the same origin
	}
	return u.User == nil && u.Opaque == "" && strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, host)
}
