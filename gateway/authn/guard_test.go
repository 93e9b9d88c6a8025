package authn

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/gateway/ratelimit"
)

// The guard's refusals reach the client through httpapi.Serve in Berth's
// error shape: 401 with a Bearer challenge, 429 with Retry-After naming
// the seconds the message names, and the handler is not run.
func TestGuardRefusals(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	limiter := ratelimit.New(ratelimit.Options{Now: func() time.Time { return now }, Scopes: map[string]ratelimit.Limit{
		ratelimit.ScopeAuth: ratelimit.PerPeriod(1, time.Minute, 1),
	}})
	a, err := New(Options{Limiter: limiter, Trusted: &ratelimit.Trusted{}})
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	ok := func(ctx *fasthttp.RequestCtx) error { ran++; return nil }
	tests := []struct {
		name      string
		route     Route
		status    int
		code      string
		message   string
		challenge string
		retry     string
		runs      int
	}{
		{"public, first", Route{Permission: Public, AddrScope: ratelimit.ScopeAuth}, 200, "", "", "", "", 1},
		{"public, over the address limit", Route{Permission: Public, AddrScope: ratelimit.ScopeAuth}, 429, "rate_limited",
			"too many requests; retry in 60 seconds", "", "60", 0},
		{"signed in, no credentials", Route{Permission: SignedIn}, 401, "unauthorized",
			"sign in, or send Authorization: Bearer <token>", `Bearer realm="berth"`, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran = 0
			tt.route.Handler = ok
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI("/api/v1/x")
			httpapi.Serve(nil, a.Guard(tt.route))(&ctx)
			if got := ctx.Response.StatusCode(); got != tt.status {
				t.Fatalf("status %d, want %d: %s", got, tt.status, ctx.Response.Body())
			}
			if ran != tt.runs {
				t.Errorf("handler ran %d times, want %d", ran, tt.runs)
			}
			if h := string(ctx.Response.Header.Peek(fasthttp.HeaderWWWAuthenticate)); h != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", h, tt.challenge)
			}
			if h := string(ctx.Response.Header.Peek(fasthttp.HeaderRetryAfter)); h != tt.retry {
				t.Errorf("Retry-After %q, want %q", h, tt.retry)
			}
			if tt.code == "" {
				return
			}
			var body struct{ Error, Message string }
			if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil || body.Error != tt.code || body.Message != tt.message {
				t.Errorf("body %s, want %s %q", ctx.Response.Body(), tt.code, tt.message)
			}
		})
	}
}
