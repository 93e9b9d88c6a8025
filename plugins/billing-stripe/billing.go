package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/stripe/stripe-go/v84"
)

// Invoice list limits: the gateway's page is short.
const (
	defaultInvoiceLimit = 10
	maxInvoiceLimit     = 100
)

// billing is the plugin's sdk.Billing. It holds nothing but the HTTP
// client its Stripe clients share: every call brings its settings.
type billing struct {
	http *http.Client
	now  func() time.Time
}

var _ sdk.Billing = (*billing)(nil)

func newBilling() *billing {
	return &billing{http: &http.Client{Timeout: 80 * time.Second}, now: time.Now}
}

// quiet is a stripe-go logger that logs nothing: stripe-go's own log lines
// would go to the plugin's stderr, which the gateway logs, and no line
// about a request to Stripe is worth the risk of carrying a secret there.
var quiet = &stripe.LeveledLogger{Level: stripe.LevelNull}

// client returns a Stripe client for one call's settings.
func (b *billing) client(s settings) *stripe.Client {
	cfg := &stripe.BackendConfig{
		HTTPClient:        b.http,
		LeveledLogger:     quiet,
		MaxNetworkRetries: stripe.Int64(2),
		EnableTelemetry:   stripe.Bool(false),
	}
	if s.apiBase != "" {
		cfg.URL = stripe.String(s.apiBase)
	}
	api := stripe.GetBackendWithConfig(stripe.APIBackend, cfg)
	return stripe.NewClient(s.secretKey, stripe.WithBackends(&stripe.Backends{API: api, Connect: api, Uploads: api, MeterEvents: api}))
}

// idempotencyKey is the key a write sends to Stripe: the gateway's key,
// scoped by operation (Stripe refuses one key for two different requests)
// and hashed when it would be longer than Stripe's 255 characters.
func idempotencyKey(op, key string) string {
	k := "berth-" + op + "-" + key
	if len(k) <= 255 {
		return k
	}
	sum := sha256.Sum256([]byte(key))
	return "berth-" + op + "-sha256-" + hex.EncodeToString(sum[:])
}

// stripeError turns an error of stripe-go into one of the SDK's kinds,
// with Stripe's message, code and request id, and no secret.
func stripeError(ctx context.Context, op string, s settings, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("Stripe %s: %w", op, ctx.Err())
	}
	var se *stripe.Error
	if !errors.As(err, &se) {
		// A network failure: the URL in it names no secret, but the text
		// is redacted all the same.
		return fmt.Errorf("Stripe %s: %s: %w", op, s.redact(err.Error()), sdk.ErrRetryable)
	}
	var kind error
	switch status := se.HTTPStatusCode; {
	case status == http.StatusBadRequest:
		kind = sdk.ErrInvalidArgument
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		kind = sdk.ErrPermissionDenied
	case status == http.StatusPaymentRequired:
		kind = sdk.ErrFailedPrecondition
	case status == http.StatusNotFound:
		kind = sdk.ErrNotFound
	case status == http.StatusConflict, status == http.StatusTooManyRequests, status >= 500:
		kind = sdk.ErrRetryable
	default:
		kind = errors.New("unexpected answer")
	}
	msg := fmt.Sprintf("Stripe %s: %d %s", op, se.HTTPStatusCode, s.redact(se.Msg))
	if se.Type != "" {
		msg += fmt.Sprintf(" (type %s", se.Type)
		if se.Code != "" {
			msg += ", code " + string(se.Code)
		}
		if se.Param != "" {
			msg += ", param " + s.redact(se.Param)
		}
		msg += ")"
	}
	if se.RequestID != "" {
		msg += ", request " + se.RequestID
	}
	return fmt.Errorf("%s: %w", msg, kind)
}

// Settings implements sdk.Billing.
func (b *billing) Settings(context.Context) ([]sdk.Setting, error) {
	return append([]sdk.Setting(nil), settingsDoc...), nil
}

