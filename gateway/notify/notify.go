// Package notify turns the events the gateway emits (package events) into
// notifications: operator-configured channels, routes that pick which
// events go where, users' personal targets, templates, and a durable
// delivery outbox that calls notifier plugins with retries, in order per
// channel, and a dead letter.
//
// The data flows one way. A service emits an event in the transaction of
// its change; the dispatcher (a leader duty) reads the event outbox and, in
// one transaction, writes a delivery per (event, channel, target) with the
// message rendered, and removes the event; the deliverer sends each
// delivery through the plugin that offers its channel's type, with the
// channel's settings (secrets unsealed only for the call) and an
// idempotency key that stays the same across retries and replicas.
package notify

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/pluginhost"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// PermAdmin lets a role manage channels, routes and templates, send test
// messages and read every delivery.
const PermAdmin = "notifications:admin"

// Plugins is how notify reaches notifier plugins: the plugin host.
type Plugins interface {
	Notifiers() []pluginhost.NamedNotifier
}

// Users looks up what personal delivery needs about a user.
type Users interface {
	// Email returns the user's address, empty when they have none.
	Email(userID string) (string, error)
}

// Options configure the Service. Zero retry fields take the defaults.
type Options struct {
	DB      *store.DB
	Box     *secretbox.Box
	Plugins Plugins
	Users   Users
	Audit   *audit.Log
	Logger  *slog.Logger
	Now     func() time.Time
	// MaxAttempts is how many failed sends make a delivery dead.
	MaxAttempts int
	// RetryMin and RetryMax bound the jittered exponential backoff.
	RetryMin, RetryMax time.Duration
	// Retention is how long delivered and dead deliveries are kept.
	Retention time.Duration
	// CallTimeout bounds one plugin call.
	CallTimeout time.Duration
}

// Service is the notification service.
type Service struct {
	db      *store.DB
	box     *secretbox.Box
	plugins Plugins
	users   Users
	audit   *audit.Log
	log     *slog.Logger
	opts    Options
	wake    chan struct{}
	// outcomes counts delivery attempts by outcome.
	outcomes *prometheus.CounterVec
}

// Collectors are the service's metrics.
func (s *Service) Collectors() []prometheus.Collector { return []prometheus.Collector{s.outcomes} }

// New makes the service and registers the commit hook that wakes the
// outbox when an event or a delivery is written, here or on another
// replica.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxAttempts < 1 {
		o.MaxAttempts = 10
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 5 * time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(time.Hour, o.RetryMin)
	}
	if o.Retention <= 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	s := &Service{db: o.DB, box: o.Box, plugins: o.Plugins, users: o.Users, audit: o.Audit, log: o.Logger, opts: o, wake: make(chan struct{}, 1),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_notification_deliveries_total",
			Help: "Notification delivery attempts by outcome: delivered, retried, dead, waited (no plugin could take it).",
		}, []string{"outcome"})}
	o.DB.OnCommit(func(changes []store.Change) {
		for _, c := range changes {
			if c.Table == events.Table() || c.Table == deliveries.Name() || c.Table == store.AllChanged.Table {
				s.Wake()
				return
			}
		}
	})
	return s
}

// Wake makes the outbox look for work now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// notifier finds the running plugin that offers channel type typ (only
// the plugin called plugin, when set), and the channel as it describes it.
func (s *Service) notifier(ctx context.Context, typ, plugin string) (pluginclient.Notifier, sdk.Channel, string, error) {
	unavailable := false
	for _, n := range s.plugins.Notifiers() {
		if plugin != "" && n.Name != plugin {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
		chans, err := n.Notifier.ListChannels(cctx)
		cancel()
		if err != nil {
			unavailable = true
			continue
		}
		for _, c := range chans {
			if c.Name == typ {
				return n.Notifier, c, n.Name, nil
			}
		}
	}
	if unavailable {
		return nil, sdk.Channel{}, "", fault.New(fault.Unavailable, "no notifier plugin offering channel type %q is available now; try again later", typ)
	}
	if plugin != "" {
		return nil, sdk.Channel{}, "", fault.New(fault.Conflict, "plugin %q does not offer channel type %q", plugin, typ)
	}
	return nil, sdk.Channel{}, "", fault.New(fault.Conflict, "no notifier plugin offers channel type %q: install berth-plugin-notify beside the berth binary, or configure a notifier plugin", typ)
}

// now reads the service's clock.
func (s *Service) now() time.Time { return s.opts.Now().UTC() }

// errorf wraps err with context for the log while keeping its kind.
func errorf(err error, format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, err)...)
}
