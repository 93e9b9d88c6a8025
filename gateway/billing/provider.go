package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// providerSettings are the payment provider's settings as an admin saved
// them; the secret ones sealed. One record ("provider").
type providerSettings struct {
	Plain       map[string]string `json:"plain,omitempty"`
	Sealed      []byte            `json:"sealed,omitempty"`
	SecretNames []string          `json:"secret_names,omitempty"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

var settingsTable = store.NewTable[providerSettings]("billing_provider")

const settingsID, sealContext = "provider", "billing-provider-settings"

// processed remembers the provider events already applied, so that a
// replayed webhook changes nothing. Kept a year, far past any replay.
type processed struct {
	At        time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at"`
}

var processedEvents = store.NewTable[processed]("billing_provider_events").
	WithExpiry(func(p *processed) time.Time { return p.ExpiresAt })

// customers maps a user id to the provider's customer id.
var customers = store.NewTable[string]("billing_customers")

// Each user's calls to the provider (checkouts, portals, invoice lists)
// are bounded on their own: they all spend the operator's account's rate
// limit at the provider (Stripe's: 100 a second live, 25 in test mode),
// which the API's per-user limit (20 a second) would let one user
// exhaust for everyone. Ten at once and ten a minute is far more than a
// person clicking needs.
const (
	providerScope = "billing_provider"
	providerBurst = 10
)

// spend takes one of user's provider calls, or says when to come back.
func (s *Service) spend(user string) error {
	if ok, wait := s.calls.Allow(providerScope, user); !ok {
		secs := ratelimit.RetryAfterSeconds(wait)
		return fault.New(fault.TooMany, "too many requests to the payment provider; retry in %d seconds", secs).Retry(time.Duration(secs) * time.Second)
	}
	return nil
}

// provider returns the billing plugin, failing closed (503) when there is
// none or it is down: new purchases need it; entitlements do not.
func (s *Service) provider() (pluginclient.Billing, error) {
	if s.opts.Provider == nil {
		return nil, fault.New(fault.Unavailable, "no billing plugin is installed: install berth-plugin-billing-stripe beside berth")
	}
	b, err := s.opts.Provider()
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "the billing plugin is unavailable; try again later")
	}
	return b, nil
}

// settings returns the saved provider settings, secrets unsealed.
func (s *Service) settings(tx *store.Tx) (map[string]string, error) {
	ps, err := settingsTable.Get(tx, settingsID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.New(fault.Conflict, "billing is not set up: an administrator must save the provider's settings (PUT /api/v1/billing/settings)")
	}
	if err != nil {
		return nil, err
	}
	out := maps.Clone(ps.Plain)
	if out == nil {
		out = map[string]string{}
	}
	if len(ps.Sealed) > 0 {
		plain, err := s.opts.Box.Open(ps.Sealed, sealContext)
		if err != nil {
			return nil, fmt.Errorf("unseal billing settings: %w", err)
		}
		var secrets map[string]string
		if err := json.Unmarshal(plain, &secrets); err != nil {
			return nil, err
		}
		maps.Copy(out, secrets)
	}
	return out, nil
}

