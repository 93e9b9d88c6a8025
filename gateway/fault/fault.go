// Package fault is Berth's one error vocabulary. Every refusal and failure
// a handler, a service or a store can report to a caller is an *Error: a
// Kind (what went wrong, which decides the HTTP status), a Message that is
// safe to show the caller, and a wrapped Cause that is logged and never
// shown. httpapi.WriteError is the one place that turns an error into an
// HTTP answer (docs/architecture.md, "Errors").
//
// The package is a leaf: it imports only the standard library, so stores,
// services and handlers can all use it.
package fault

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an Error. The zero Kind is Internal.
type Kind int

// The kinds, with the HTTP status httpapi answers them with.
const (
	Internal             Kind = iota // 500: a bug or a failure the caller cannot act on
	Invalid                          // 400: the request is malformed; retrying it cannot help
	Unauthenticated                  // 401: no credentials, or credentials that are not valid
	Forbidden                        // 403: valid credentials that may not do this
	QuotaExceeded                    // 403: the request would pass the caller's quota
	NotFound                         // 404: no such thing, or not the caller's to see
	MethodNotAllowed                 // 405: the path exists, the method does not
	Timeout                          // 408: the client sent its request too slowly
	Conflict                         // 409: clashes with the current state
	TooLarge                         // 413: the request body is too large
	UnsupportedMediaType             // 415: the body is not in a type the endpoint reads
	HeaderTooLarge                   // 431: the request headers are too large
	TooMany                          // 429: a rate or concurrency limit; RetryAfter says when to come back
	BadGateway                       // 502: a cluster or plugin answered in a way Berth cannot use
	Unavailable                      // 503: a dependency is down or not ready; the same call may succeed later
	GatewayTimeout                   // 504: a dependency did not answer in time
)

var kindNames = [...]string{
	Internal: "internal", Invalid: "invalid", Unauthenticated: "unauthenticated",
	Forbidden: "forbidden", QuotaExceeded: "quota exceeded", NotFound: "not found",
	MethodNotAllowed: "method not allowed", Timeout: "timeout", Conflict: "conflict",
	TooLarge: "too large", UnsupportedMediaType: "unsupported media type",
	HeaderTooLarge: "header too large", TooMany: "too many requests",
	BadGateway: "bad gateway", Unavailable: "unavailable", GatewayTimeout: "gateway timeout",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is a classified error. Message is written for the caller and must
// not carry internal detail (paths, addresses, upstream bodies, secrets);
// Cause carries that detail to the log.
type Error struct {
	Kind    Kind
	Message string
	Cause   error
	// RetryAfter, when positive, is sent as the Retry-After header
	// (TooMany, Unavailable).
	RetryAfter time.Duration
}

// Error returns the message and, after it, the cause: the full text is for
// logs and tests, never for the caller (that is Message alone).
func (e *Error) Error() string {
	if e.Cause == nil {
		return e.Message
	}
	if e.Message == "" {
		return e.Cause.Error()
	}
	return e.Message + ": " + e.Cause.Error()
}

// Unwrap returns the cause, so errors.Is and errors.As see through an Error.
func (e *Error) Unwrap() error { return e.Cause }

// New returns an Error of kind k with a formatted message.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error of kind k with a formatted message that keeps cause
// for the log.
func Wrap(k Kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// Retry returns e with RetryAfter set to d, for chaining:
// fault.New(fault.TooMany, "…").Retry(10*time.Second).
func (e *Error) Retry(d time.Duration) *Error {
	e.RetryAfter = d
	return e
}

// KindOf reports the kind of the first *Error in err's chain, and Internal
// for an error that carries none (nil included: callers check nil first).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err's chain holds an *Error of kind k.
func Is(err error, k Kind) bool {
	if err == nil {
		return false // and e below, which escapes, is not allocated on the hot path
	}
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}
