package gateway

import (
	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/notify"
)

// initNotify builds the notification service on the plugin host and
// registers its permission; its outbox runs as a leader duty.
func (g *Gateway) initNotify() {
	identity.RegisterPermission(notify.PermAdmin, "manage notification channels, routes and templates, send test messages and read deliveries")
	n := g.cfg.Plugins.Notify
	g.notify = notify.New(notify.Options{
		DB: g.db, Box: g.box, Plugins: g.plugins, Users: userEmails{g.identity}, Audit: g.audit, Logger: g.log, Now: g.clock,
		MaxAttempts: n.MaxAttempts, RetryMin: n.RetryMin.D(), RetryMax: n.RetryMax.D(), Retention: n.DeadRetention.D(),
		CallTimeout: g.cfg.Plugins.CallTimeout.D(),
	})
	g.metrics.Register(g.notify.Collectors()...)
	g.notifyAPI = notify.NewHandlers(g.notify, g.authn, g.audit)
}

// notifyRoutes is the notifications block of the route table.
func (g *Gateway) notifyRoutes() []authn.Route { return notify.Routes(g.notifyAPI) }

// userEmails gives notify the address of a user's account.
type userEmails struct{ ids *identity.Service }

func (u userEmails) Email(id string) (string, error) {
	usr, err := u.ids.GetUser(id)
	if err != nil {
		return "", err
	}
	return usr.Email, nil
}
