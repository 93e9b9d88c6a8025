package main

import (
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/berthgw/berth/sdk"
)

// Each test here runs the plugin against stripe-mock, which validates
// every request against Stripe's OpenAPI specification (an unknown or
// malformed parameter is a 400) and answers with fixture objects. So they
// prove that what the plugin sends is a valid Stripe request and that it
// reads Stripe's answers, and the recorder shows what exactly was sent.

var (
	oneOff  = sdk.Plan{ID: "starter", Name: "Starter", Description: "One cluster", PriceMinor: 900, Currency: "eur", Interval: sdk.IntervalOnce}
	monthly = sdk.Plan{ID: "pro", Name: "Pro", PriceMinor: 2900, Currency: "usd", Interval: sdk.IntervalMonth}
	yearly  = sdk.Plan{ID: "pro-year", Name: "Pro (yearly)", PriceMinor: 29000, Currency: "usd", Interval: sdk.IntervalYear}
)

func checkoutRequest(x *stripeTest, key string, plan sdk.Plan) sdk.CheckoutRequest {
	return sdk.CheckoutRequest{
		IdempotencyKey: key, Settings: x.settings, OrderID: "ord_1", UserID: "usr_1", CustomerEmail: "buyer@example.com",
		Plan: plan, SuccessURL: "https://berth.example/billing/ok", CancelURL: "https://berth.example/billing/cancel",
		Metadata: map[string]string{"tenant": "acme", "order_id": "spoofed"},
	}
}

