// Package middleware holds the wrappers every request passes through before
// the router: request id, security headers, access log and panic recovery.
package middleware

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/httpapi"
)

// Middleware wraps a handler.
type Middleware func(fasthttp.RequestHandler) fasthttp.RequestHandler

// Chain applies mws so that the first is outermost.
func Chain(h fasthttp.RequestHandler, mws ...Middleware) fasthttp.RequestHandler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// RequestIDHeader carries the request id in and out.
const RequestIDHeader = "X-Request-Id"

// RequestID gives every request an id of Berth's own making and returns
// it in X-Request-Id. A client's X-Request-Id is never taken as Berth's
// id: the id goes into audit events and, as an impersonated extra, into
// the cluster's audit log, where a chosen value could tie a request to
// someone else's or hide it among them. The client's id is kept apart
// (httpapi.ClientRequestID) when it is short and plain, so it cannot
// forge log lines or bloat them, and the access log and audit events
// carry it as client_request_id.
func RequestID() Middleware {
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			id := newRequestID()
			httpapi.SetRequestID(ctx, id)
			if sent := string(ctx.Request.Header.Peek(RequestIDHeader)); SaneRequestID(sent) {
				httpapi.SetClientRequestID(ctx, sent)
			}
			next(ctx)
			ctx.Response.Header.Set(RequestIDHeader, id)
		}
	}
}

// BufferBody reads a streamed request body into memory, at most max bytes,
// before next runs, so handlers can use ctx.PostBody. The server streams
// bodies for the proxy's sake and no longer bounds them itself; a longer
// body is answered 413 and its connection closed, since the rest of it is
// still unread.
func BufferBody(max int) Middleware {
	return BufferBodyFrom(max, func(ctx *fasthttp.RequestCtx) io.Reader { return ctx.RequestBodyStream() })
}

// BufferBodyFrom is BufferBody reading the body through open's reader (one
// that enforces a minimum rate, say). A read error that is a timeout is
// answered 408, any other 400.
func BufferBodyFrom(max int, open func(*fasthttp.RequestCtx) io.Reader) Middleware {
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			if !ctx.Request.IsBodyStream() {
				next(ctx)
				return
			}
			tooLarge := func() {
				ctx.SetConnectionClose()
				httpapi.WriteError(ctx, fault.New(fault.TooLarge, "request body is larger than %d bytes", max))
			}
			if ctx.Request.Header.ContentLength() > max {
				tooLarge()
				return
			}
			body, err := io.ReadAll(io.LimitReader(open(ctx), int64(max)+1))
			var timeout interface{ Timeout() bool }
			switch {
			case errors.As(err, &timeout) && timeout.Timeout():
				httpapi.WriteError(ctx, fault.New(fault.Timeout, "the request body arrived too slowly"))
				ctx.SetConnectionClose()
				return
			case err != nil:
				httpapi.WriteError(ctx, fault.New(fault.Invalid, "the request body could not be read"))
				ctx.SetConnectionClose()
				return
			}
			if len(body) > max {
				tooLarge()
				return
			}
			ctx.Request.SetBodyRaw(body)
			next(ctx)
		}
	}
}

// SaneRequestID accepts 1–128 characters of letters, digits and ._:- .
func SaneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// newRequestID makes 96 random bits, in hex. They come from the runtime's
// per-thread ChaCha8 generator (math/rand/v2), seeded by the kernel: ids
// must not repeat or be guessable from others, but are no secret, and the
// generator is several times cheaper than a getrandom call per request.
func newRequestID() string {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32())
	var out [24]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// securityHeaders and hstsHeader are SecurityHeaders' headers, in
// canonical form and as bytes: they are set on every response.
var (
	securityHeaders = [][2][]byte{
		{[]byte("X-Content-Type-Options"), []byte("nosniff")},
		{[]byte("Referrer-Policy"), []byte("strict-origin-when-cross-origin")},
		{[]byte("X-Frame-Options"), []byte("DENY")},
	}
	hstsHeader = [2][]byte{[]byte("Strict-Transport-Security"), []byte("max-age=31536000; includeSubDomains")}
)

