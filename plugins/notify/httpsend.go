package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxResponse bounds how much of a peer's answer is read: enough for any
// JSON reply of Slack or Telegram, small enough that a hostile receiver
// cannot make the plugin buffer much.
const maxResponse = 64 << 10

// answer is an HTTP peer's reply, its body read up to maxResponse.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// post sends one POST through the guarded client. what names the peer in
// errors; the URL never appears in them.
func post(ctx context.Context, rt *runtime, what, rawURL string, header http.Header, body []byte) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return answer{}, invalidf("%s: bad URL", what)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := rt.http.Do(req)
	if err != nil {
		return answer{}, transportErr(what, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return answer{}, transportErr(what+": reading the answer", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(h http.Header) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// retryMargin is the time a retry needs after the wait: one more round
// trip to the peer.
const retryMargin = time.Second

// waitToRetry waits d if that leaves time for one more attempt within
// ctx's deadline, and reports whether it did. Peers that ask for a pause
// (HTTP 429, Telegram's retry_after) get it when it is short; when it is
// not, the gateway's own retry schedule takes over.
func waitToRetry(ctx context.Context, d time.Duration) bool {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d+retryMargin {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
