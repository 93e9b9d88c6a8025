package webhook_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/plugins/notify/webhook"
)

// A receiver verifies each delivery before it trusts it: it reads the raw
// body (bounded), checks X-Berth-Signature against it and its own clock,
// and only then decodes the JSON. X-Berth-Delivery is the same on every
// retry of one notification: remember it to act once.
func ExampleVerify() {
	secret := []byte("the channel's secret setting")

	var mu sync.Mutex
	seen := map[string]bool{}
	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		sig := r.Header.Get(webhook.SignatureHeader)
		if err := webhook.Verify(secret, sig, body, time.Now(), webhook.DefaultTolerance); err != nil {
			// 401 tells Berth the delivery was refused; it is not retried.
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		duplicate := seen[r.Header.Get(webhook.DeliveryHeader)]
		seen[r.Header.Get(webhook.DeliveryHeader)] = true
		mu.Unlock()
		if duplicate {
			w.WriteHeader(http.StatusOK) // already handled: acknowledge again
			return
		}
		// ... decode body as JSON and act on it ...
		w.WriteHeader(http.StatusNoContent)
	})

	// What the notify plugin sends, and a forgery.
	deliver := func(body, signature string) int {
		req := httptest.NewRequest(http.MethodPost, "/hooks/berth", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(webhook.DeliveryHeader, "notif-42")
		req.Header.Set(webhook.SignatureHeader, signature)
		rec := httptest.NewRecorder()
		receiver.ServeHTTP(rec, req)
		return rec.Code
	}
	body := `{"subject":"Cluster ready","text":"edge-1 is ready","idempotency_key":"notif-42"}`
	signature := webhook.Sign(secret, []byte(body), time.Now())

	fmt.Println("genuine:", deliver(body, signature))
	fmt.Println("retry:", deliver(body, signature))
	fmt.Println("tampered:", deliver(strings.Replace(body, "edge-1", "edge-9", 1), signature))
	fmt.Println("replayed an hour later:", deliver(body, webhook.Sign(secret, []byte(body), time.Now().Add(-time.Hour))))
	// Output:
	// genuine: 204
	// retry: 200
	// tampered: 401
	// replayed an hour later: 401
}
