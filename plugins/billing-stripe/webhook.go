package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/stripe/stripe-go/v84"
	"github.com/stripe/stripe-go/v84/webhook"
)

const (
	// maxWebhookBody is the largest webhook body the plugin reads: Stripe's
	// events are a few kilobytes, a subscription's invoice with many lines
	// some tens.
	maxWebhookBody = 1 << 20
	// webhookTolerance is how old a signature's timestamp may be: Stripe's
	// own default, which bounds how long a captured webhook can be replayed.
	webhookTolerance = 5 * time.Minute
)

// eventTypes maps the Stripe events the plugin handles to the SDK's.
var eventTypes = map[stripe.EventType]sdk.BillingEventType{
	stripe.EventTypeCheckoutSessionCompleted:             sdk.EventCheckoutCompleted,
	stripe.EventTypeCheckoutSessionAsyncPaymentSucceeded: sdk.EventPaymentSucceeded,
	stripe.EventTypeCheckoutSessionAsyncPaymentFailed:    sdk.EventPaymentFailed,
	stripe.EventTypeInvoicePaid:                          sdk.EventInvoicePaid,
	stripe.EventTypeInvoicePaymentFailed:                 sdk.EventInvoicePaymentFailed,
	stripe.EventTypeCustomerSubscriptionUpdated:          sdk.EventSubscriptionUpdated,
	stripe.EventTypeCustomerSubscriptionDeleted:          sdk.EventSubscriptionDeleted,
}

// HandleWebhook implements sdk.Billing. The body is verified as it
// arrived, byte for byte, against its Stripe-Signature with the webhook
// secret and a five-minute tolerance; only then is it parsed.
func (b *billing) HandleWebhook(_ context.Context, req sdk.WebhookRequest) ([]sdk.BillingEvent, error) {
	s, err := parseSettings(req.Settings, needWebhookSecret)
	if err != nil {
		return nil, err
	}
	if len(req.Body) > maxWebhookBody {
		return nil, fmt.Errorf("webhook body of %d bytes is over the limit of %d: %w", len(req.Body), maxWebhookBody, sdk.ErrInvalidArgument)
	}
	// The signature is checked first, over the body as it arrived; only a
	// verified body is parsed. The API version is checked below, for the
	// events the plugin reads: the library's check has no error to tell.
	e, err := webhook.ConstructEventWithOptions(req.Body, req.Header.Get("Stripe-Signature"), s.webhookSecret, webhook.ConstructEventOptions{
		Tolerance: webhookTolerance, IgnoreAPIVersionMismatch: true,
	})
	switch {
	case isSignatureError(err):
		return nil, signatureError(err)
	case err != nil:
		return nil, fmt.Errorf("webhook body is not a Stripe event: %s: %w", s.redact(err.Error()), sdk.ErrInvalidArgument)
	}
	typ, ok := eventTypes[e.Type]
	if !ok {
		// Not an event the gateway needs: acknowledged, ignored.
		return nil, nil
	}
	if !compatibleAPIVersion(e.APIVersion) {
		return nil, fmt.Errorf("Stripe event %s has API version %q, but this plugin reads events of API version %s (release %q): "+
			"set the webhook endpoint's API version to %s in Stripe: %w",
			e.ID, e.APIVersion, stripe.APIVersion, release(stripe.APIVersion), stripe.APIVersion, sdk.ErrFailedPrecondition)
	}
	if e.Data == nil || len(e.Data.Raw) == 0 {
		return nil, fmt.Errorf("Stripe event %s has no object: %w", e.ID, sdk.ErrInvalidArgument)
	}
	out := sdk.BillingEvent{ID: e.ID, Type: typ}
	if e.Created > 0 {
		out.OccurredAt = time.Unix(e.Created, 0).UTC()
	}
	switch typ {
	case sdk.EventCheckoutCompleted, sdk.EventPaymentSucceeded, sdk.EventPaymentFailed:
		var cs stripe.CheckoutSession
		if err := json.Unmarshal(e.Data.Raw, &cs); err != nil {
			return nil, objectError(e, err)
		}
		fromSession(&out, &cs)
	case sdk.EventInvoicePaid, sdk.EventInvoicePaymentFailed:
		var in stripe.Invoice
		if err := json.Unmarshal(e.Data.Raw, &in); err != nil {
			return nil, objectError(e, err)
		}
		fromInvoice(&out, &in)
	case sdk.EventSubscriptionUpdated, sdk.EventSubscriptionDeleted:
		var sub stripe.Subscription
		if err := json.Unmarshal(e.Data.Raw, &sub); err != nil {
			return nil, objectError(e, err)
		}
		fromSubscription(&out, &sub)
	}
	return []sdk.BillingEvent{out}, nil
}

