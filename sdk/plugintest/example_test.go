package plugintest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/plugintest"
)

// A host's billing code can be tested against MemoryBilling: a checkout
// for an order, then the provider's signed webhook saying it was paid.
func ExampleMemoryBilling() {
	ctx := context.Background()
	b := plugintest.NewMemoryBilling()
	settings := map[string]string{plugintest.SettingAPIKey: "fk_test", plugintest.SettingWebhookSecret: "whsec_test"}

	c, err := b.CreateCheckout(ctx, sdk.CheckoutRequest{
		IdempotencyKey: "order-7", Settings: settings, OrderID: "order-7", UserID: "u1",
		Plan:       sdk.Plan{ID: "pro", Name: "Pro", PriceMinor: 2900, Currency: "eur", Interval: sdk.IntervalMonth},
		SuccessURL: "https://berth.example/billing/ok",
	})
	fmt.Println(c.SessionID, c.URL, err)

	header, body := plugintest.BillingWebhook(settings[plugintest.SettingWebhookSecret], plugintest.BillingWebhookEvent{
		ID: "evt_1", Type: string(sdk.EventCheckoutCompleted), OrderID: "order-7", UserID: "u1", PlanID: "pro",
		SessionID: c.SessionID, AmountMinor: 2900, Currency: "eur", PaymentStatus: "paid",
	})
	events, err := b.HandleWebhook(ctx, sdk.WebhookRequest{Settings: settings, Header: header, Body: body})
	fmt.Println(events[0].Type, events[0].OrderID, events[0].AmountMinor, events[0].Currency, err)

	_, err = b.HandleWebhook(ctx, sdk.WebhookRequest{Settings: settings, Header: header, Body: append(body, ' ')})
	fmt.Println(err)
	// Output:
	// cs_fake_1 https://pay.example.invalid/checkout/cs_fake_1 <nil>
	// checkout.completed order-7 2900 eur <nil>
	// webhook signature does not verify: permission denied
}

// A billing plugin's own tests run the conformance suite with a case that
// says how to reach its provider and how the provider signs webhooks.
func ExampleRunBillingConformance() {
	var t *testing.T // the test's own
	f := plugintest.InProcess(
		func(*testing.T) sdk.Options {
			return sdk.Options{Name: "billing-memory", Version: "1.0.0", Billing: plugintest.NewMemoryBilling()}
		},
		func(*testing.T) []byte { return []byte(`{}`) },
	)
	if t != nil {
		plugintest.RunBillingConformance(t, f, plugintest.MemoryBillingCase())
	}
}
