package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/fault"
)

func TestWriteErrorMapsEveryKind(t *testing.T) {
	secret := errors.New("dial 10.9.8.7: refused")
	for _, tc := range []struct {
		err        error
		status     int
		code, msg  string
		retryAfter string
	}{
		{fault.New(fault.Invalid, "name is required"), 400, CodeInvalidRequest, "name is required", ""},
		{fault.New(fault.NotFound, "cluster %q not found", "a"), 404, CodeNotFound, `cluster \"a\" not found`, ""},
		{fmt.Errorf("wrapped: %w", fault.New(fault.Conflict, "taken")), 409, CodeConflict, "taken", ""},
		{fault.New(fault.QuotaExceeded, "50 keys at most"), 403, CodeQuotaExceeded, "50 keys at most", ""},
		{fault.New(fault.TooMany, "slow down").Retry(1500 * time.Millisecond), 429, CodeRateLimited, "slow down", "2"},
		{fault.Wrap(fault.Unavailable, secret, "cluster is unreachable"), 503, CodeUnavailable, "cluster is unreachable", ""},
		{fault.Wrap(fault.Internal, secret, "shown to nobody"), 500, CodeInternal, "internal error", ""},
		{secret, 500, CodeInternal, "internal error", ""},
	} {
		ctx := &fasthttp.RequestCtx{}
		WriteError(ctx, tc.err)
		body := string(ctx.Response.Body())
		if ctx.Response.StatusCode() != tc.status || !strings.Contains(body, `"error":"`+tc.code+`"`) || !strings.Contains(body, `"message":"`+tc.msg+`"`) {
			t.Errorf("%v: %d %s", tc.err, ctx.Response.StatusCode(), body)
		}
		if strings.Contains(body, "10.9.8.7") {
			t.Errorf("%v: the cause reached the client: %s", tc.err, body)
		}
		if got := string(ctx.Response.Header.Peek("Retry-After")); got != tc.retryAfter {
			t.Errorf("%v: Retry-After %q, want %q", tc.err, got, tc.retryAfter)
		}
	}
}

func TestServeLogsOnlyBerthsFaults(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for _, tc := range []struct {
		err    error
		logged bool
	}{
		{nil, false},
		{fault.New(fault.NotFound, "no such user"), false},
		{fault.Wrap(fault.Unavailable, errors.New("plugin crashed"), "billing is unavailable"), true},
		{errors.New("store: disk full"), true},
	} {
		logs.Reset()
		ctx := &fasthttp.RequestCtx{}
		Serve(log, func(*fasthttp.RequestCtx) error { return tc.err })(ctx)
		if got := logs.Len() > 0; got != tc.logged {
			t.Errorf("%v: logged %v, want %v (%s)", tc.err, got, tc.logged, logs.String())
		}
	}
}
