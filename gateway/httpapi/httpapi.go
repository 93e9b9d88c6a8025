// Package httpapi holds the conventions every Berth JSON endpoint shares:
// the error shape, strict JSON request decoding, list paging, and the
// per-request values (request id, principal) middleware and handlers pass
// along.
package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
)

// Error codes used in the "error" field of error responses.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeConflict             = "conflict"
	CodePayloadTooLarge      = "payload_too_large"
	CodeHeaderTooLarge       = "header_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeRateLimited          = "rate_limited"
	CodeInternal             = "internal_error"
	CodeUnavailable          = "unavailable"
	// CodeQuotaExceeded: the request would pass the caller's quota.
	CodeQuotaExceeded = "quota_exceeded"
)

// errorBody is the wire shape docs/architecture.md ("Errors") and docs/api.md fix.
type errorBody struct {
	Code      int    `json:"code"`
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// WriteJSON answers with status and v encoded as JSON.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = fasthttp.StatusInternalServerError
		data = []byte(`{"code":500,"error":"internal_error","message":"internal error"}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(append(data, '\n'))
}

// DecodeJSON reads the request body into v strictly: the content type must
// be JSON, unknown fields and trailing data are refused, and an empty body
// is an error. The error is a *fault.Error (Invalid or UnsupportedMediaType).
func DecodeJSON(ctx *fasthttp.RequestCtx, v any) error {
	ct := string(ctx.Request.Header.ContentType())
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return fault.New(fault.UnsupportedMediaType, "Content-Type must be application/json")
	}
	body := ctx.PostBody()
	if len(bytes.TrimSpace(body)) == 0 {
		return fault.New(fault.Invalid, "request body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fault.New(fault.Invalid, "invalid JSON body: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fault.New(fault.Invalid, "invalid JSON body: unexpected data after the JSON value")
	}
	return nil
}

// describeJSONError turns encoding/json's errors into a message that names
// the field but never echoes the offending value, which may be a secret.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be %s", typ.Field, typ.Type.String())
		}
		return fmt.Sprintf("expected %s", typ.Type.String())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	default:
		return "malformed JSON"
	}
}

// Page is the page of a list request.
type Page struct {
	Page     int
	PageSize int
}

// Paging defaults (docs/api.md).
const (
	DefaultPageSize = 20
	MaxPageSize     = 500
)

// ParsePage reads ?page=&page_size=, refusing non-numbers, zero, negatives
// and sizes over MaxPageSize rather than silently clamping them.
func ParsePage(ctx *fasthttp.RequestCtx) (Page, error) {
	p := Page{Page: 1, PageSize: DefaultPageSize}
	args := ctx.QueryArgs()
	for _, f := range []struct {
		name string
		dst  *int
		max  int
	}{{"page", &p.Page, 1 << 30}, {"page_size", &p.PageSize, MaxPageSize}} {
		raw := args.Peek(f.name)
		if raw == nil {
			continue
		}
		n, err := strconv.Atoi(string(raw))
		if err != nil || n < 1 || n > f.max {
			return p, fault.New(fault.Invalid, "%s must be a whole number from 1 to %d", f.name, f.max)
		}
		*f.dst = n
	}
	return p, nil
}

// List is the envelope of every paged list response.
type List[T any] struct {
	Items    []T `json:"items"`
	Total    int `json:"total"`
	Page     int `json:"page"`
	PageSize int `json:"page_size"`
}

// NewList wraps one page of items; a nil slice becomes [] on the wire.
func NewList[T any](items []T, total int, p Page) List[T] {
	if items == nil {
		items = []T{}
	}
	return List[T]{Items: items, Total: total, Page: p.Page, PageSize: p.PageSize}
}

const (
	requestIDKey       = "berth.request_id"
	clientRequestIDKey = "berth.client_request_id"
	principalKey       = "berth.principal"
)

// SetClientRequestID records the X-Request-Id the client sent (already
// checked to be short and plain), kept apart from Berth's own id.
func SetClientRequestID(ctx *fasthttp.RequestCtx, id string) {
	ctx.SetUserValue(clientRequestIDKey, id)
}

// ClientRequestID returns the client's own request id, or "" when it sent
// none (or one Berth refused to keep).
func ClientRequestID(ctx *fasthttp.RequestCtx) string {
	id, _ := ctx.UserValue(clientRequestIDKey).(string)
	return id
}

// SetRequestID records the request's id for handlers and logs.
func SetRequestID(ctx *fasthttp.RequestCtx, id string) { ctx.SetUserValue(requestIDKey, id) }

// RequestID returns the request's id, or "" before the middleware ran.
func RequestID(ctx *fasthttp.RequestCtx) string {
	id, _ := ctx.UserValue(requestIDKey).(string)
	return id
}

// SetPrincipal records who made the request (a user or key id, never a
// credential) for the access log and audit.
func SetPrincipal(ctx *fasthttp.RequestCtx, who string) { ctx.SetUserValue(principalKey, who) }

// Principal returns what SetPrincipal recorded, or "".
func Principal(ctx *fasthttp.RequestCtx) string {
	p, _ := ctx.UserValue(principalKey).(string)
	return p
}
