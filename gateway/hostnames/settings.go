package hostnames

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
)

// Settings put clusters' hostnames under a base domain. An empty
// BaseDomain turns managed DNS off: every hostname is then self-managed.
// The JSON field names are the API's.
type Settings struct {
	// BaseDomain is the domain under which every cluster gets
	// <cluster>.<base_domain>, e.g. "apps.example.com".
	BaseDomain string `json:"base_domain"`
	// Plugin is the DNS plugin instance that serves the zone.
	Plugin string `json:"plugin"`
	// Zone is the zone at the plugin that holds BaseDomain; empty means
	// BaseDomain is itself the zone.
	Zone string `json:"zone,omitempty"`
	// TargetHostname is where each cluster's name points (a CNAME), e.g.
	// the edge load balancer's hostname; or TargetAddresses, its A and
	// AAAA records. Exactly one is set.
	TargetHostname  string   `json:"target_hostname,omitempty"`
	TargetAddresses []string `json:"target_addresses,omitempty"`
	// TTL of the records Berth writes, in seconds.
	TTL int `json:"ttl,omitempty"`
	// Resolver (host:port) is asked whether a hostname resolves where it
	// should: the hostnames' status. Empty: not checked (status stays
	// pending). Never the machine's own resolver unless named here.
	Resolver string `json:"resolver,omitempty"`
	// OwnerID tells this Berth's records from another's in a shared zone
	// (external-dns' txt-owner-id). Defaults to "berth".
	OwnerID   string    `json:"owner_id,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Enabled reports whether Berth manages DNS.
func (s Settings) Enabled() bool { return s.BaseDomain != "" }

// ZoneName is the zone the records are in, fully qualified.
func (s Settings) ZoneName() string {
	z := s.Zone
	if z == "" {
		z = s.BaseDomain
	}
	return z + "."
}

// Target is the cluster name of cluster: <cluster>.<base_domain>, or ""
// when managed DNS is off.
func (s Settings) Target(cluster string) string {
	if !s.Enabled() {
		return ""
	}
	return cluster + "." + s.BaseDomain
}

// Defaults for what the settings leave out.
const (
	DefaultTTL     = 300
	DefaultOwnerID = "berth"
)

func (s Settings) ttl() time.Duration {
	if s.TTL == 0 {
		return DefaultTTL * time.Second
	}
	return time.Duration(s.TTL) * time.Second
}

func (s Settings) owner() string {
	if s.OwnerID == "" {
		return DefaultOwnerID
	}
	return s.OwnerID
}

var ownerIDChars = func(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
}

// normalize checks s and brings it to its stored form.
func (s *Settings) normalize() error {
	s.BaseDomain, s.Zone, s.TargetHostname = Normalize(s.BaseDomain), Normalize(s.Zone), Normalize(s.TargetHostname)
	if !s.Enabled() {
		if s.Plugin != "" || s.Zone != "" || s.TargetHostname != "" || len(s.TargetAddresses) > 0 {
			return fault.New(fault.Invalid, "base_domain is required with plugin, zone or a target (an empty base_domain turns managed DNS off)")
		}
		return nil
	}
	if strings.HasPrefix(s.BaseDomain, "*") {
		return fault.New(fault.Invalid, "base_domain cannot be a wildcard")
	}
	if err := CheckHostname(s.BaseDomain); err != nil {
		return fault.New(fault.Invalid, "base_domain: %v", err)
	}
	if s.Zone != "" && !Under(s.BaseDomain, s.Zone) {
		return fault.New(fault.Invalid, "zone %q does not hold base_domain %q", s.Zone, s.BaseDomain)
	}
	if s.Zone != "" && !strings.Contains(s.Zone, ".") {
		return fault.New(fault.Invalid, "zone %q is a top-level domain", s.Zone)
	}
	if s.Plugin == "" {
		return fault.New(fault.Invalid, "plugin is required: the DNS plugin that serves the zone")
	}
	switch {
	case s.TargetHostname == "" && len(s.TargetAddresses) == 0:
		return fault.New(fault.Invalid, "set target_hostname (a CNAME target) or target_addresses (A/AAAA)")
	case s.TargetHostname != "" && len(s.TargetAddresses) > 0:
		return fault.New(fault.Invalid, "set target_hostname or target_addresses, not both")
	case s.TargetHostname != "":
		if err := CheckHostname(s.TargetHostname); err != nil || strings.HasPrefix(s.TargetHostname, "*") {
			return fault.New(fault.Invalid, "target_hostname %q is not a hostname", s.TargetHostname)
		}
		if Under(s.TargetHostname, s.BaseDomain) {
			// A cluster's name could then point at itself or another's.
			return fault.New(fault.Invalid, "target_hostname %q is under base_domain; point at the edge's own name", s.TargetHostname)
		}
	default:
		if len(s.TargetAddresses) > 8 {
			return fault.New(fault.Invalid, "at most 8 target_addresses")
		}
		for i, a := range s.TargetAddresses {
			ip, err := netip.ParseAddr(a)
			if err != nil || ip.Zone() != "" || ip.IsUnspecified() || ip.IsMulticast() {
				return fault.New(fault.Invalid, "target_addresses[%d]: %q is not a unicast IP address", i, a)
			}
			s.TargetAddresses[i] = ip.Unmap().String()
		}
		slices.Sort(s.TargetAddresses)
		s.TargetAddresses = slices.Compact(s.TargetAddresses)
	}
	if s.TTL != 0 && (s.TTL < 30 || s.TTL > 86400) {
		return fault.New(fault.Invalid, "ttl must be from 30 to 86400 seconds")
	}
	if s.Resolver != "" {
		// An address, not a name (which would need a resolver to find);
		// a port number (a service name would be looked up).
		host, port, err := net.SplitHostPort(s.Resolver)
		_, perr := netip.ParseAddr(host)
		n, nerr := strconv.Atoi(port)
		if err != nil || perr != nil || nerr != nil || n < 1 || n > 65535 {
			return fault.New(fault.Invalid, "resolver must be an IP address and port, e.g. 1.1.1.1:53")
		}
	}
	if len(s.OwnerID) > 32 || strings.IndexFunc(s.OwnerID, ownerIDChars) >= 0 {
		return fault.New(fault.Invalid, "owner_id is at most 32 lower-case letters, digits, '-' or '_'")
	}
	return nil
}

// settingsTable holds one record, "dns".
var settingsTable = store.NewTable[Settings]("dns_settings")

const settingsID = "dns"

func readSettings(tx *store.Tx) (Settings, error) {
	s, err := settingsTable.Get(tx, settingsID)
	if errors.Is(err, store.ErrNotFound) {
		return Settings{}, nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("read dns settings: %w", err)
	}
	return *s, nil
}
