package main

import (
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/stripe/stripe-go/v84"
	"github.com/stripe/stripe-go/v84/webhook"
)

// The webhook tests sign their payloads with stripe-go's own test helper,
// as Stripe signs them, and hand the plugin the exact bytes.

// event is the JSON of a Stripe event carrying object.
func event(id, typ string, object map[string]any) []byte {
	body, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripe.APIVersion, "created": 1767225600, "livemode": false,
		"pending_webhooks": 1, "type": typ, "data": map[string]any{"object": object},
	})
	if err != nil {
		panic(err)
	}
	return body
}

// signed signs body with secret at a time, as Stripe does.
func signed(body []byte, secret string, at time.Time) http.Header {
	p := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at})
	return http.Header{"Stripe-Signature": {p.Header}, "Content-Type": {"application/json; charset=utf-8"}}
}

var checkoutMetadata = map[string]any{"order_id": "ord_1", "user_id": "usr_1", "plan_id": "pro", "tenant": "acme"}

func session(paymentStatus string, subscription any) map[string]any {
	return map[string]any{
		"id": "cs_test_1", "object": "checkout.session", "client_reference_id": "ord_1", "metadata": checkoutMetadata,
		"customer": "cus_1", "subscription": subscription, "invoice": nil, "amount_total": 2900, "currency": "eur",
		"status": "complete", "payment_status": paymentStatus, "mode": "subscription",
	}
}

func invoiceObject(paid bool) map[string]any {
	status, paidAmount := "paid", 2900
	if !paid {
		status, paidAmount = "open", 0
	}
	return map[string]any{
		"id": "in_1", "object": "invoice", "customer": "cus_1", "status": status, "currency": "eur",
		"amount_due": 2900, "amount_paid": paidAmount, "metadata": map[string]any{},
		"parent": map[string]any{"type": "subscription_details", "subscription_details": map[string]any{
			"subscription": "sub_1", "metadata": checkoutMetadata,
		}},
		"lines": map[string]any{"object": "list", "has_more": false, "url": "/v1/invoices/in_1/lines", "data": []any{
			map[string]any{"id": "il_1", "object": "line_item", "period": map[string]any{"start": 1767225600, "end": 1769904000}},
		}},
	}
}

func subscriptionObject(status string, cancelAtPeriodEnd bool) map[string]any {
	return map[string]any{
		"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": status, "currency": "eur",
		"cancel_at_period_end": cancelAtPeriodEnd, "metadata": checkoutMetadata,
		"items": map[string]any{"object": "list", "has_more": false, "url": "/v1/subscription_items", "data": []any{
			map[string]any{"id": "si_1", "object": "subscription_item", "current_period_end": 1769904000, "quantity": 1,
				"price": map[string]any{"id": "price_1", "object": "price", "unit_amount": 2900, "currency": "eur"}},
		}},
	}
}