// SettingsView is the provider settings as the API shows them: secrets as
// "<name>_configured": true.
func (s *Service) SettingsView() (map[string]any, error) {
	out := map[string]any{}
	err := s.db.View(func(tx *store.Tx) error {
		ps, err := settingsTable.Get(tx, settingsID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		for k, v := range ps.Plain {
			out[k] = v
		}
		for _, k := range ps.SecretNames {
			out[k+"_configured"] = true
		}
		out["updated_at"] = ps.UpdatedAt
		return nil
	})
	return out, err
}

// SaveSettings checks the provider settings with the plugin and stores
// them, secrets sealed. Settings left out keep their values; "" clears.
func (s *Service) SaveSettings(ctx context.Context, in map[string]string) error {
	b, err := s.provider()
	if err != nil {
		return err
	}
	decl, err := b.Settings(ctx)
	if err != nil {
		return fault.Wrap(fault.Unavailable, err, "the billing plugin did not answer")
	}
	known := map[string]sdk.Setting{}
	for _, st := range decl {
		known[st.Name] = st
	}
	var all map[string]string
	if err := s.db.View(func(tx *store.Tx) (err error) {
		all, err = s.settings(tx)
		if fault.Is(err, fault.Conflict) {
			all, err = map[string]string{}, nil
		}
		return err
	}); err != nil {
		return err
	}
	for k := range in {
		if _, ok := known[k]; !ok {
			return fault.New(fault.Invalid, "the billing plugin has no setting %q", k)
		}
	}
	if err := secretsResent(all, in, known); err != nil {
		return err
	}
	for k, v := range in {
		if v == "" {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	if err := b.CheckSettings(ctx, all); err != nil {
		if errors.Is(err, sdk.ErrInvalidArgument) {
			return fault.Wrap(fault.Invalid, err, "the billing plugin refused the settings: %s", pluginMessage(err))
		}
		return err
	}
	ps := &providerSettings{Plain: map[string]string{}, UpdatedAt: s.now()}
	secrets := map[string]string{}
	for k, v := range all {
		if known[k].Secret {
			secrets[k] = v
		} else {
			ps.Plain[k] = v
		}
	}
	if len(secrets) > 0 {
		blob, _ := json.Marshal(secrets)
		ps.Sealed, ps.SecretNames = s.opts.Box.Seal(blob, sealContext), slices.Sorted(maps.Keys(secrets))
	}
	return s.db.Update(func(tx *store.Tx) error { return settingsTable.Put(tx, settingsID, ps) })
}

// secretsResent refuses a change of a plain setting (the provider's API
// address) that keeps saved secrets, unless it sends them again. Secrets
// are write-only so that billing admins cannot read them; without this
// they could have them sent elsewhere instead: the check of the new
// settings presents the kept API key to the new address.
func secretsResent(cur, in map[string]string, known map[string]sdk.Setting) error {
	var changed string
	for k, v := range in {
		if !known[k].Secret && v != cur[k] {
			changed = k
			break
		}
	}
	if changed == "" {
		return nil
	}
	var missing []string
	for k := range cur {
		if _, ok := in[k]; known[k].Secret && !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fault.New(fault.Invalid, "changing %q would send the saved secrets to the new settings: send %s again with it", changed, strings.Join(missing, ", "))
	}
	return nil
}

// Checkout starts paying user's pending order through the provider and
// returns where to send the user. Retries of one order reuse one session
// (the order id is the idempotency key).
func (s *Service) Checkout(ctx context.Context, id, user, email string) (string, error) {
	var o *Order
	var settings map[string]string
	var customer string
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		if o, err = s.ownOrder(tx, id, user); err != nil {
			return err
		}
		if settings, err = s.settings(tx); err != nil {
			return err
		}
		if c, err := customers.Get(tx, o.UserID); err == nil {
			customer = *c
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	s.expire(o)
	if o.Status != Pending {
		return "", fault.New(fault.Conflict, "the order is %s; only a pending order can be paid", o.Status)
	}
	if o.CheckoutURL != "" {
		return o.CheckoutURL, nil
	}
	b, err := s.provider()
	if err != nil {
		return "", err
	}
	if s.opts.PublicURL == "" {
		return "", fault.New(fault.Conflict, "public_url is not set: the provider needs it to send the user back")
	}
	if err := s.spend(o.UserID); err != nil {
		return "", err
	}
	p := o.Plan
	c, err := b.CreateCheckout(ctx, sdk.CheckoutRequest{IdempotencyKey: "checkout-" + o.ID, Settings: settings, OrderID: o.ID, UserID: o.UserID,
		CustomerEmail: email, CustomerID: customer,
		Plan:       sdk.Plan{ID: p.ID, Name: p.Name, PriceMinor: p.Price, Currency: p.Currency, Interval: p.Interval},
		SuccessURL: s.opts.PublicURL + "/billing/orders/" + o.ID + "?checkout=success",
		CancelURL:  s.opts.PublicURL + "/billing/orders/" + o.ID + "?checkout=cancel"})
	if err != nil {
		return "", err
	}
	err = s.db.Update(func(tx *store.Tx) error {
		cur, err := orders.Get(tx, o.ID)
		if err != nil {
			return err
		}
		cur.SessionID, cur.CheckoutURL, cur.UpdatedAt = c.SessionID, c.URL, s.now()
		if c.CustomerID != "" {
			cur.CustomerID = c.CustomerID
			v := c.CustomerID
			if err := customers.Put(tx, o.UserID, &v); err != nil {
				return err
			}
		}
		return orders.Put(tx, o.ID, cur)
	})
	return c.URL, err
}

// pluginMessage is the plugin's own words for a refusal.
func pluginMessage(err error) string {
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

// Portal returns the provider's customer portal for user, where they
// manage their subscription and payment methods.
func (s *Service) Portal(ctx context.Context, user string) (string, error) {
	var settings map[string]string
	var customer string
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		if settings, err = s.settings(tx); err != nil {
			return err
		}
		c, err := customers.Get(tx, user)
		if errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.Conflict, "you have not paid through the provider yet: there is no customer account to manage")
		}
		if err == nil {
			customer = *c
		}
		return err
	})
	if err != nil {
		return "", err
	}
	b, err := s.provider()
	if err != nil {
		return "", err
	}
	if err := s.spend(user); err != nil {
		return "", err
	}
	p, err := b.CreatePortal(ctx, sdk.PortalRequest{IdempotencyKey: store.NewID("portal"), Settings: settings, CustomerID: customer, ReturnURL: s.opts.PublicURL + "/billing"})
	if err != nil {
		return "", err
	}
	return p.URL, nil
}

// Invoices lists user's invoices at the provider, newest first.
func (s *Service) Invoices(ctx context.Context, user string, limit int) ([]sdk.Invoice, error) {
	var settings map[string]string
	var customer string
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		if settings, err = s.settings(tx); err != nil {
			return err
		}
		c, err := customers.Get(tx, user)
		if err == nil {
			customer = *c
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil || customer == "" {
		return []sdk.Invoice{}, err
	}
	b, err := s.provider()
	if err != nil {
		return nil, err
	}
	if err := s.spend(user); err != nil {
		return nil, err
	}
	return b.ListInvoices(ctx, sdk.InvoicesRequest{Settings: settings, CustomerID: customer, Limit: limit})
}
