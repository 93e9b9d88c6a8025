package proxy

import (
	"bytes"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/internal/readmap"
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
	// AuditID, if set, becomes the Audit-ID header. The API server takes
	// it as the id of the request's audit event (and answers it in
	// Audit-Id), so the gateway sends its own request id: the cluster's
	// audit log and Berth's records then name a request alike. A client's
	// Audit-ID never reaches the cluster.
	AuditID string
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

// droppedExact are the other client headers that never reach a cluster:
// credentials for Berth, headers the proxy sets itself, and headers the
// API server or the kubelet would act on for whoever sent them.
//   - Audit-ID: the API server takes it, unchecked and of any length, as
//     the id of the request's audit event, so a client's own would let it
//     pass a request for another's in the cluster's audit log.
//   - traceparent, tracestate, baggage: the kubelet, which the API server
//     hands exec, attach and port-forward upgrades with all their headers,
//     follows a caller's trace context (a sampled parent makes it record
//     and export spans under the caller's trace id), and the API server
//     passes baggage on to admission webhooks.
var droppedExact = []string{"authorization", "cookie", "host", "content-length", "x-request-id", "audit-id", "x-real-ip", "forwarded",
	"traceparent", "tracestate", "baggage"}

// droppedPrefixes start the names of headers that may choose an identity:
// Impersonate-*, and the front-proxy (request-header) authentication's
// X-Remote-* and the X-Forwarded-* that clusters configure as its
// username and group headers (X-Forwarded-User, X-Forwarded-Groups) —
// trusted when the connection's client certificate is one the cluster
// takes from a front proxy. X-Forwarded-For, -Host and -Proto go with
// them: Berth is the client's proxy, and a cluster must not read them as
// the client's word.
var droppedPrefixes = []string{"impersonate-", "x-remote-", "x-forwarded-"}

// dropped reports whether a client header must not reach the cluster:
// credentials for Berth, any attempt to choose an identity
// (droppedPrefixes), hop-by-hop headers, headers the proxy sets itself and
// those the cluster would act on for their sender (droppedExact). It
// compares bytes without case, allocating nothing: it runs for every
// header of every request.
func dropped(name []byte) bool {
	for _, p := range droppedPrefixes {
		if hasPrefixFold(name, p) {
			return true
		}
	}
	return oneOfFold(name, droppedExact) || oneOfFold(name, hopByHop)
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && equalFold(b[:len(prefix)], prefix)
}

func oneOfFold(b []byte, names []string) bool {
	for _, n := range names {
		if len(n) == len(b) && equalFold(b, n) {
			return true
		}
	}
	return false
}

// equalFold is strings.EqualFold for a header name (ASCII) in bytes.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// connectionNamed reports whether the client's Connection headers name
// name, which makes it hop-by-hop by declaration.
func connectionNamed(conn [][]byte, name []byte) bool {
	for _, v := range conn {
		for t := range headerTokens(v) {
			if bytes.EqualFold(t, name) {
				return true
			}
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
	conn := src.PeekAll("Connection")
	for k, v := range src.All() {
		if dropped(k) || (len(conn) > 0 && connectionNamed(conn, k)) {
			continue
		}
		dst.AddBytesKV(k, v)
	}
	if upgrade {
		dst.Set("Connection", "Upgrade")
		dst.SetBytesV("Upgrade", src.Peek("Upgrade"))
	}
}

// bearerHeader is the Authorization value for a cluster's token, made
// once per cluster rather than per request.
func bearerHeader(token string) []byte {
	if token == "" {
		return nil
	}
	return []byte("Bearer " + token)
}

// extraNames caches "Impersonate-Extra-" + the escaped key: the keys are
// the gateway's few fixed ones, and the name is needed on every request.
var extraNames = readmap.Map[string, string]{Limit: 64}

// extraHeaderName is the header carrying extra k: lower-cased and
// percent-encoded as the API server expects.
func extraHeaderName(k string) string {
	return extraNames.Get(k, func() string { return "Impersonate-Extra-" + url.PathEscape(strings.ToLower(k)) })
}

// setIdentity adds the cluster credential (authorization: the whole
// Authorization value, see bearerHeader) and the impersonation headers.
func setIdentity(h *fasthttp.RequestHeader, authorization []byte, id Identity) {
	if len(authorization) > 0 {
		h.SetBytesV("Authorization", authorization)
	}
	if id.AuditID != "" {
		h.Set("Audit-ID", id.AuditID)
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
		name := extraHeaderName(k)
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
		if equalFold(k, "Set-Cookie") || equalFold(k, "Content-Length") || oneOfFold(k, hopByHop) {
			continue
		}
		dst.AddBytesKV(k, v)
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

// tenantHeaders is TenantHeaders as bytes, set on every proxied answer.
var tenantHeaders = func() (out [][2][]byte) {
	for _, kv := range TenantHeaders {
		out = append(out, [2][]byte{[]byte(kv[0]), []byte(kv[1])})
	}
	return out
}()

// setTenantHeaders sets TenantHeaders on h.
func setTenantHeaders(h *fasthttp.ResponseHeader) {
	for _, kv := range tenantHeaders {
		h.SetCanonical(kv[0], kv[1])
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