// CheckSettings implements sdk.Billing: the shapes of the secrets, the
// API base, and then one cheap read (the newest Checkout Session) that
// tells whether Stripe takes the key.
func (b *billing) CheckSettings(ctx context.Context, m map[string]string) error {
	s, err := parseSettings(m, needKey|needWebhookSecret)
	if err != nil {
		return err
	}
	params := &stripe.CheckoutSessionListParams{}
	params.Limit = stripe.Int64(1)
	for _, err := range b.client(s).V1CheckoutSessions.List(ctx, params) {
		if err != nil {
			err = stripeError(ctx, "check of the secret key", s, err)
			if errors.Is(err, sdk.ErrPermissionDenied) {
				return fmt.Errorf("setting %q: Stripe refused the key (%s): %w", settingSecretKey, err.Error(), sdk.ErrInvalidArgument)
			}
			return err
		}
		break
	}
	return nil
}

// metadata is what the plugin records on Stripe's objects: the caller's
// metadata, then the gateway's ids, which win.
func metadata(req sdk.CheckoutRequest) map[string]string {
	md := maps.Clone(req.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	md["order_id"] = req.OrderID
	if req.UserID != "" {
		md["user_id"] = req.UserID
	}
	md["plan_id"] = req.Plan.ID
	return md
}

// CreateCheckout implements sdk.Billing: a Checkout Session in payment
// mode for a one-off plan, in subscription mode for a monthly or yearly
// one, priced inline from the plan.
func (b *billing) CreateCheckout(ctx context.Context, req sdk.CheckoutRequest) (sdk.Checkout, error) {
	s, err := parseSettings(req.Settings, needKey)
	if err != nil {
		return sdk.Checkout{}, err
	}
	plan := req.Plan
	md := metadata(req)
	price := &stripe.CheckoutSessionCreateLineItemPriceDataParams{
		Currency:    stripe.String(plan.Currency),
		UnitAmount:  stripe.Int64(plan.PriceMinor),
		ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripe.String(plan.Name)},
	}
	if plan.Description != "" {
		price.ProductData.Description = stripe.String(plan.Description)
	}
	params := &stripe.CheckoutSessionCreateParams{
		ClientReferenceID: stripe.String(req.OrderID),
		SuccessURL:        stripe.String(req.SuccessURL),
		LineItems:         []*stripe.CheckoutSessionCreateLineItemParams{{PriceData: price, Quantity: stripe.Int64(1)}},
		Metadata:          md,
	}
	if req.CancelURL != "" {
		params.CancelURL = stripe.String(req.CancelURL)
	}
	switch {
	case req.CustomerID != "":
		params.Customer = stripe.String(req.CustomerID)
	case req.CustomerEmail != "":
		params.CustomerEmail = stripe.String(req.CustomerEmail)
	}
	if plan.Recurring() {
		params.Mode = stripe.String(string(stripe.CheckoutSessionModeSubscription))
		price.Recurring = &stripe.CheckoutSessionCreateLineItemPriceDataRecurringParams{Interval: stripe.String(plan.Interval)}
		// The subscription, its invoices and their events carry the ids.
		params.SubscriptionData = &stripe.CheckoutSessionCreateSubscriptionDataParams{Metadata: md}
	} else {
		params.Mode = stripe.String(string(stripe.CheckoutSessionModePayment))
		params.PaymentIntentData = &stripe.CheckoutSessionCreatePaymentIntentDataParams{Metadata: md}
		if req.CustomerID == "" {
			// A customer, so that the portal and the invoice list work
			// for buyers of one-off plans too.
			params.CustomerCreation = stripe.String(string(stripe.CheckoutSessionCustomerCreationAlways))
		}
	}
	params.SetIdempotencyKey(idempotencyKey("checkout", req.IdempotencyKey))
	cs, err := b.client(s).V1CheckoutSessions.Create(ctx, params)
	if err != nil {
		return sdk.Checkout{}, stripeError(ctx, "checkout for order "+req.OrderID, s, err)
	}
	out := sdk.Checkout{SessionID: cs.ID, URL: cs.URL}
	if cs.Customer != nil {
		out.CustomerID = cs.Customer.ID
	}
	if cs.ExpiresAt > 0 {
		out.ExpiresAt = time.Unix(cs.ExpiresAt, 0).UTC()
	}
	return out, nil
}

