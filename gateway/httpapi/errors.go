package httpapi

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
)

// Handler is the signature of every Berth API handler: it writes its
// answer on success and returns an error otherwise, which Serve turns into
// the error body. Handlers never write error responses themselves.
type Handler func(ctx *fasthttp.RequestCtx) error

// Serve adapts h to fasthttp: an error h returns is logged when it is
// Berth's fault (kind Internal, or any kind with a cause) and answered by
// WriteError. It is the one place handler errors become responses.
func Serve(log *slog.Logger, h Handler) fasthttp.RequestHandler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx *fasthttp.RequestCtx) {
		err := h(ctx)
		if err == nil {
			return
		}
		var fe *fault.Error
		isFault := errors.As(err, &fe)
		switch {
		case !isFault:
			log.Error("request failed", "request_id", RequestID(ctx), "method", string(ctx.Method()), "route", string(ctx.Path()), "err", err)
		case fe.Kind == fault.Internal || fe.Cause != nil:
			log.Warn("request refused", "request_id", RequestID(ctx), "method", string(ctx.Method()), "route", string(ctx.Path()), "kind", fe.Kind.String(), "err", err)
		}
		WriteError(ctx, err)
	}
}

// statuses maps each fault kind to its HTTP status and the stable code in
// the error body's "error" field (docs/api.md lists them; scripts rely on them).
var statuses = map[fault.Kind]struct {
	status int
	code   string
}{
	fault.Internal:             {fasthttp.StatusInternalServerError, CodeInternal},
	fault.Invalid:              {fasthttp.StatusBadRequest, CodeInvalidRequest},
	fault.Unauthenticated:      {fasthttp.StatusUnauthorized, CodeUnauthorized},
	fault.Forbidden:            {fasthttp.StatusForbidden, CodeForbidden},
	fault.QuotaExceeded:        {fasthttp.StatusForbidden, CodeQuotaExceeded},
	fault.NotFound:             {fasthttp.StatusNotFound, CodeNotFound},
	fault.MethodNotAllowed:     {fasthttp.StatusMethodNotAllowed, CodeMethodNotAllowed},
	fault.Timeout:              {fasthttp.StatusRequestTimeout, CodeInvalidRequest},
	fault.Conflict:             {fasthttp.StatusConflict, CodeConflict},
	fault.TooLarge:             {fasthttp.StatusRequestEntityTooLarge, CodePayloadTooLarge},
	fault.UnsupportedMediaType: {fasthttp.StatusUnsupportedMediaType, CodeUnsupportedMediaType},
	fault.HeaderTooLarge:       {fasthttp.StatusRequestHeaderFieldsTooLarge, CodeHeaderTooLarge},
	fault.TooMany:              {fasthttp.StatusTooManyRequests, CodeRateLimited},
	fault.BadGateway:           {fasthttp.StatusBadGateway, CodeUnavailable},
	fault.Unavailable:          {fasthttp.StatusServiceUnavailable, CodeUnavailable},
	fault.GatewayTimeout:       {fasthttp.StatusGatewayTimeout, CodeUnavailable},
}

// StatusOf returns the HTTP status and error code of a fault kind.
func StatusOf(k fault.Kind) (status int, code string) {
	s, ok := statuses[k]
	if !ok {
		s = statuses[fault.Internal]
	}
	return s.status, s.code
}

// WriteError answers with the error shape. A *fault.Error answers with its
// kind's status and its Message (plus Retry-After when set); any other
// error becomes a generic 500, so internal text never reaches a client.
func WriteError(ctx *fasthttp.RequestCtx, err error) {
	var fe *fault.Error
	status, code, msg := fasthttp.StatusInternalServerError, CodeInternal, "internal error"
	switch {
	case errors.As(err, &fe):
		status, code = StatusOf(fe.Kind)
		if fe.Kind != fault.Internal && fe.Message != "" {
			msg = fe.Message
		}
		if fe.RetryAfter > 0 {
			secs := int64((fe.RetryAfter + time.Second - 1) / time.Second)
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, strconv.FormatInt(secs, 10))
		}
	}
	WriteJSON(ctx, status, errorBody{Code: status, Error: code, Message: msg, RequestID: RequestID(ctx)})
}
