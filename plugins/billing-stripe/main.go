// Command berth-plugin-billing-stripe is Berth's first-party billing
// plugin: it takes payments through Stripe, with Stripe's official Go
// library. The gateway owns plans, orders and entitlements; this plugin is
// a stateless adapter: every call carries the operator's saved Stripe
// settings (the secret key and the webhook signing secret, sealed at rest
// by the gateway), and the plugin keeps nothing between calls.
//
// It creates Checkout Sessions (a one-off payment, or a subscription for a
// monthly or yearly plan, priced inline from the gateway's plan), customer
// portal sessions, lists a customer's invoices, cancels subscriptions, and
// verifies and translates Stripe's webhooks. Every write to Stripe carries
// an idempotency key derived from the gateway's, so a retried call never
// charges twice.
//
// The plugin takes no configuration. The binary is installed beside the
// berth binary, where the gateway finds it; README.md describes the
// settings, the Stripe events to enable and the webhook URL.
package main

import "github.com/berthgw/berth/sdk"

// Version is the plugin's version, reported to the gateway.
const Version = "1.0.0"

func options() sdk.Options {
	return sdk.Options{
		Name:    "billing-stripe",
		Version: Version,
		Billing: newBilling(),
	}
}

func main() {
	sdk.Serve(options())
}