// TestWebhookEvents: every Stripe event type the issue names becomes its
// event, with the gateway's ids from the metadata set at checkout and the
// amount, currency, customer and subscription from Stripe's object.
func TestWebhookEvents(t *testing.T) {
	x := start(t, nil)
	occurred := time.Unix(1767225600, 0).UTC()
	periodEnd := time.Unix(1769904000, 0).UTC()
	ids := sdk.BillingEvent{OrderID: "ord_1", UserID: "usr_1", PlanID: "pro", CustomerID: "cus_1", Currency: "eur", OccurredAt: occurred,
		Metadata: map[string]string{"order_id": "ord_1", "user_id": "usr_1", "plan_id": "pro", "tenant": "acme"}}
	with := func(e sdk.BillingEvent, change func(*sdk.BillingEvent)) sdk.BillingEvent {
		e.Metadata = maps.Clone(e.Metadata)
		change(&e)
		return e
	}
	for _, tc := range []struct {
		stripeType string
		object     map[string]any
		want       sdk.BillingEvent
	}{
		{"checkout.session.completed", session("paid", "sub_1"), with(ids, func(e *sdk.BillingEvent) {
			e.Type, e.SessionID, e.SubscriptionID, e.AmountMinor, e.Status, e.PaymentStatus = sdk.EventCheckoutCompleted, "cs_test_1", "sub_1", 2900, "complete", "paid"
		})},
		{"checkout.session.async_payment_succeeded", session("paid", nil), with(ids, func(e *sdk.BillingEvent) {
			e.Type, e.SessionID, e.AmountMinor, e.Status, e.PaymentStatus = sdk.EventPaymentSucceeded, "cs_test_1", 2900, "complete", "paid"
		})},
		{"checkout.session.async_payment_failed", session("unpaid", nil), with(ids, func(e *sdk.BillingEvent) {
			e.Type, e.SessionID, e.AmountMinor, e.Status, e.PaymentStatus = sdk.EventPaymentFailed, "cs_test_1", 2900, "complete", "unpaid"
		})},
		{"invoice.paid", invoiceObject(true), with(ids, func(e *sdk.BillingEvent) {
			e.Type, e.InvoiceID, e.SubscriptionID, e.AmountMinor, e.Status, e.CurrentPeriodEnd = sdk.EventInvoicePaid, "in_1", "sub_1", 2900, "paid", periodEnd
		})},
		{"invoice.payment_failed", invoiceObject(false), with(ids, func(e *sdk.BillingEvent) {
			e.Type, e.InvoiceID, e.SubscriptionID, e.AmountMinor, e.Status, e.CurrentPeriodEnd = sdk.EventInvoicePaymentFailed, "in_1", "sub_1", 2900, "open", periodEnd
		})},
		{"customer.subscription.updated", subscriptionObject("active", true), with(ids, func(e *sdk.BillingEvent) {
			e.Type, e.SubscriptionID, e.AmountMinor, e.Status, e.CancelAtPeriodEnd, e.CurrentPeriodEnd = sdk.EventSubscriptionUpdated, "sub_1", 2900, "active", true, periodEnd
		})},
		{"customer.subscription.deleted", subscriptionObject("canceled", false), with(ids, func(e *sdk.BillingEvent) {
			e.Type, e.SubscriptionID, e.AmountMinor, e.Status, e.CurrentPeriodEnd = sdk.EventSubscriptionDeleted, "sub_1", 2900, "canceled", periodEnd
		})},
	} {
		t.Run(tc.stripeType, func(t *testing.T) {
			body := event("evt_"+strings.ReplaceAll(tc.stripeType, ".", "_"), tc.stripeType, tc.object)
			events, err := x.b.HandleWebhook(ctx(t), sdk.WebhookRequest{Settings: x.settings, Header: signed(body, testWebhookSecret, time.Now()), Body: body})
			if err != nil {
				t.Fatal(err)
			}
			tc.want.ID = "evt_" + strings.ReplaceAll(tc.stripeType, ".", "_")
			if len(events) != 1 || !reflect.DeepEqual(events[0], tc.want) {
				t.Errorf("events\n%+v\nwant\n%+v", events, tc.want)
			}
		})
	}
	if n := len(x.rec.requests()); n != 0 {
		t.Errorf("handling webhooks sent %d requests to Stripe", n)
	}
}

