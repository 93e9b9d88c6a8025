package billing

import (
	"log/slog"
	"time"

	"github.com/berthgw/berth/gateway/ratelimit"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// Options configure the Service.
type Options struct {
	DB  *store.DB
	Now func() time.Time
	// DefaultLimits are the configured quotas, in force for users
	// without a plan.
	DefaultLimits Entitlements
	// Usage reports what a user's clusters hold against the quota.
	Usage func(user string) (Usage, error)
	// Provider returns the billing plugin; nil: none installed.
	Provider func() (pluginclient.Billing, error)
	// Box seals the provider's secret settings.
	Box *secretbox.Box
	// PublicURL is Berth's address as users reach it, for the provider's
	// return links.
	PublicURL string
	// Email returns a user's address for the provider's receipts ("" if
	// none).
	Email func(user string) string
	// Log receives what background work could not do (nil: discarded).
	Log *slog.Logger
}

func (o Options) logError(msg string, err error) {
	if o.Log != nil {
		o.Log.Error(msg, "err", err)
	}
}

// Service is plans, orders and entitlements.
type Service struct {
	db   *store.DB
	now  func() time.Time
	opts Options
	// calls bounds each user's calls to the provider (spend).
	calls *ratelimit.Limiter
}

// New makes the service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Email == nil {
		o.Email = func(string) string { return "" }
	}
	calls := ratelimit.New(ratelimit.Options{Now: o.Now, Scopes: map[string]ratelimit.Limit{
		providerScope: ratelimit.PerPeriod(providerBurst, time.Minute, providerBurst),
	}})
	return &Service{db: o.DB, now: func() time.Time { return o.Now().UTC() }, opts: o, calls: calls}
}
