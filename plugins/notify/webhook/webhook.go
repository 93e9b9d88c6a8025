// Package webhook is the receiving side of Berth's webhook notifications:
// it verifies the signature the notify plugin puts on every delivery when
// the channel has a secret.
//
// A delivery is an HTTP POST of a JSON body with these headers:
//
//	Content-Type: application/json
//	User-Agent: berth-notify
//	X-Berth-Delivery: <idempotency key>       the same on every retry: de-duplicate on it
//	X-Berth-Event: <event type>               when the notification is about an event
//	X-Berth-Event-Id: <event id>              likewise
//	X-Berth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//	X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
//
// X-Berth-Signature binds the body to the time it was signed, so that a
// receiver can refuse a captured delivery replayed later: Verify checks
// both. X-Hub-Signature-256 is GitHub's format, for receivers that already
// check it; it cannot tell a replay.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names of a delivery.
const (
	DeliveryHeader     = "X-Berth-Delivery"
	EventHeader        = "X-Berth-Event"
	EventIDHeader      = "X-Berth-Event-Id"
	SignatureHeader    = "X-Berth-Signature"
	HubSignatureHeader = "X-Hub-Signature-256"
)

// DefaultTolerance is how far a signature's time may be from the
// receiver's clock: room for clock skew and a slow network, little for a
// replay.
const DefaultTolerance = 5 * time.Minute

// ErrSignature is wrapped by every error of Verify.
var ErrSignature = errors.New("webhook signature refused")

// Sign returns the X-Berth-Signature value for body signed at t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// SignHub returns the X-Hub-Signature-256 value for body.
func SignHub(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks an X-Berth-Signature header against the body exactly as
// received (before any JSON decoding) and the receiver's clock: the
// signature must be an HMAC-SHA256 with secret of "<t>.<body>", and t
// within tolerance of now, either way. A header may carry several v1
// values (while a secret is being rotated); one matching is enough. The
// error wraps ErrSignature and says what was wrong, never the expected
// signature.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrSignature)
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: malformed header", ErrSignature)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: two timestamps", ErrSignature)
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return fmt.Errorf("%w: malformed v1 signature", ErrSignature)
			}
			sigs = append(sigs, sig)
		}
		// Other keys are future schemes; they are ignored, not refused.
	}
	if ts == "" || len(sigs) == 0 {
		return fmt.Errorf("%w: header lacks t= or v1=", ErrSignature)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed timestamp", ErrSignature)
	}
	// Check the MAC before the time, so that a forged header learns
	// nothing from which check failed about the clock.
	want := mac(secret, ts, body)
	matched := false
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			matched = true
		}
	}
	if !matched {
		return fmt.Errorf("%w: signature does not match the body", ErrSignature)
	}
	age := now.Sub(time.Unix(unix, 0))
	if age > tolerance {
		return fmt.Errorf("%w: signed %s ago, longer than the tolerance of %s", ErrSignature, age.Truncate(time.Second), tolerance)
	}
	if -age > tolerance {
		return fmt.Errorf("%w: signed %s in the future, more than the tolerance of %s", ErrSignature, (-age).Truncate(time.Second), tolerance)
	}
	return nil
}