// TestWebhookRefusals covers what an attacker or a misconfiguration
// sends: each is refused with its kind, or ignored when it is a verified
// event the gateway does not need.
func TestWebhookRefusals(t *testing.T) {
	x := start(t, nil)
	body := event("evt_1", "checkout.session.completed", session("paid", nil))
	handle := func(settings map[string]string, h http.Header, b []byte) ([]sdk.BillingEvent, error) {
		return x.b.HandleWebhook(ctx(t), sdk.WebhookRequest{Settings: settings, Header: h, Body: b})
	}
	deny := func(name string, h http.Header, b []byte, why string) {
		t.Run(name, func(t *testing.T) {
			events, err := handle(x.settings, h, b)
			wantKind(t, name, err, sdk.ErrPermissionDenied)
			if len(events) != 0 {
				t.Errorf("refused webhook gave events %+v", events)
			}
			if err != nil && !strings.Contains(err.Error(), why) {
				t.Errorf("refusal %q does not say %q", err, why)
			}
			if err != nil && strings.Contains(err.Error(), testWebhookSecret) {
				t.Errorf("refusal %q names the secret", err)
			}
		})
	}
	deny("signed with another secret", signed(body, "whsec_someoneElse", time.Now()), body, "does not verify")
	deny("no signature", http.Header{}, body, "no Stripe-Signature")
	deny("a malformed signature header", http.Header{"Stripe-Signature": {"t=now,v1"}}, body, "malformed")
	deny("a stale timestamp", signed(body, testWebhookSecret, time.Now().Add(-6*time.Minute)), body, "old")
	tampered := []byte(strings.Replace(string(body), `"amount_total":2900`, `"amount_total":1`, 1))
	if string(tampered) == string(body) {
		t.Fatal("the tampering changed nothing")
	}
	deny("a body changed after signing", signed(body, testWebhookSecret, time.Now()), tampered, "does not verify")
	// Signed in Stripe's v0 (test) scheme only: not a v1 signature.
	v0 := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: testWebhookSecret, Timestamp: time.Now(), Scheme: "v0"})
	deny("a v0 signature", http.Header{"Stripe-Signature": {v0.Header}}, body, "does not verify")

	t.Run("a signature within tolerance", func(t *testing.T) {
		events, err := handle(x.settings, signed(body, testWebhookSecret, time.Now().Add(-4*time.Minute)), body)
		if err != nil || len(events) != 1 {
			t.Errorf("a 4-minute-old signature: %+v, %v", events, err)
		}
	})
	t.Run("a replayed event", func(t *testing.T) {
		// The plugin keeps no state: the same event is the same event id
		// each time, and the gateway processes each id once.
		first, err1 := handle(x.settings, signed(body, testWebhookSecret, time.Now()), body)
		again, err2 := handle(x.settings, signed(body, testWebhookSecret, time.Now()), body)
		if err1 != nil || err2 != nil || len(first) != 1 || len(again) != 1 || first[0].ID != again[0].ID || first[0].ID != "evt_1" {
			t.Errorf("replay: %+v, %v; %+v, %v", first, err1, again, err2)
		}
	})
	t.Run("an unknown event type", func(t *testing.T) {
		for _, typ := range []string{"customer.created", "payment_intent.succeeded", "charge.refunded", "v2.made.up"} {
			b := event("evt_other", typ, map[string]any{"id": "x", "object": "thing"})
			events, err := handle(x.settings, signed(b, testWebhookSecret, time.Now()), b)
			if err != nil || len(events) != 0 {
				t.Errorf("%s: %+v, %v; want no events and no error", typ, events, err)
			}
		}
	})
	t.Run("a body over the limit", func(t *testing.T) {
		big := event("evt_big", "checkout.session.completed", map[string]any{
			"id": "cs_1", "object": "checkout.session", "metadata": map[string]any{"padding": strings.Repeat("x", maxWebhookBody)}})
		_, err := handle(x.settings, signed(big, testWebhookSecret, time.Now()), big)
		wantKind(t, "a signed body over 1 MiB", err, sdk.ErrInvalidArgument)
	})
	t.Run("no webhook secret", func(t *testing.T) {
		without := maps.Clone(x.settings)
		delete(without, settingWebhookSecret)
		_, err := handle(without, signed(body, testWebhookSecret, time.Now()), body)
		wantKind(t, "no webhook secret", err, sdk.ErrInvalidArgument)
		if err != nil && !strings.Contains(err.Error(), settingWebhookSecret) {
			t.Errorf("refusal %q does not name the setting", err)
		}
	})
	t.Run("signed but not an event", func(t *testing.T) {
		for _, b := range [][]byte{[]byte(`{"id":"cs_1","object":"checkout.session"}`), []byte(`not json`)} {
			_, err := handle(x.settings, signed(b, testWebhookSecret, time.Now()), b)
			wantKind(t, "signed "+string(b), err, sdk.ErrInvalidArgument)
		}
	})
	t.Run("another API version", func(t *testing.T) {
		for _, v := range []string{"2024-06-20", "2025-03-31.basil"} {
			b := []byte(strings.Replace(string(body), stripe.APIVersion, v, 1))
			_, err := handle(x.settings, signed(b, testWebhookSecret, time.Now()), b)
			wantKind(t, "an event of API version "+v, err, sdk.ErrFailedPrecondition)
			if err != nil && !strings.Contains(err.Error(), stripe.APIVersion) {
				t.Errorf("refusal %q does not name the version to set", err)
			}
		}
		// An unknown type is ignored whatever its version.
		b := []byte(strings.Replace(string(event("evt_2", "customer.created", map[string]any{"id": "cus_1"})), stripe.APIVersion, "2024-06-20", 1))
		if events, err := handle(x.settings, signed(b, testWebhookSecret, time.Now()), b); err != nil || len(events) != 0 {
			t.Errorf("an unknown type of another version: %+v, %v", events, err)
		}
	})
}

// TestWebhookForeignCheckout: a verified checkout that Berth did not
// create (no metadata) still becomes an event, without the gateway's ids,
// for the gateway to recognise as another product's and ignore.
func TestWebhookForeignCheckout(t *testing.T) {
	x := start(t, nil)
	body := event("evt_foreign", "checkout.session.completed", map[string]any{
		"id": "cs_other", "object": "checkout.session", "customer": map[string]any{"id": "cus_9", "object": "customer"},
		"amount_total": 100, "currency": "usd", "status": "complete", "payment_status": "paid"})
	events, err := x.b.HandleWebhook(ctx(t), sdk.WebhookRequest{Settings: x.settings, Header: signed(body, testWebhookSecret, time.Now()), Body: body})
	if err != nil || len(events) != 1 {
		t.Fatalf("%+v, %v", events, err)
	}
	e := events[0]
	if e.OrderID != "" || e.UserID != "" || e.PlanID != "" || e.CustomerID != "cus_9" || e.AmountMinor != 100 || e.Currency != "usd" {
		t.Errorf("event %+v", e)
	}
}
