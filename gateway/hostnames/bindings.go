package hostnames

import (
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk/pluginclient"
)

// DNS management scopes and statuses (the API's values).
const (
	PlatformManaged = "platform_managed"
	SelfManaged     = "self_managed"

	NotManaged = "not_managed"
	Pending    = "pending"
	Synced     = "synced"
	Error      = "error"

	// Ready is a hostname whose public resolution points where it should.
	Ready = "ready"
)

// Binding is a hostname bound to a cluster: traffic for it is the
// cluster's. A hostname belongs to one cluster only.
type Binding struct {
	ID       string `json:"id"`
	Cluster  string `json:"cluster"`
	Hostname string `json:"hostname"`
	// DNS* are Berth's own management of the hostname's record: scope
	// says whether Berth writes it (under the base domain) or the owner
	// does; status, message and times follow each reconciler pass.
	DNSScope        string     `json:"dns_management_scope"`
	DNSStatus       string     `json:"dns_management_status"`
	DNSMessage      string     `json:"dns_management_message,omitempty"`
	DNSLastSyncedAt *time.Time `json:"dns_management_last_synced_at,omitempty"`
	DNSLastError    string     `json:"dns_management_last_error,omitempty"`
	DNSLastErrorAt  *time.Time `json:"dns_management_last_error_at,omitempty"`
	// Status is whether public resolution (through the configured
	// resolver) already points where it should: pending, ready or error;
	// LastError says what it points at instead.
	Status    string `json:"status"`
	LastError string `json:"last_error,omitempty"`
	// ClusterCreatedAt is when the cluster it was bound to was created:
	// a cluster deleted and created again under the same name (by anyone)
	// is another cluster, which does not inherit its hostnames. Zero in
	// bindings made before it was kept.
	ClusterCreatedAt time.Time `json:"cluster_created_at,omitzero"`
	CreatedBy        string    `json:"created_by,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

var bindings = store.NewTable[Binding]("dns_bindings",
	store.Index[Binding]{Name: "hostname", Unique: true, Values: func(b *Binding) []string { return []string{b.Hostname} }},
	store.Index[Binding]{Name: "cluster", Values: func(b *Binding) []string { return []string{b.Cluster} }},
)

// ClusterDNS is the state of a cluster's own record,
// <cluster>.<base_domain>.
type ClusterDNS struct {
	Cluster       string     `json:"cluster"`
	Status        string     `json:"dns_management_status"`
	Message       string     `json:"dns_management_message,omitempty"`
	LastSyncedAt  *time.Time `json:"dns_management_last_synced_at,omitempty"`
	LastError     string     `json:"dns_management_last_error,omitempty"`
	LastErrorAt   *time.Time `json:"dns_management_last_error_at,omitempty"`
	IngressTarget string     `json:"ingress_cname_target,omitempty"`
	UpdatedAt     time.Time  `json:"updated_at,omitzero"`
}

var clusterStates = store.NewTable[ClusterDNS]("dns_cluster_states")

// fleet is the live clusters, each with the time it was created.
type fleet map[string]time.Time

// readFleet reads the live clusters.
func readFleet(tx *store.Tx) (fleet, error) {
	f, err := clusters.Live(tx)
	return fleet(f), err
}

// names are the live clusters' names, sorted.
func (f fleet) names() []string { return slices.Sorted(maps.Keys(f)) }

// holds reports whether b's cluster is live and is the cluster b was
// bound to, not a later one of the same name.
func (f fleet) holds(b *Binding) bool {
	born, ok := f[b.Cluster]
	return ok && (b.ClusterCreatedAt.IsZero() || b.ClusterCreatedAt.Equal(born))
}

// dropStale deletes the bindings whose cluster is gone (deleted, or
// deleted and created again), which the next pass would delete anyway:
// their names are free at once.
func dropStale(tx *store.Tx, f fleet) error {
	var stale []string
	err := bindings.Scan(tx, store.ScanOptions{}, func(id string, b *Binding) (bool, error) {
		if !f.holds(b) {
			stale = append(stale, id)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, id := range stale {
		if err := bindings.Delete(tx, id); err != nil {
			return err
		}
	}
	return nil
}

// MaxPerCluster bounds a cluster's hostnames: each is a record in a zone
// others share, and a query every pass.
const MaxPerCluster = 50

// ErrBindingNotFound: no such hostname on the cluster.
var ErrBindingNotFound = fault.New(fault.NotFound, "hostname binding not found")

// Options configure the Service.
type Options struct {
	DB  *store.DB
	Now func() time.Time
	// Provider returns the DNS plugin called name.
	Provider func(name string) (pluginclient.DNSProvider, error)
	// Interval is the time between reconciler passes (30 s when zero);
	// RetryMin and RetryMax bound the wait after a failed one (5 s and
	// 5 min).
	Interval, RetryMin, RetryMax time.Duration
	// QueryTimeout bounds one question to the resolver (2 s when zero).
	QueryTimeout time.Duration
	// Reserved are names no cluster may bind: Berth's own public
	// hostname. The target hostname of the settings is reserved too.
	Reserved []string
	Log      *slog.Logger
}

// Service is hostname bindings, the DNS settings and the reconciler.
type Service struct {
	db   *store.DB
	now  func() time.Time
	opts Options
	wake chan struct{}
	// fixed: the configuration file owns the settings (Fix).
	fixed bool
	// cached are the settings as last read, for IngressTarget, which a
	// cluster list asks once per cluster (on etcd, a round trip each).
	cached atomic.Pointer[cachedSettings]
}

type cachedSettings struct {
	at  time.Time
	set Settings
}

// settingsTTL is how long IngressTarget trusts the settings it read: a
// change made on another replica shows within it.
const settingsTTL = 5 * time.Second

// New makes the service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 5 * time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(5*time.Minute, o.RetryMin)
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: o.DB, now: func() time.Time { return o.Now().UTC() }, opts: o, wake: make(chan struct{}, 1)}
}

// Wake asks for a reconciler pass soon (after a change here).
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Settings returns the DNS settings.
func (s *Service) Settings() (Settings, error) {
	var out Settings
	err := s.db.View(func(tx *store.Tx) (err error) { out, err = readSettings(tx); return err })
	return out, err
}

// Fix stores the configuration file's settings, checked as the API's are,
// and refuses changes through the API from then on.
func (s *Service) Fix(in Settings) error {
	if _, err := s.save(in); err != nil {
		return err
	}
	s.fixed = true
	return nil
}

// SaveSettings checks and stores new settings; the plugin they name must
// be a DNS plugin Berth runs.
func (s *Service) SaveSettings(in Settings) (Settings, error) {
	if s.fixed {
		return Settings{}, fault.New(fault.Conflict, "the DNS settings are set in the configuration file (dns.base_domain); change them there")
	}
	return s.save(in)
}

func (s *Service) save(in Settings) (Settings, error) {
	if err := in.normalize(); err != nil {
		return Settings{}, err
	}
	if in.Enabled() {
		if s.opts.Provider == nil {
			return Settings{}, fault.New(fault.Invalid, "plugin %q: no DNS plugins are configured", in.Plugin)
		}
		if _, err := s.opts.Provider(in.Plugin); err != nil {
			return Settings{}, fault.Wrap(fault.Invalid, err, "plugin %q is not a DNS plugin Berth runs", in.Plugin)
		}
	}
	in.UpdatedAt = s.now()
	err := s.db.Update(func(tx *store.Tx) error {
		// Hostnames bound before are checked against the new base
		// domain: none may take a cluster's own name.
		if in.Enabled() {
			f, err := readFleet(tx)
			if err != nil {
				return err
			}
			live := f.names()
			var clash error
			err = bindings.Scan(tx, store.ScanOptions{}, func(_ string, b *Binding) (bool, error) {
				if !f.holds(b) {
					return true, nil // its cluster is gone; the next pass deletes it
				}
				if err := checkNotTaken(in, s.opts.Reserved, live, b.Cluster, b.Hostname); err != nil {
					clash = fault.New(fault.Conflict, "hostname %q of cluster %s would take a cluster's own name or the edge's under %s: %v", b.Hostname, b.Cluster, in.BaseDomain, err)
					return false, nil
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			if clash != nil {
				return clash
			}
		}
		old, err := readSettings(tx)
		if err != nil {
			return err
		}
		if err := retireOld(tx, old, in, in.UpdatedAt); err != nil {
			return err
		}
		return settingsTable.Put(tx, settingsID, &in)
	})
	if err != nil {
		return Settings{}, err
	}
	s.cached.Store(&cachedSettings{at: s.now(), set: in})
	s.Wake()
	return in, nil
}

// checkNotTaken refuses hostname for cluster when it is, or is a wildcard
// over, a reserved name (Berth's own hostname, the settings' target
// hostname: the edge's traffic); when it is the base domain; or is (or is
// under) another cluster's own name: traffic for those is theirs.
func checkNotTaken(set Settings, reserved, live []string, cluster, hostname string) error {
	name := strings.TrimPrefix(hostname, "*.")
	wildcard := name != hostname
	for _, r := range append(slices.Clip(reserved), set.TargetHostname) {
		if r = Normalize(r); r != "" && (name == r || wildcard && StrictlyUnder(r, name)) {
			return fault.New(fault.Invalid, "%q is or covers %s, Berth's own name", hostname, r)
		}
	}
	if !set.Enabled() {
		return nil
	}
	if Under(set.BaseDomain, name) {
		return fault.New(fault.Invalid, "%q is or holds the base domain %s", hostname, set.BaseDomain)
	}
	for _, c := range live {
		if own := set.Target(c); Under(name, own) && (c != cluster || name == own) {
			if c == cluster {
				return fault.New(fault.Invalid, "%q is the cluster's own name; Berth keeps it already", hostname)
			}
			return fault.New(fault.Invalid, "%q is under cluster %s's name", hostname, c)
		}
	}
	return nil
}

// scope is where hostname's record is kept under set.
func scope(set Settings, hostname string) string {
	if set.Enabled() && StrictlyUnder(strings.TrimPrefix(hostname, "*."), set.BaseDomain) {
		return PlatformManaged
	}
	return SelfManaged
}

// Bind binds hostname to cluster for user (whose right to has been
// checked).
func (s *Service) Bind(cluster, hostname, user string) (*Binding, error) {
	hostname = Normalize(strings.TrimSpace(hostname))
	if err := CheckHostname(hostname); err != nil {
		return nil, err
	}
	if len(ownerName(hostname)) > maxNameLength {
		return nil, fault.New(fault.Invalid, "hostname %q is too long for Berth's ownership record beside it; at most %d characters", hostname, maxNameLength-len(ownerName(""))-1)
	}
	var b *Binding
	err := s.db.Update(func(tx *store.Tx) error {
		set, err := readSettings(tx)
		if err != nil {
			return err
		}
		f, err := readFleet(tx)
		if err != nil {
			return err
		}
		born, ok := f[cluster]
		if !ok {
			return clusters.ErrNotFound
		}
		if err := dropStale(tx, f); err != nil {
			return err
		}
		if err := checkNotTaken(set, s.opts.Reserved, f.names(), cluster, hostname); err != nil {
			return err
		}
		if err := checkNotUnderOthers(tx, cluster, hostname); err != nil {
			return err
		}
		ids, err := bindings.IDsBy(tx, "cluster", cluster)
		if err != nil {
			return err
		}
		if len(ids) >= MaxPerCluster {
			return fault.New(fault.Conflict, "cluster %s has %d hostnames, the most it may have", cluster, len(ids))
		}
		now := s.now()
		b = &Binding{ID: store.NewID("hn"), Cluster: cluster, Hostname: hostname, Status: Pending, ClusterCreatedAt: born, CreatedBy: user, CreatedAt: now, UpdatedAt: now}
		b.DNSScope = scope(set, hostname)
		b.DNSStatus = NotManaged
		if b.DNSScope == PlatformManaged {
			b.DNSStatus, b.DNSMessage = Pending, "waiting for the next DNS pass"
		}
		err = bindings.Insert(tx, b.ID, b)
		if errors.Is(err, store.ErrDuplicate) {
			return fault.New(fault.Conflict, "hostname %q is bound already", hostname)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s.Wake()
	return b, nil
}

// checkNotUnderOthers refuses a hostname that overlaps one another
// cluster holds, in either order: under it ("x.shop.example.com" when
// shop.example.com is someone else's), over it ("example.com", or
// "*.example.com"), or a wildcard's own domain ("shop.example.com" when
// "*.shop.example.com" is someone else's, and the reverse). Whoever bound
// first keeps the tree; the same name twice is the store's conflict.
func checkNotUnderOthers(tx *store.Tx, cluster, hostname string) error {
	name := strings.TrimPrefix(hostname, "*.")
	var clash string
	err := bindings.Scan(tx, store.ScanOptions{}, func(_ string, b *Binding) (bool, error) {
		if b.Cluster == cluster || b.Hostname == hostname {
			return true, nil
		}
		other := strings.TrimPrefix(b.Hostname, "*.")
		if Under(name, other) || Under(other, name) {
			clash = b.Hostname
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if clash != "" {
		return fault.New(fault.Invalid, "%q overlaps %q, which another cluster holds", hostname, clash)
	}
	return nil
}

// Bindings returns cluster's hostnames and the state of its own record.
func (s *Service) Bindings(cluster string) ([]Binding, ClusterDNS, error) {
	out := []Binding{}
	var st ClusterDNS
	err := s.db.View(func(tx *store.Tx) error {
		set, err := readSettings(tx)
		if err != nil {
			return err
		}
		f, err := readFleet(tx)
		if err != nil {
			return err
		}
		ids, err := bindings.IDsBy(tx, "cluster", cluster)
		if err != nil {
			return err
		}
		for _, id := range ids {
			b, err := bindings.Get(tx, id)
			if err != nil {
				return err
			}
			if f.holds(b) {
				out = append(out, *b)
			}
		}
		st = ClusterDNS{Cluster: cluster, Status: NotManaged}
		if cur, err := clusterStates.Get(tx, cluster); err == nil {
			st = *cur
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if set.Enabled() && st.Status == NotManaged {
			st.Status, st.Message = Pending, "waiting for the next DNS pass"
		}
		if !set.Enabled() {
			st = ClusterDNS{Cluster: cluster, Status: NotManaged}
		}
		st.IngressTarget = set.Target(cluster)
		return nil
	})
	slices.SortFunc(out, func(a, b Binding) int { return strings.Compare(a.Hostname, b.Hostname) })
	return out, st, err
}

// Unbind removes hostname from cluster; its record goes on the next pass.
func (s *Service) Unbind(cluster, hostname string) (*Binding, error) {
	hostname = Normalize(hostname)
	var b *Binding
	err := s.db.Update(func(tx *store.Tx) error {
		cur, id, err := bindings.GetBy(tx, "hostname", hostname)
		if errors.Is(err, store.ErrNotFound) || (err == nil && cur.Cluster != cluster) {
			return ErrBindingNotFound
		}
		if err != nil {
			return err
		}
		f, err := readFleet(tx)
		if err != nil {
			return err
		}
		if !f.holds(cur) {
			return ErrBindingNotFound // an earlier cluster's of that name
		}
		b = cur
		return bindings.Delete(tx, id)
	})
	if err != nil {
		return nil, err
	}
	s.Wake()
	return b, nil
}

// IngressTarget is cluster's own name under the base domain, "" when
// managed DNS is off.
func (s *Service) IngressTarget(cluster string) string {
	now := s.now()
	c := s.cached.Load()
	if c == nil || now.Sub(c.at) >= settingsTTL || now.Before(c.at) {
		set, err := s.Settings()
		if err != nil {
			return ""
		}
		c = &cachedSettings{at: now, set: set}
		s.cached.Store(c)
	}
	return c.set.Target(cluster)
}