func TestCheckoutOneOff(t *testing.T) {
	x := start(t, nil)
	req := checkoutRequest(x, "checkout-1", oneOff)
	c, err := x.b.CreateCheckout(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(c.URL); err != nil || !u.IsAbs() || c.SessionID == "" {
		t.Errorf("checkout %+v lacks a session id or an absolute URL", c)
	}
	if c.ExpiresAt.IsZero() {
		t.Errorf("checkout %+v has no expiry", c)
	}
	s := x.only(t, 0)
	if s.Method != http.MethodPost || s.Path != "/v1/checkout/sessions" {
		t.Fatalf("sent %s %s", s.Method, s.Path)
	}
	if s.IdempotencyKey != "berth-checkout-checkout-1" {
		t.Errorf("Idempotency-Key %q", s.IdempotencyKey)
	}
	wantForm(t, s, map[string]string{
		"mode":                                   "payment",
		"client_reference_id":                    "ord_1",
		"success_url":                            "https://berth.example/billing/ok",
		"cancel_url":                             "https://berth.example/billing/cancel",
		"customer_email":                         "buyer@example.com",
		"customer_creation":                      "always",
		"line_items[0][quantity]":                "1",
		"line_items[0][price_data][currency]":    "eur",
		"line_items[0][price_data][unit_amount]": "900",
		"line_items[0][price_data][product_data][name]":        "Starter",
		"line_items[0][price_data][product_data][description]": "One cluster",
		// The plugin's ids win over the caller's metadata.
		"metadata[order_id]":                      "ord_1",
		"metadata[user_id]":                       "usr_1",
		"metadata[plan_id]":                       "starter",
		"metadata[tenant]":                        "acme",
		"payment_intent_data[metadata][order_id]": "ord_1",
	})
	lacks(t, s, "customer", "line_items[0][price_data][recurring][interval]", "subscription_data[metadata][order_id]")

	// A repeated call is answered by the SDK without a second session.
	again, err := x.b.CreateCheckout(ctx(t), req)
	if err != nil || again != c {
		t.Errorf("repeated checkout = %+v, %v; want %+v", again, err, c)
	}
	if n := len(x.rec.requests()); n != 1 {
		t.Errorf("a repeated call reached Stripe: %d requests", n)
	}
	// A restarted plugin (whose SDK cache is empty) sends the same key, so
	// Stripe answers the retry with the first session, not a second one.
	y := start(t, x.mock)
	if _, err := y.b.CreateCheckout(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	if k := y.only(t, 0).IdempotencyKey; k != s.IdempotencyKey {
		t.Errorf("after a restart the key is %q, before it was %q", k, s.IdempotencyKey)
	}
}

func TestCheckoutSubscription(t *testing.T) {
	x := start(t, nil)
	for i, plan := range []sdk.Plan{monthly, yearly} {
		req := checkoutRequest(x, "sub-"+plan.Interval, plan)
		req.CustomerID, req.CustomerEmail = "cus_known", ""
		c, err := x.b.CreateCheckout(ctx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if c.SessionID == "" || c.URL == "" {
			t.Errorf("checkout %+v", c)
		}
		s := x.only(t, i)
		if s.IdempotencyKey != "berth-checkout-sub-"+plan.Interval {
			t.Errorf("Idempotency-Key %q", s.IdempotencyKey)
		}
		wantForm(t, s, map[string]string{
			"mode":                                   "subscription",
			"customer":                               "cus_known",
			"line_items[0][price_data][currency]":    "usd",
			"line_items[0][price_data][unit_amount]": strconv.FormatInt(plan.PriceMinor, 10),
			"line_items[0][price_data][recurring][interval]": plan.Interval,
			"metadata[order_id]":                             "ord_1",
			"subscription_data[metadata][order_id]":          "ord_1",
			"subscription_data[metadata][user_id]":           "usr_1",
			"subscription_data[metadata][plan_id]":           plan.ID,
		})
		lacks(t, s, "customer_email", "customer_creation", "payment_intent_data[metadata][order_id]",
			"line_items[0][price_data][product_data][description]")
	}
}

func TestPortal(t *testing.T) {
	x := start(t, nil)
	p, err := x.b.CreatePortal(ctx(t), sdk.PortalRequest{IdempotencyKey: "portal-1", Settings: x.settings, CustomerID: "cus_1", ReturnURL: "https://berth.example/billing"})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(p.URL); err != nil || !u.IsAbs() {
		t.Errorf("portal URL %q", p.URL)
	}
	s := x.only(t, 0)
	if s.Method != http.MethodPost || s.Path != "/v1/billing_portal/sessions" || s.IdempotencyKey != "berth-portal-portal-1" {
		t.Errorf("sent %s %s with key %q", s.Method, s.Path, s.IdempotencyKey)
	}
	wantForm(t, s, map[string]string{"customer": "cus_1", "return_url": "https://berth.example/billing"})
}

func TestInvoices(t *testing.T) {
	x := start(t, nil)
	invoices, err := x.b.ListInvoices(ctx(t), sdk.InvoicesRequest{Settings: x.settings, CustomerID: "cus_1", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(invoices) == 0 || len(invoices) > 3 {
		t.Fatalf("%d invoices for a limit of 3", len(invoices))
	}
	for _, in := range invoices {
		if !strings.HasPrefix(in.ID, "in_") || in.Status == "" || in.Currency == "" || in.Created.IsZero() {
			t.Errorf("invoice %+v", in)
		}
	}
	s := x.only(t, 0)
	if s.Method != http.MethodGet || s.Path != "/v1/invoices" || s.Query.Get("customer") != "cus_1" || s.Query.Get("limit") != "3" {
		t.Errorf("sent %s %s?%s", s.Method, s.Path, s.Query.Encode())
	}
	if s.IdempotencyKey != "" {
		t.Errorf("a read carries Idempotency-Key %q", s.IdempotencyKey)
	}
	// No limit is the default; a huge one is capped.
	for _, tc := range []struct{ limit, want int }{{0, defaultInvoiceLimit}, {5000, maxInvoiceLimit}} {
		from := len(x.rec.requests())
		if _, err := x.b.ListInvoices(ctx(t), sdk.InvoicesRequest{Settings: x.settings, CustomerID: "cus_1", Limit: tc.limit}); err != nil {
			t.Fatal(err)
		}
		if got := x.rec.requests()[from].Query.Get("limit"); got != strconv.Itoa(tc.want) {
			t.Errorf("limit %d sent limit=%s, want %d", tc.limit, got, tc.want)
		}
	}
}

func TestCancelSubscription(t *testing.T) {
	x := start(t, nil)
	if err := x.b.CancelSubscription(ctx(t), sdk.CancelRequest{IdempotencyKey: "cancel-1", Settings: x.settings, SubscriptionID: "sub_1", AtPeriodEnd: true}); err != nil {
		t.Fatal(err)
	}
	s := x.only(t, 0)
	if s.Method != http.MethodPost || s.Path != "/v1/subscriptions/sub_1" || s.IdempotencyKey != "berth-cancel-at-period-end-cancel-1" {
		t.Errorf("at period end: sent %s %s with key %q", s.Method, s.Path, s.IdempotencyKey)
	}
	wantForm(t, s, map[string]string{"cancel_at_period_end": "true"})

	if err := x.b.CancelSubscription(ctx(t), sdk.CancelRequest{IdempotencyKey: "cancel-2", Settings: x.settings, SubscriptionID: "sub_1"}); err != nil {
		t.Fatal(err)
	}
	s = x.only(t, 1)
	if s.Method != http.MethodDelete || s.Path != "/v1/subscriptions/sub_1" || s.IdempotencyKey != "berth-cancel-cancel-2" {
		t.Errorf("at once: sent %s %s with key %q", s.Method, s.Path, s.IdempotencyKey)
	}
}

// TestEveryWriteHasAKey: whatever the caller sends, every write that
// reaches Stripe carries an Idempotency-Key (the SDK's client makes one
// when the caller has none).
func TestEveryWriteHasAKey(t *testing.T) {
	x := start(t, nil)
	if _, err := x.b.CreateCheckout(ctx(t), checkoutRequest(x, "", oneOff)); err != nil {
		t.Fatal(err)
	}
	if _, err := x.b.CreatePortal(ctx(t), sdk.PortalRequest{Settings: x.settings, CustomerID: "cus_1", ReturnURL: "https://berth.example/"}); err != nil {
		t.Fatal(err)
	}
	for _, at := range []bool{true, false} {
		if err := x.b.CancelSubscription(ctx(t), sdk.CancelRequest{Settings: x.settings, SubscriptionID: "sub_1", AtPeriodEnd: at}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := x.rec.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	for _, s := range reqs {
		if !strings.HasPrefix(s.IdempotencyKey, "berth-") {
			t.Errorf("%s %s carries Idempotency-Key %q", s.Method, s.Path, s.IdempotencyKey)
		}
	}
}

func TestIdempotencyKeyLength(t *testing.T) {
	long := strings.Repeat("k", 300)
	k := idempotencyKey("checkout", long)
	if len(k) > 255 || !strings.HasPrefix(k, "berth-checkout-sha256-") || k != idempotencyKey("checkout", long) {
		t.Errorf("key for a long gateway key: %q (%d)", k, len(k))
	}
	if idempotencyKey("checkout", "a") == idempotencyKey("portal", "a") {
		t.Error("one gateway key gives one Stripe key for two operations")
	}
}

func TestSettingsList(t *testing.T) {
	sts, err := newBilling().Settings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]bool{settingSecretKey: {true, true}, settingWebhookSecret: {true, true}, settingAPIBase: {false, false}}
	if len(sts) != len(want) {
		t.Fatalf("settings %+v", sts)
	}
	for _, st := range sts {
		if w, ok := want[st.Name]; !ok || st.Required != w[0] || st.Secret != w[1] || st.Description == "" {
			t.Errorf("setting %+v", st)
		}
	}
}

func TestCheckSettings(t *testing.T) {
	x := start(t, nil)
	if err := x.b.CheckSettings(ctx(t), x.settings); err != nil {
		t.Fatal(err)
	}
	if s := x.only(t, 0); s.Method != http.MethodGet || s.Path != "/v1/checkout/sessions" {
		t.Errorf("the check sent %s %s", s.Method, s.Path)
	}
	with := func(k, v string) map[string]string {
		m := maps.Clone(x.settings)
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	const canary = "Canary0123456789"
	for name, tc := range map[string]struct {
		settings map[string]string
		setting  string
	}{
		"no key":                   {with(settingSecretKey, ""), settingSecretKey},
		"a publishable key":        {with(settingSecretKey, "pk_test_"+canary), settingSecretKey},
		"a key with a space":       {with(settingSecretKey, "sk_test_"+canary+" x"), settingSecretKey},
		"a webhook secret as key":  {with(settingSecretKey, "whsec_"+canary), settingSecretKey},
		"no webhook secret":        {with(settingWebhookSecret, ""), settingWebhookSecret},
		"a key as webhook secret":  {with(settingWebhookSecret, "sk_test_"+canary), settingWebhookSecret},
		"an ftp API base":          {with(settingAPIBase, "ftp://127.0.0.1/"), settingAPIBase},
		"an API base with a path":  {with(settingAPIBase, x.mock.URL+"/v1"), settingAPIBase},
		"an API base with a user":  {with(settingAPIBase, "http://user:pw@127.0.0.1:1"), settingAPIBase},
		"an API base without host": {with(settingAPIBase, "http://"), settingAPIBase},
		// stripe-mock takes test keys only: a live key is refused with a
		// 401 whose message quotes the whole Authorization header.
		"a key Stripe refuses": {with(settingSecretKey, "sk_live_"+canary), settingSecretKey},
	} {
		t.Run(name, func(t *testing.T) {
			err := x.b.CheckSettings(ctx(t), tc.settings)
			wantKind(t, "CheckSettings", err, sdk.ErrInvalidArgument)
			if err != nil && !strings.Contains(err.Error(), `"`+tc.setting+`"`) {
				t.Errorf("the refusal %q does not name %s", err, tc.setting)
			}
			if err != nil && strings.Contains(err.Error(), canary) {
				t.Errorf("the refusal echoes a secret: %v", err)
			}
		})
	}
}

// TestStripeErrors: Stripe's refusals arrive as the SDK's kinds, with
// Stripe's request id and never a secret.
func TestStripeErrors(t *testing.T) {
	x := start(t, nil)
	const canary = "Canary0123456789"
	live := maps.Clone(x.settings)
	live[settingSecretKey] = "sk_live_" + canary
	req := checkoutRequest(x, "live-1", oneOff)
	req.Settings = live
	_, err := x.b.CreateCheckout(ctx(t), req)
	wantKind(t, "checkout with a key Stripe refuses", err, sdk.ErrPermissionDenied)
	// stripe-mock's message quotes the Authorization header: the key is
	// in it, and must have been redacted.
	if err != nil && (strings.Contains(err.Error(), canary) || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "[redacted]")) {
		t.Errorf("error %q: want the status and the key redacted", err)
	}
	// Nothing listens: a network failure is retryable.
	down := maps.Clone(x.settings)
	down[settingAPIBase] = "http://127.0.0.1:1"
	_, err = x.b.CreatePortal(ctx(t), sdk.PortalRequest{Settings: down, CustomerID: "cus_1", ReturnURL: "https://berth.example/"})
	wantKind(t, "portal with Stripe down", err, sdk.ErrRetryable)
	// Settings missing or malformed never reach Stripe.
	from := len(x.rec.requests())
	for _, bad := range []map[string]string{nil, {settingSecretKey: "nope"}} {
		_, err = x.b.ListInvoices(ctx(t), sdk.InvoicesRequest{Settings: bad, CustomerID: "cus_1"})
		wantKind(t, "invoices with bad settings", err, sdk.ErrInvalidArgument)
		err = x.b.CancelSubscription(ctx(t), sdk.CancelRequest{Settings: bad, SubscriptionID: "sub_1"})
		wantKind(t, "cancel with bad settings", err, sdk.ErrInvalidArgument)
	}
	if n := len(x.rec.requests()) - from; n != 0 {
		t.Errorf("bad settings sent %d requests to Stripe", n)
	}
}