// SecurityHeaders sets the headers every response carries. It sets them
// after the handler so that handlers which reset the response (as
// fasthttp's ctx.Error does) cannot drop them.
func SecurityHeaders() Middleware {
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			next(ctx)
			h := &ctx.Response.Header
			for _, kv := range securityHeaders {
				h.SetCanonical(kv[0], kv[1])
			}
			if ctx.IsTLS() {
				h.SetCanonical(hstsHeader[0], hstsHeader[1])
			}
		}
	}
}

// Recover turns a panic into a 500 JSON error without a stack trace in the
// response; the stack goes to the log with the request id.
func Recover(log *slog.Logger) Middleware {
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			defer func() {
				if r := recover(); r != nil {
					log.Error("panic while serving request",
						"request_id", httpapi.RequestID(ctx),
						"route", Route(ctx),
						"panic", fmt.Sprint(r),
						"stack", stack())
					ctx.Response.Reset()
					httpapi.WriteError(ctx, nil)
				}
			}()
			next(ctx)
		}
	}
}

// Route returns the matched route pattern (bounded, unlike the raw path)
// for logs and metrics, or "unmatched".
func Route(ctx *fasthttp.RequestCtx) string {
	if r, ok := ctx.UserValue(router.MatchedRoutePathParam).(string); ok && r != "" {
		return r
	}
	return "unmatched"
}

// AccessLog writes one structured line per request through log. The
// query string is logged with secret-bearing parameters redacted; headers,
// cookies and bodies are never logged. clientIP resolves the client's
// address through trusted proxies (nil: the socket peer); when it differs
// from the peer, both are logged.
func AccessLog(log *slog.Logger, clientIP func(*fasthttp.RequestCtx) string) Middleware {
	return AccessLogJSON(log, nil, clientIP)
}

// AccessLogJSON is AccessLog writing each line, when json is not nil,
// straight to json (the writer log's JSON handler writes to) in the shape
// that handler gives it: slog would build a record, walk its attributes
// and encode the duration with encoding/json, which on a proxied request
// cost as much as the rest of the gateway's bookkeeping. log still decides
// whether the line is written (its level). A nil json goes through log.
func AccessLogJSON(log *slog.Logger, json io.Writer, clientIP func(*fasthttp.RequestCtx) string) Middleware {
	h := log.Handler()
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			start := time.Now()
			next(ctx)
			if !h.Enabled(ctx, slog.LevelInfo) {
				return
			}
			e := newAccessEntry(ctx, start, clientIP)
			if json == nil {
				// The record goes straight to the handler: Logger.LogAttrs
				// would also walk the stack for a source location, which
				// the access log has no use for (pc 0: no source).
				_ = h.Handle(ctx, e.record())
				return
			}
			buf := linePool.Get().(*[]byte)
			*buf = e.appendJSON((*buf)[:0])
			_, _ = json.Write(*buf)
			if cap(*buf) <= 4<<10 {
				linePool.Put(buf)
			}
		}
	}
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// accessEntry is what an access line says.
type accessEntry struct {
	time                                            time.Time
	requestID, method, route, path                  string
	status, bytes                                   int
	durationMS                                      float64
	client, peer, query, principal, clientRequestID string
}

func newAccessEntry(ctx *fasthttp.RequestCtx, start time.Time, clientIP func(*fasthttp.RequestCtx) string) accessEntry {
	now := time.Now()
	e := accessEntry{
		time:            now,
		requestID:       httpapi.RequestID(ctx),
		method:          string(ctx.Method()),
		route:           Route(ctx),
		path:            string(ctx.Path()),
		status:          ctx.Response.StatusCode(),
		bytes:           responseBytes(ctx),
		durationMS:      float64(now.Sub(start).Microseconds()) / 1000,
		principal:       httpapi.Principal(ctx),
		clientRequestID: httpapi.ClientRequestID(ctx),
	}
	peer := ctx.RemoteIP().String()
	e.client = peer
	if clientIP != nil {
		e.client = clientIP(ctx)
	}
	if e.client != peer {
		e.peer = peer
	}
	if q := ctx.URI().QueryString(); len(q) > 0 {
		e.query = RedactQuery(string(q))
	}
	return e
}

// record is the entry as a slog record, for handlers of other formats.
func (e *accessEntry) record() slog.Record {
	r := slog.NewRecord(e.time, slog.LevelInfo, "request", 0)
	r.AddAttrs(
		slog.String("request_id", e.requestID),
		slog.String("method", e.method),
		slog.String("route", e.route),
		slog.String("path", e.path),
		slog.Int("status", e.status),
		slog.Int("bytes", e.bytes),
		slog.Float64("duration_ms", e.durationMS),
		slog.String("client", e.client),
	)
	for _, a := range e.optional() {
		if a[1] != "" {
			r.AddAttrs(slog.String(a[0], a[1]))
		}
	}
	return r
}

