package config

import "time"

// DNS manages clusters' hostnames under a base domain through a DNS plugin
// (docs/dns.md). With BaseDomain set here, the file owns the settings:
// they are stored at every start and the API cannot change them; without
// it, an administrator sets them with PUT /api/v1/dns/settings.
type DNS struct {
	// BaseDomain is the domain under which every cluster gets
	// <cluster>.<base_domain> (environment: BERTH_DNS_BASE_DOMAIN).
	BaseDomain string `yaml:"base_domain"`
	// Plugin is the DNS plugin instance (plugins.instances) that serves
	// the zone.
	Plugin string `yaml:"plugin"`
	// Zone is the plugin's zone holding BaseDomain; empty: BaseDomain.
	Zone string `yaml:"zone"`
	// TargetHostname (a CNAME target) or TargetAddresses (A/AAAA) is
	// where the clusters' names point: the edge that serves their
	// workloads.
	TargetHostname  string   `yaml:"target_hostname"`
	TargetAddresses []string `yaml:"target_addresses"`
	// TTL of Berth's records, in seconds (300 when 0).
	TTL int `yaml:"ttl"`
	// Resolver (ip:port) checks whether hostnames resolve where they
	// should; empty: not checked.
	Resolver string `yaml:"resolver"`
	// OwnerID marks this Berth's records in a zone others share
	// ("berth" when empty).
	OwnerID string `yaml:"owner_id"`
	// Interval is the time between reconciler passes.
	Interval Duration `yaml:"interval"`
}

// validateDNS checks what only the file sets; the settings themselves are
// checked as the API's are, when the gateway stores them at start.
func (c *Config) validateDNS() error {
	if d := c.DNS.Interval.D(); d != 0 && d < time.Second {
		return &Error{"dns.interval", "must be at least 1s"}
	}
	if c.DNS.BaseDomain == "" && (c.DNS.Plugin != "" || c.DNS.TargetHostname != "" || len(c.DNS.TargetAddresses) > 0) {
		return &Error{"dns.base_domain", "is required with dns.plugin and a target"}
	}
	return nil
}
