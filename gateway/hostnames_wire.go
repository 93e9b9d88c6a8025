package gateway

import (
	"fmt"
	"net/url"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/hostnames"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// initHostnames builds managed DNS: hostname bindings and the reconciler
// (a leader duty). A dns.base_domain in the configuration file is stored
// as the settings at every start, and the API may not change them.
func (g *Gateway) initHostnames() error {
	c := g.cfg.DNS
	// Berth's own public hostname is nobody's to bind.
	var reserved []string
	if u, err := url.Parse(g.cfg.PublicURL); err == nil && u.Hostname() != "" {
		reserved = append(reserved, u.Hostname())
	}
	g.hostnames = hostnames.New(hostnames.Options{DB: g.db, Now: g.clock, Log: g.log, Interval: c.Interval.D(), Reserved: reserved,
		Provider: func(name string) (pluginclient.DNSProvider, error) { return g.plugins.DNS(name) }})
	if c.BaseDomain != "" {
		fixed := hostnames.Settings{BaseDomain: c.BaseDomain, Plugin: c.Plugin, Zone: c.Zone, TargetHostname: c.TargetHostname,
			TargetAddresses: c.TargetAddresses, TTL: c.TTL, Resolver: c.Resolver, OwnerID: c.OwnerID}
		if err := g.hostnames.Fix(fixed); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
	}
	g.hostnamesAPI = hostnames.NewHandlers(g.hostnames, g.authn, g.audit, g.clusters.Access)
	g.clusterAPI.IngressTarget = g.hostnames.IngressTarget
	return nil
}

// hostnameRoutes is managed DNS's block of the route table.
func (g *Gateway) hostnameRoutes() []authn.Route { return hostnames.Routes(g.hostnamesAPI) }
