package billing

import (
	"time"

	"github.com/berthgw/berth/gateway/store"
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
}

// Service is plans, orders and entitlements.
type Service struct {
	db   *store.DB
	now  func() time.Time
	opts Options
}

// New makes the service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{db: o.DB, now: func() time.Time { return o.Now().UTC() }, opts: o}
}
