// Package middleware holds the wrappers every request passes through before
// the router: request id, security headers, access log and panic recovery.
package middleware

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

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

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SecurityHeaders sets the headers every response carries. It sets them
// after the handler so that handlers which reset the response (as
// fasthttp's ctx.Error does) cannot drop them.
func SecurityHeaders() Middleware {
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			next(ctx)
			h := &ctx.Response.Header
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
			h.Set("X-Frame-Options", "DENY")
			if ctx.IsTLS() {
				h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
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

// AccessLog writes one structured line per request. The query string is
// logged with secret-bearing parameters redacted; headers, cookies and
// bodies are never logged. clientIP resolves the client's address through
// trusted proxies (nil: the socket peer); when it differs from the peer,
// both are logged.
func AccessLog(log *slog.Logger, clientIP func(*fasthttp.RequestCtx) string) Middleware {
	h := log.Handler()
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			start := time.Now()
			next(ctx)
			if !h.Enabled(ctx, slog.LevelInfo) {
				return
			}
			// The record goes straight to the handler: Logger.LogAttrs would
			// also walk the stack for a source location on every request,
			// which the access log has no use for (pc 0: no source).
			r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
			r.AddAttrs(
				slog.String("request_id", httpapi.RequestID(ctx)),
				slog.String("method", string(ctx.Method())),
				slog.String("route", Route(ctx)),
				slog.String("path", string(ctx.Path())),
				slog.Int("status", ctx.Response.StatusCode()),
				slog.Int("bytes", responseBytes(ctx)),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			)
			peer := ctx.RemoteIP().String()
			client := peer
			if clientIP != nil {
				client = clientIP(ctx)
			}
			r.AddAttrs(slog.String("client", client))
			if client != peer {
				r.AddAttrs(slog.String("peer", peer))
			}
			if q := RedactQuery(ctx.QueryArgs().String()); q != "" {
				r.AddAttrs(slog.String("query", q))
			}
			if p := httpapi.Principal(ctx); p != "" {
				r.AddAttrs(slog.String("principal", p))
			}
			if c := httpapi.ClientRequestID(ctx); c != "" {
				r.AddAttrs(slog.String("client_request_id", c))
			}
			_ = h.Handle(ctx, r)
		}
	}
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
// password, signature, code or credential is redacted.
func RedactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		name, _, hasValue := strings.Cut(p, "=")
		if hasValue && secretParam(name) {
			parts[i] = name + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

var secretWords = []string{"token", "key", "secret", "password", "passwd", "pwd", "sig", "code", "credential", "auth", "session", "cookie"}

func secretParam(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	name = strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