func (e *accessEntry) optional() [4][2]string {
	return [4][2]string{{"peer", e.peer}, {"query", e.query}, {"principal", e.principal}, {"client_request_id", e.clientRequestID}}
}

// appendJSON appends the line slog.JSONHandler writes for record(),
// newline included (TestAccessLineMatchesSlog holds the two together).
func (e *accessEntry) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = e.time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","request_id":`...)
	b = appendJSONString(b, e.requestID)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.method)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, e.route)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(e.bytes), 10)
	b = append(b, `,"duration_ms":`...)
	// encoding/json writes a float64 in [1e-6, 1e21) as 'f' with the
	// shortest precision; a duration in whole microseconds over 1000 is
	// 0 or at least 0.001, and never near 1e21.
	b = strconv.AppendFloat(b, e.durationMS, 'f', -1, 64)
	b = append(b, `,"client":`...)
	b = appendJSONString(b, e.client)
	for _, a := range e.optional() {
		if a[1] != "" {
			b = append(b, ',', '"')
			b = append(b, a[0]...)
			b = append(b, '"', ':')
			b = appendJSONString(b, a[1])
		}
	}
	return append(b, '}', '\n')
}

// appendJSONString appends s quoted as slog's JSON handler quotes strings:
// control characters, quote and backslash escaped, invalid UTF-8 as
// U+FFFD, U+2028 and U+2029 escaped, <, > and & left alone.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// responseBytes is the body size without touching a streamed body, which
// reading would consume.
func responseBytes(ctx *fasthttp.RequestCtx) int {
	if ctx.Response.IsBodyStream() {
		return ctx.Response.Header.ContentLength()
	}
	return len(ctx.Response.Body())
}

func stack() string { return string(debug.Stack()) }

// RedactQuery replaces the values of parameters that may carry a secret.
// It errs on the side of hiding: any name mentioning a token, key, secret,
// password, signature, code or credential is redacted. raw is the query as
// the client sent it. Its names are read decoded, and more leniently than
// any server reads them: an invalid escape is kept as it is rather than
// making the whole name unreadable ("%74oken%zz" is fasthttp's
// "token%zz"), an encoding under another ("%2574oken") is undone too, and
// ';' separates parameters as '&' does, as some servers behind the
// proxy's service and pod paths still read it. A query with nothing to
// redact is returned as it is.
func RedactQuery(raw string) string {
	var b []byte // nil until a value is redacted
	start := 0   // raw[start:] is not yet in b
	for i := 0; i < len(raw); {
		end := i + strings.IndexAny(raw[i:], "&;")
		if end < i {
			end = len(raw)
		}
		name, _, hasValue := strings.Cut(raw[i:end], "=")
		switch {
		case hasValue && secretParam(name):
			b = append(b, raw[start:i+len(name)+1]...)
			b = append(b, "REDACTED"...)
			start = end
		case !hasValue && (len(name) > maxBareName || strings.Contains(unescapeLenient(name), "=") && secretParam(name)):
			// No '=': a bare value (a token pasted as the whole query) or
			// an encoded one ("token%3Dabc", which decodes to a pair).
			b = append(b, raw[start:i]...)
			b = append(b, "REDACTED"...)
			start = end
		}
		i = end + 1
	}
	if b == nil {
		return raw
	}
	return string(append(b, raw[start:]...))
}

// maxBareName is the longest query part without '=' logged as it is:
// longer ones may be a credential pasted as the whole query.
const maxBareName = 64

var secretWords = []string{"token", "key", "secret", "password", "passwd", "pwd", "sig", "code", "credential", "auth", "session", "cookie"}

func secretParam(name string) bool {
	// Each round undoes one encoding; a few cover any a client means.
	for range 4 {
		d := unescapeLenient(name)
		if d == name {
			break
		}
		name = d
	}
	name = strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// unescapeLenient decodes a query name as fasthttp decodes its arguments:
// %XX escapes and '+' as a space, an invalid escape kept as it is.
func unescapeLenient(s string) string {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