// CreatePortal implements sdk.Billing: a billing portal session.
func (b *billing) CreatePortal(ctx context.Context, req sdk.PortalRequest) (sdk.Portal, error) {
	s, err := parseSettings(req.Settings, needKey)
	if err != nil {
		return sdk.Portal{}, err
	}
	params := &stripe.BillingPortalSessionCreateParams{Customer: stripe.String(req.CustomerID), ReturnURL: stripe.String(req.ReturnURL)}
	params.SetIdempotencyKey(idempotencyKey("portal", req.IdempotencyKey))
	ps, err := b.client(s).V1BillingPortalSessions.Create(ctx, params)
	if err != nil {
		return sdk.Portal{}, stripeError(ctx, "portal for customer "+req.CustomerID, s, err)
	}
	return sdk.Portal{URL: ps.URL}, nil
}

// ListInvoices implements sdk.Billing.
func (b *billing) ListInvoices(ctx context.Context, req sdk.InvoicesRequest) ([]sdk.Invoice, error) {
	s, err := parseSettings(req.Settings, needKey)
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit <= 0 {
		limit = defaultInvoiceLimit
	}
	limit = min(limit, maxInvoiceLimit)
	params := &stripe.InvoiceListParams{Customer: stripe.String(req.CustomerID)}
	params.Limit = stripe.Int64(int64(limit))
	out := []sdk.Invoice{}
	for inv, err := range b.client(s).V1Invoices.List(ctx, params) {
		if err != nil {
			return nil, stripeError(ctx, "invoices of customer "+req.CustomerID, s, err)
		}
		out = append(out, invoice(inv))
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

func invoice(in *stripe.Invoice) sdk.Invoice {
	out := sdk.Invoice{
		ID: in.ID, Number: in.Number, Status: string(in.Status), AmountDueMinor: in.AmountDue, AmountPaidMinor: in.AmountPaid,
		Currency: string(in.Currency), HostedURL: in.HostedInvoiceURL, PDFURL: in.InvoicePDF, SubscriptionID: invoiceSubscription(in),
	}
	if in.Created > 0 {
		out.Created = time.Unix(in.Created, 0).UTC()
	}
	return out
}

// invoiceSubscription is the subscription an invoice bills, if any.
func invoiceSubscription(in *stripe.Invoice) string {
	if in.Parent != nil && in.Parent.SubscriptionDetails != nil && in.Parent.SubscriptionDetails.Subscription != nil {
		return in.Parent.SubscriptionDetails.Subscription.ID
	}
	return ""
}

// CancelSubscription implements sdk.Billing: at period end it sets
// cancel_at_period_end, otherwise it cancels at once.
func (b *billing) CancelSubscription(ctx context.Context, req sdk.CancelRequest) error {
	s, err := parseSettings(req.Settings, needKey)
	if err != nil {
		return err
	}
	c := b.client(s)
	if req.AtPeriodEnd {
		params := &stripe.SubscriptionUpdateParams{CancelAtPeriodEnd: stripe.Bool(true)}
		params.SetIdempotencyKey(idempotencyKey("cancel-at-period-end", req.IdempotencyKey))
		_, err = c.V1Subscriptions.Update(ctx, req.SubscriptionID, params)
	} else {
		params := &stripe.SubscriptionCancelParams{}
		params.SetIdempotencyKey(idempotencyKey("cancel", req.IdempotencyKey))
		_, err = c.V1Subscriptions.Cancel(ctx, req.SubscriptionID, params)
	}
	if err != nil {
		return stripeError(ctx, "cancel of subscription "+req.SubscriptionID, s, err)
	}
	return nil
}