func isSignatureError(err error) bool {
	return errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrInvalidHeader) ||
		errors.Is(err, webhook.ErrNoValidSignature) || errors.Is(err, webhook.ErrTooOld)
}

// signatureError says why a webhook was refused, without a word of the
// secret: the library's errors name none.
func signatureError(err error) error {
	why := "its signature does not verify"
	switch {
	case errors.Is(err, webhook.ErrNotSigned):
		why = "it has no Stripe-Signature header"
	case errors.Is(err, webhook.ErrInvalidHeader):
		why = "its Stripe-Signature header is malformed"
	case errors.Is(err, webhook.ErrTooOld):
		why = fmt.Sprintf("its signature's timestamp is more than %s old", webhookTolerance)
	}
	return fmt.Errorf("Stripe webhook refused: %s: %w", why, sdk.ErrPermissionDenied)
}

func objectError(e stripe.Event, err error) error {
	return fmt.Errorf("Stripe event %s (%s): its object does not parse: %v: %w", e.ID, e.Type, err, sdk.ErrInvalidArgument)
}

// release is an API version's release train: "clover" of "2026-02-25.clover".
func release(version string) string {
	_, train, _ := strings.Cut(version, ".")
	return train
}

// compatibleAPIVersion says whether an event's objects have the shapes
// stripe-go's types read: those of the same release train.
func compatibleAPIVersion(version string) bool {
	return release(version) != "" && release(version) == release(stripe.APIVersion)
}

// ids fills the gateway's ids from the metadata the plugin set at checkout.
func ids(out *sdk.BillingEvent, md map[string]string) {
	if len(md) == 0 {
		return
	}
	out.Metadata = md
	if out.OrderID == "" {
		out.OrderID = md["order_id"]
	}
	out.UserID, out.PlanID = md["user_id"], md["plan_id"]
}

func fromSession(out *sdk.BillingEvent, cs *stripe.CheckoutSession) {
	out.SessionID = cs.ID
	out.OrderID = cs.ClientReferenceID
	ids(out, cs.Metadata)
	if cs.Customer != nil {
		out.CustomerID = cs.Customer.ID
	}
	if cs.Subscription != nil {
		out.SubscriptionID = cs.Subscription.ID
	}
	if cs.Invoice != nil {
		out.InvoiceID = cs.Invoice.ID
	}
	out.AmountMinor, out.Currency = cs.AmountTotal, string(cs.Currency)
	out.Status, out.PaymentStatus = string(cs.Status), string(cs.PaymentStatus)
}

func fromInvoice(out *sdk.BillingEvent, in *stripe.Invoice) {
	out.InvoiceID = in.ID
	if in.Parent != nil && in.Parent.SubscriptionDetails != nil {
		// A snapshot of the subscription's metadata: the checkout's ids.
		ids(out, in.Parent.SubscriptionDetails.Metadata)
	}
	if out.OrderID == "" {
		ids(out, in.Metadata)
	}
	out.SubscriptionID = invoiceSubscription(in)
	if in.Customer != nil {
		out.CustomerID = in.Customer.ID
	}
	out.AmountMinor = in.AmountPaid
	if out.Type == sdk.EventInvoicePaymentFailed {
		out.AmountMinor = in.AmountDue
	}
	out.Currency, out.Status = string(in.Currency), string(in.Status)
	// The period the invoice pays for ends with its latest line.
	if in.Lines != nil {
		for _, l := range in.Lines.Data {
			if l != nil && l.Period != nil && l.Period.End > 0 {
				if end := time.Unix(l.Period.End, 0).UTC(); end.After(out.CurrentPeriodEnd) {
					out.CurrentPeriodEnd = end
				}
			}
		}
	}
}

func fromSubscription(out *sdk.BillingEvent, sub *stripe.Subscription) {
	out.SubscriptionID = sub.ID
	ids(out, sub.Metadata)
	if sub.Customer != nil {
		out.CustomerID = sub.Customer.ID
	}
	out.Currency, out.Status, out.CancelAtPeriodEnd = string(sub.Currency), string(sub.Status), sub.CancelAtPeriodEnd
	if sub.Items != nil {
		var end int64
		for _, it := range sub.Items.Data {
			if it == nil {
				continue
			}
			end = max(end, it.CurrentPeriodEnd)
			if it.Price != nil {
				q := it.Quantity
				if q == 0 {
					q = 1
				}
				out.AmountMinor += it.Price.UnitAmount * q
			}
		}
		if end > 0 {
			out.CurrentPeriodEnd = time.Unix(end, 0).UTC()
		}
	}
}
