package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/plugins/billing-stripe/internal/stripemocktest"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/plugintest"
)

// stripeCase is the SDK's billing conformance case for Stripe, against
// mock: its webhooks are signed with stripe-go's test helper.
func stripeCase(mock *stripemocktest.Server) plugintest.BillingCase {
	return plugintest.BillingCase{
		Settings:       mockSettings(mock),
		Plan:           oneOff,
		RecurringPlan:  monthly,
		CustomerID:     "cus_conformance",
		SubscriptionID: "sub_conformance",
		Webhook: func(_ *testing.T, settings map[string]string, orderID, userID, planID string) (http.Header, []byte) {
			body := event("evt_conformance", "checkout.session.completed", map[string]any{
				"id": "cs_test_conformance", "object": "checkout.session", "client_reference_id": orderID,
				"metadata": map[string]any{"order_id": orderID, "user_id": userID, "plan_id": planID},
				"customer": "cus_conformance", "amount_total": 900, "currency": "eur", "status": "complete", "payment_status": "paid",
			})
			return signed(body, settings[settingWebhookSecret], time.Now()), body
		},
	}
}

// TestConformance runs the SDK's billing conformance suite in process,
// against stripe-mock.
func TestConformance(t *testing.T) {
	mock := stripemocktest.Start(t)
	f := plugintest.InProcess(func(*testing.T) sdk.Options { return options() }, func(*testing.T) []byte { return []byte(`{}`) })
	plugintest.RunBillingConformance(t, f, stripeCase(mock))
}

// TestConformanceSubprocess runs the suite on the built binary, started
// the way the gateway starts it.
func TestConformanceSubprocess(t *testing.T) {
	mock := stripemocktest.Start(t)
	bin := plugintest.Build(t, ".")
	f := plugintest.Subprocess(bin, func(*testing.T) []byte { return []byte(`{}`) })
	plugintest.RunBillingConformance(t, f, stripeCase(mock))
}

// TestNoConfiguration: the plugin takes none; its settings come per call.
func TestNoConfiguration(t *testing.T) {
	c := plugintest.StartInProcess(t, options())
	if err := c.Base().ValidateConfig(ctx(t), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	err := c.Base().ValidateConfig(ctx(t), []byte(`{"secret_key": "sk_test_x"}`))
	wantKind(t, "a secret in the configuration", err, sdk.ErrInvalidConfig)
	if err != nil && strings.Contains(err.Error(), "sk_test_x") {
		t.Errorf("the refusal echoes the value: %v", err)
	}
}
