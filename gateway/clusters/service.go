// Package clusters is Berth's cluster registry: clusters and the gateway's
// credentials for them (sealed at rest), who may reach each cluster and in
// which role, connection health, and the glue that sends authenticated
// traffic through the proxy.
package clusters

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/operations"
	"github.com/berthgw/berth/gateway/secretbox"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/internal/readmap"
	"github.com/berthgw/berth/proxy"
)

// Connection statuses kept fresh by the probe.
const (
	ConnPending     = "pending"
	ConnReachable   = "reachable"
	ConnUnreachable = "unreachable"
	ConnError       = "error"
)

// Member roles, weakest first. Each maps to a Kubernetes group the cluster
// binds to the ClusterRole of the same name (docs/clusters.md).
var Roles = []string{"view", "edit", "admin", "cluster-admin"}

// Record is a stored cluster. Sealed holds the Connection's secrets.
type Record struct {
	Name              string            `json:"name"`
	DisplayName       string            `json:"display_name,omitempty"`
	Description       string            `json:"description,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Server            string            `json:"server"`
	AuthType          string            `json:"auth_type"`
	Sealed            []byte            `json:"sealed"`
	ConnectionStatus  string            `json:"connection_status"`
	KubernetesVersion string            `json:"kubernetes_version,omitempty"`
	LastObservedAt    *time.Time        `json:"last_observed_at,omitempty"`
	LastError         string            `json:"last_error,omitempty"`
	// UnreachableSince is when probes stopped connecting to the cluster's
	// API server, while they still cannot: what cluster.unreachable and
	// cluster.recovered are the transitions of (probeTransition).
	UnreachableSince *time.Time `json:"unreachable_since,omitempty"`
	// Permissions are what the gateway's identity may do there, as last
	// probed.
	Permissions *Permissions `json:"permissions,omitempty"`
	// Status is the lifecycle status (Status* constants); records from
	// before provisioning existed have none and are ready.
	Status string `json:"status,omitempty"`
	// Provisioner is the plugin that made the cluster; empty for a
	// registered one. Shape is what it was asked to make.
	Provisioner string `json:"provisioner,omitempty"`
	Shape       *Shape `json:"shape,omitempty"`
	// Operation is the cluster's latest operation.
	Operation string     `json:"operation,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// Live reports whether the cluster has not been deleted.
func (r *Record) Live() bool { return r.Status != StatusDeleted }

// LifecycleStatus is Status, with ready for records that predate it.
func (r *Record) LifecycleStatus() string {
	if r.Status == "" {
		return StatusReady
	}
	return r.Status
}

// Member grants a user or a group a role on one cluster.
type Member struct {
	ID      string    `json:"id"`
	Cluster string    `json:"cluster"`
	Kind    string    `json:"kind"` // "user" or "group"
	Subject string    `json:"subject"`
	Name    string    `json:"name,omitempty"` // the username, for users
	Role    string    `json:"role"`
	Created time.Time `json:"created_at"`
}

var (
	records = store.NewTable[Record]("clusters")
	members = store.NewTable("cluster_members",
		store.Index[Member]{Name: "cluster", Values: func(m *Member) []string { return []string{m.Cluster} }},
		store.Index[Member]{Name: "subject", Unique: true, Values: func(m *Member) []string {
			return []string{m.Cluster + "\x1f" + m.Kind + "\x1f" + m.Subject}
		}},
	)
)

// Errors of the registry, testable with errors.Is; each is a fault, so a
// handler returns it as it is. A request the registry refuses as invalid
// is a fault of kind Invalid with its own message.
var (
	ErrNotFound = fault.New(fault.NotFound, "cluster not found")
	ErrExists   = fault.New(fault.Conflict, "a cluster with that name already exists")
	// ErrNotReady: the cluster is being provisioned and Berth has no
	// connection to it yet.
	ErrNotReady = fault.New(fault.Conflict, "the cluster has no connection yet: it is still being provisioned")
)

// Options configure the Service.
type Options struct {
	// ImpersonatePrefix starts every user and group name Berth asserts
	// to a cluster, so they cannot collide with the cluster's own.
	ImpersonatePrefix string
	// OmitExtras leaves out the impersonated extras (client address, auth
	// method, request id); the API server authorizes each one on every
	// request.
	OmitExtras bool
	// ProbeInterval is how often every cluster's /version is checked.
	ProbeInterval time.Duration
	// RecheckInterval is how often open streams read their access from
	// the store again although nothing was written (see recheck.go).
	RecheckInterval time.Duration
	// Now is the registry's clock: for the times it records and for
	// checking open streams' credentials for expiry, so it must be the
	// identity service's. Nil means time.Now.
	Now func() time.Time
	// ProbeTimeout bounds one probe.
	ProbeTimeout time.Duration
	// Lifecycle enables provisioning; without it clusters can only be
	// registered.
	Lifecycle Lifecycle
}

// Service manages clusters. Its Pool always mirrors the store.
type Service struct {
	db    *store.DB
	box   *secretbox.Box
	pool  *proxy.Pool
	audit *audit.Log
	ids   Identities
	log   *slog.Logger
	opts  Options
	stop  chan struct{}
	wg    sync.WaitGroup
	// changes and recheck let open streams be checked again when access
	// may have been withdrawn (see recheck.go).
	changes  changeLog
	recheck  chan struct{}
	expiries expirySchedule
	// names keeps the names asserted to clusters (see asserted).
	names readmap.Map[assertedName, string]
	// connMu serialises each write of a cluster record with the pool
	// change that follows it, so the pool always holds the connection of
	// the last write of a name: a Delete never detaches the connection of
	// a cluster registered again under its name in between.
	connMu sync.Mutex

	// roleHooks run after writes that may change a role (OnRoleChange);
	// unregisterHooks after a registered cluster is deleted (OnUnregister).
	hooksMu         sync.Mutex
	roleHooks       []func()
	unregisterHooks []unregisterHook
	// stopped is set by Stop (under hooksMu), after which no hook starts
	// in the background; ctx ends at Stop.
	stopped bool
	ctx     context.Context
	cancel  context.CancelFunc

	// cache holds every cluster record and its members. Every proxied
	// request needs both, and decoding them from the store each time was a
	// quarter of the gateway's CPU per request (docs/benchmarks.md). This
	// service refreshes an entry after each of its writes; writes by other
	// replicas reach it through the store's commit hook (follow.go).
	mu    sync.RWMutex
	cache map[string]*cachedCluster

	// syncMu guards pending, what followChanges has yet to sync; syncNow
	// wakes it.
	syncMu  sync.Mutex
	pending pendingSync
	syncNow chan struct{}
}

type cachedCluster struct {
	rec     Record
	members []Member
}

// Identities is what the service needs of identity (an *identity.Service):
// users by id or name, for memberships, who may act as whom (kubectl --as
// through the proxy), and word of every write that may withdraw someone's
// access, to check open streams again.
type Identities interface {
	GetUser(id string) (*identity.User, error)
	UserByName(name string) (*identity.User, error)
	Impersonate(caller *identity.Principal, username string) (*identity.Principal, error)
	OnChange(fn func([]identity.Change))
}

// NewService loads every stored cluster into pool. ids may be nil where no
// identity is at hand (tests of registration alone).
func NewService(db *store.DB, box *secretbox.Box, pool *proxy.Pool, au *audit.Log, ids Identities, log *slog.Logger, opts Options) (*Service, error) {
	if opts.ImpersonatePrefix == "" {
		opts.ImpersonatePrefix = "berth:"
	}
	if opts.RecheckInterval <= 0 {
		opts.RecheckInterval = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = 30 * time.Second
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = 5 * time.Second
	}
	s := &Service{db: db, box: box, pool: pool, audit: au, ids: ids, log: log, opts: opts, stop: make(chan struct{}),
		recheck: make(chan struct{}, 1), expiries: expirySchedule{rearm: make(chan struct{}, 1)}, cache: map[string]*cachedCluster{},
		pending: pendingSync{names: map[string]bool{}}, syncNow: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var all []Record
	err := db.View(func(tx *store.Tx) error {
		return records.Scan(tx, store.ScanOptions{}, func(_ string, r *Record) (bool, error) {
			all = append(all, *r)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load clusters: %w", err)
	}
	for i := range all {
		s.refresh(all[i].Name)
		if !all[i].Live() || all[i].Sealed == nil {
			continue
		}
		if err := s.addToPool(&all[i]); err != nil {
			// One broken record must not keep the gateway down.
			log.Error("cluster not loaded", "cluster", all[i].Name, "err", err)
		}
	}
	if ids != nil {
		ids.OnChange(s.onIdentityChange)
	}
	db.OnForeignCommit(s.onStoreChange)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.followChanges()
	}()
	return s, nil
}

// Start runs the stream checks until Stop. They run on every replica:
// the streams are this process's.
func (s *Service) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.recheckStreams()
	}()
}

// RunProbes probes every cluster now and then every ProbeInterval until
// ctx ends. Probes store what they saw, so on replicas one probing (the
// one that leads, see gateway/components.go) serves all.
func (s *Service) RunProbes(ctx context.Context) {
	t := time.NewTicker(s.opts.ProbeInterval)
	defer t.Stop()
	for {
		s.ProbeAll()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stop ends the stream checks, the change follower and the unregister
// hooks.
func (s *Service) Stop() {
	s.hooksMu.Lock()
	s.stopped = true
	s.hooksMu.Unlock()
	s.cancel()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

func sealContext(name string) string { return "cluster/" + name }

func (s *Service) open(r *Record) (*Connection, error) {
	if r.Sealed == nil {
		return nil, ErrNotReady
	}
	plain, err := s.box.Open(r.Sealed, sealContext(r.Name))
	if err != nil {
		return nil, fmt.Errorf("cluster %s credentials: %w", r.Name, err)
	}
	var c Connection
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, fmt.Errorf("cluster %s credentials: %w", r.Name, err)
	}
	return &c, nil
}

func (s *Service) addToPool(r *Record) error {
	c, err := s.open(r)
	if err != nil {
		return err
	}
	return s.pool.Set(proxy.Cluster{
		Name: r.Name, Server: c.Server, CAData: c.CAData, TLSServerName: c.TLSServerName,
		Token: c.Token, ClientCertData: c.ClientCertData, ClientKeyData: c.ClientKeyData,
	})
}

// Spec is what a caller gives to register or change a cluster.
type Spec struct {
	Name        string
	DisplayName string
	Description string
	Labels      map[string]string
	// Conn is nil on an update that keeps the credentials.
	Conn *Connection
}

func validateSpec(sp *Spec, create bool) error {
	if err := validateMeta(sp, create); err != nil {
		return err
	}
	if sp.Conn != nil {
		if err := sp.Conn.validate(); err != nil {
			return fault.New(fault.Invalid, "%s", err)
		}
		if _, err := proxy.TLSConfig(proxy.Cluster{CAData: sp.Conn.CAData, ClientCertData: sp.Conn.ClientCertData, ClientKeyData: sp.Conn.ClientKeyData}); err != nil {
			return fault.New(fault.Invalid, "%s", err)
		}
	} else if create {
		return fault.New(fault.Invalid, "a kubeconfig or server and credentials are required")
	}
	return nil
}

// validateMeta checks the name (on create) and the descriptive fields.
func validateMeta(sp *Spec, create bool) error {
	if create && !proxy.ValidClusterName(sp.Name) {
		return fault.New(fault.Invalid, "name must be a DNS-1123 label: 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit")
	}
	if len(sp.DisplayName) > 128 || len(sp.Description) > 1024 || len(sp.Labels) > 64 {
		return fault.New(fault.Invalid, "display_name (128), description (1024) or labels (64) too long")
	}
	for k, v := range sp.Labels {
		if k == "" || len(k) > 63 || len(v) > 256 {
			return fault.New(fault.Invalid, "label %q too long or empty", k)
		}
	}
	return nil
}

// Register stores a new cluster and opens its connection pool.
func (s *Service) Register(ctx context.Context, actor *identity.Principal, sp Spec, ev audit.Event) (*Record, error) {
	if err := validateSpec(&sp, true); err != nil {
		return nil, err
	}
	plain, _ := json.Marshal(sp.Conn)
	now := s.opts.Now().UTC()
	r := &Record{
		Name: sp.Name, DisplayName: sp.DisplayName, Description: sp.Description, Labels: sp.Labels,
		Server: sp.Conn.Server, AuthType: sp.Conn.AuthType(), Sealed: s.box.Seal(plain, sealContext(sp.Name)),
		ConnectionStatus: ConnPending, Status: StatusReady, CreatedBy: actor.UserID, CreatedAt: now, UpdatedAt: now,
	}
	s.connMu.Lock()
	defer s.connMu.Unlock()
	err := s.db.Update(func(tx *store.Tx) error {
		if err := claimName(tx, r.Name); err != nil {
			return err
		}
		if err := records.Insert(tx, r.Name, r); err != nil {
			return err
		}
		return emitRegistered(tx, now, actor.UserID, r, sourceRegistered)
	})
	s.record(ctx, ev, "cluster.create", r.Name, err)
	s.refresh(r.Name)
	if errors.Is(err, store.ErrExists) || errors.Is(err, ErrExists) {
		return nil, ErrExists
	}
	if err != nil {
		return nil, err
	}
	if err := s.addToPool(r); err != nil {
		return nil, err
	}
	return r, nil
}

// Update changes a cluster's description and, when sp.Conn is set, its
// connection; the pool is rebuilt so new requests use the new credentials.
func (s *Service) Update(ctx context.Context, sp Spec, ev audit.Event) (*Record, error) {
	if err := validateSpec(&sp, false); err != nil {
		return nil, err
	}
	var out *Record
	s.connMu.Lock()
	defer s.connMu.Unlock()
	err := s.db.Update(func(tx *store.Tx) error {
		r, err := records.Get(tx, sp.Name)
		if err != nil {
			return err
		}
		if !r.Live() {
			return store.ErrNotFound
		}
		r.DisplayName, r.Description, r.Labels = sp.DisplayName, sp.Description, sp.Labels
		if sp.Conn != nil {
			plain, _ := json.Marshal(sp.Conn)
			r.Server, r.AuthType, r.Sealed = sp.Conn.Server, sp.Conn.AuthType(), s.box.Seal(plain, sealContext(sp.Name))
			r.ConnectionStatus, r.LastError = ConnPending, ""
		}
		r.UpdatedAt = s.opts.Now().UTC()
		out = r
		return records.Put(tx, r.Name, r)
	})
	s.record(ctx, ev, "cluster.update", sp.Name, err)
	s.refresh(sp.Name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if sp.Conn != nil {
		if err := s.addToPool(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Delete removes a cluster. A registered one is deleted at once: it
// leaves the lists, its credentials and memberships are erased and its
// connections closed, while its record stays for history (status
// deleted). A provisioned one starts a delete operation through its
// provisioner, which is returned.
func (s *Service) Delete(ctx context.Context, actor *identity.Principal, name string, ev audit.Event) (*operations.Operation, error) {
	op, d, err := s.deleteRecord(ctx, actor, name, ev)
	if err != nil {
		return nil, err
	}
	if op != nil {
		s.opts.Lifecycle.Operations.Kick()
		return op, nil
	}
	s.unregistered(name, actor, d)
	return nil, nil
}

// deleteRecord is Delete's write. For a registered cluster it also takes
// the connection out of the pool, under connMu with the write: its streams
// end now, the name is free for a new cluster once the lock is released,
// and the hooks reach this cluster and no other.
func (s *Service) deleteRecord(ctx context.Context, actor *identity.Principal, name string, ev audit.Event) (*operations.Operation, *proxy.Detached, error) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	var op *operations.Operation
	err := s.db.Update(func(tx *store.Tx) error {
		r, err := records.Get(tx, name)
		if err != nil {
			return err
		}
		if !r.Live() {
			return store.ErrNotFound
		}
		if r.Provisioner != "" && s.opts.Lifecycle.Operations != nil {
			op, err = s.deprovision(tx, r, actor.UserID)
			return err
		}
		if busy, err := operations.ActiveFor(tx, name); err != nil {
			return err
		} else if busy != nil {
			return &operations.BusyError{Operation: busy}
		}
		now := tx.Now().UTC()
		r.Status, r.DeletedAt, r.Sealed, r.UpdatedAt, r.UnreachableSince = StatusDeleted, &now, nil, now, nil
		if err := records.Put(tx, name, r); err != nil {
			return err
		}
		if err := deleteMembers(tx, name); err != nil {
			return err
		}
		return emitDeleted(tx, s.opts.Now().UTC(), actor.UserID, name)
	})
	if op != nil {
		ev.Details = map[string]string{"operation": op.ID}
	}
	s.record(ctx, ev, "cluster.delete", name, err)
	s.refresh(name)
	switch {
	case err != nil:
		return nil, nil, mapStoreErr(err)
	case op != nil:
		return op, nil, nil
	}
	return nil, s.pool.Detach(name), nil
}

// ClusterCall makes one request of Berth's own to a cluster, bounded by
// ctx.
type ClusterCall func(ctx context.Context, method, path, contentType string, body []byte) (int, []byte, error)

// Unregistered is a registered cluster just deleted, as OnUnregister hooks
// see it.
type Unregistered struct {
	Cluster string
	// By is who deleted it.
	By *identity.Principal
	// Call reaches the deleted cluster, as the principal the hook was
	// registered with in the cluster-admin role, until the hook returns.
	Call ClusterCall
}

type unregisterHook struct {
	as *identity.Principal
	fn func(context.Context, Unregistered)
}

// OnUnregister registers fn to run when a registered cluster is deleted,
// with a way to reach that cluster one last time as the principal as, in
// the cluster-admin role: it is for Berth cleaning up what it made in a
// cluster it is letting go of. fn runs in the background once the
// deletion is done (the name may already belong to a new cluster, which fn
// never reaches); ctx ends at Stop, and fn must return soon after.
func (s *Service) OnUnregister(as *identity.Principal, fn func(ctx context.Context, u Unregistered)) {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	s.unregisterHooks = append(s.unregisterHooks, unregisterHook{as: as, fn: fn})
}

// unregistered runs the OnUnregister hooks for a deleted cluster whose
// connection d was detached from the pool, then closes d. A cluster that
// had no connection (its credentials could not be loaded) still runs
// them, with calls that fail, so what is left there is reported.
func (s *Service) unregistered(name string, by *identity.Principal, d *proxy.Detached) {
	s.hooksMu.Lock()
	hooks, stopped := s.unregisterHooks, s.stopped
	if !stopped {
		s.wg.Add(1)
	}
	s.hooksMu.Unlock()
	run := func() {
		if d != nil {
			defer d.Close()
		}
		for _, h := range hooks {
			id := s.Identity(h.as, "cluster-admin", "", "")
			call := func(ctx context.Context, method, path, contentType string, body []byte) (int, []byte, error) {
				timeout := s.opts.ProbeTimeout
				if dl, ok := ctx.Deadline(); ok {
					timeout = min(timeout, time.Until(dl))
				}
				if err := ctx.Err(); err != nil || timeout <= 0 {
					return 0, nil, fmt.Errorf("cluster %s: %w", name, cmp.Or(err, context.DeadlineExceeded))
				}
				if d == nil {
					return 0, nil, fmt.Errorf("cluster %s: no connection (its credentials could not be loaded)", name)
				}
				return d.Do(method, path, id, contentType, body, timeout)
			}
			h.fn(s.ctx, Unregistered{Cluster: name, By: by, Call: call})
		}
	}
	if stopped {
		// Shutting down: the hooks see an ended context and say what they
		// leave undone.
		run()
		return
	}
	go func() {
		defer s.wg.Done()
		run()
	}()
}

// Get returns one cluster.
func (s *Service) Get(name string) (*Record, error) {
	s.mu.RLock()
	c, ok := s.cache[name]
	s.mu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	r := c.rec
	return &r, nil
}

// cached returns cluster name's cache entry. Entries are replaced, never
// changed, so the caller may read it without the lock.
func (s *Service) cached(name string) (*cachedCluster, bool) {
	s.mu.RLock()
	c, ok := s.cache[name]
	s.mu.RUnlock()
	return c, ok
}

// refresh reloads one cluster's record and members from the store into the
// cache, or drops it when the cluster is gone.
func (s *Service) refresh(name string) {
	var c *cachedCluster
	err := s.db.View(func(tx *store.Tx) error {
		r, err := records.Get(tx, name)
		if err != nil {
			return err
		}
		if !r.Live() {
			return store.ErrNotFound
		}
		c = &cachedCluster{rec: *r}
		c.members, err = membersOf(tx, name)
		return err
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.cache[name] = c
	case errors.Is(err, store.ErrNotFound):
		delete(s.cache, name)
	default:
		// Keep what was there; the next write or probe retries.
		s.log.Warn("refresh cluster cache", "cluster", name, "err", err)
	}
}

// List returns one page of the clusters p may see.
func (s *Service) List(p *identity.Principal, page, pageSize int) ([]Record, int, error) {
	var (
		items []Record
		total int
	)
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		items, total, err = records.Page(tx, page, pageSize, false, func(r *Record) bool {
			// Access reads the cache: live clusters only, members included.
			_, ok := s.Access(p, r.Name)
			return ok
		})
		return err
	})
	return items, total, err
}

// Access returns the role p holds on cluster name: fleet admins hold
// cluster-admin everywhere; others hold the strongest role of their user
// and group memberships. An API key scoped to other clusters holds none.
func (s *Service) Access(p *identity.Principal, name string) (string, bool) {
	c, ok := s.cached(name)
	if !ok {
		return "", false
	}
	return roleFor(p, name, c.members)
}

// membersOf reads a cluster's grants.
func membersOf(tx *store.Tx, cluster string) ([]Member, error) {
	ids, err := members.IDsBy(tx, "cluster", cluster)
	if err != nil {
		return nil, err
	}
	out := []Member{}
	for _, id := range ids {
		if m, err := members.Get(tx, id); err == nil {
			out = append(out, *m)
		}
	}
	return out, nil
}

// roleFor decides p's role on cluster name from its members.
func roleFor(p *identity.Principal, name string, ms []Member) (string, bool) {
	if p == nil || !p.AllowsCluster(name) || !p.Can(identity.PermClustersRead) {
		return "", false
	}
	// A fleet admin's roles grant every permission. Judged on the roles,
	// not Can: an admin's kubeconfig key is scoped to clusters:read and
	// one cluster, and must still act as cluster-admin there while it
	// cannot touch the rest of the API.
	if slices.Contains(p.Permissions, identity.PermAll) {
		return "cluster-admin", true
	}
	best := -1
	for _, m := range ms {
		if (m.Kind == "user" && m.Subject == p.UserID) || (m.Kind == "group" && slices.Contains(p.Groups, m.Subject)) {
			best = max(best, slices.Index(Roles, m.Role))
		}
	}
	if best < 0 {
		return "", false
	}
	return Roles[best], true
}

// Identity is what the proxy asserts to the cluster for p in role: the
// prefixed username, the role's group, the user's own groups (prefixed),
// and, unless OmitExtras, the caller's auth method, address and request id
// as extras, so the cluster's own audit log shows who really called; the
// request id also as the cluster's audit id (proxy.Identity.AuditID).
func (s *Service) Identity(p *identity.Principal, role, clientIP, requestID string) proxy.Identity {
	groups := make([]string, 1, 1+len(p.Groups))
	groups[0] = s.asserted(nameRole, role)
	for _, g := range p.Groups {
		groups = append(groups, s.asserted(nameGroup, g))
	}
	user := s.asserted(nameUser, p.Username)
	if s.opts.OmitExtras {
		return proxy.Identity{User: user, Groups: groups, AuditID: requestID}
	}
	// Built on every proxied request: one map sized for all three (and the
	// impersonator's, see actAs), their values cut from one array.
	extra := make(map[string][]string, 4)
	vals := &[3]string{p.AuthMethod, clientIP, requestID}
	extra["berth.dev/auth-method"] = vals[0:1:1]
	if clientIP != "" {
		extra["berth.dev/client-ip"] = vals[1:2:2]
	}
	if requestID != "" {
		extra["berth.dev/request-id"] = vals[2:3:3]
	}
	return proxy.Identity{User: user, Groups: groups, Extra: extra, AuditID: requestID}
}

// Kinds of asserted name (see asserted).
const (
	nameUser = iota
	nameRole
	nameGroup
)

type assertedName struct {
	kind int
	name string
}

// asserted is the name Berth asserts to clusters for a user, a role's
// group or a Berth group: the prefix, and "role:" or "group:" for groups.
// The names are kept (up to a bound) rather than joined on every proxied
// request.
func (s *Service) asserted(kind int, name string) string {
	return s.names.Get(assertedName{kind, name}, func() string {
		switch kind {
		case nameRole:
			return s.opts.ImpersonatePrefix + "role:" + name
		case nameGroup:
			return s.opts.ImpersonatePrefix + "group:" + name
		}
		return s.opts.ImpersonatePrefix + name
	})
}

// AddMember grants kind ("user" or "group") subject a role on cluster.
// For users, subject may be a user id or a username. A subject that is
// already a member is a *MemberExistsError: a role changes only by
// SetMemberRole, never as a side effect of granting.
func (s *Service) AddMember(ctx context.Context, cluster, kind, subject, role string, ev audit.Event) (*Member, error) {
	if !slices.Contains(Roles, role) {
		return nil, fault.New(fault.Invalid, "role must be one of %s", strings.Join(Roles, ", "))
	}
	m := &Member{ID: store.NewID("mbr"), Cluster: cluster, Kind: kind, Subject: subject, Role: role, Created: s.opts.Now().UTC()}
	switch kind {
	case "user":
		u, err := s.lookupUser(subject)
		if err != nil {
			return nil, err
		}
		m.Subject, m.Name = u.ID, u.Username
	case "group":
		if subject == "" || len(subject) > 128 || strings.ContainsAny(subject, "\x00\x1f") {
			return nil, fault.New(fault.Invalid, "group name must be 1-128 characters")
		}
	default:
		return nil, fault.New(fault.Invalid, "give a user or a group")
	}
	err := s.db.Update(func(tx *store.Tx) error {
		if r, err := records.Get(tx, cluster); err != nil {
			return err
		} else if !r.Live() {
			return store.ErrNotFound
		}
		if old, _, err := members.GetBy(tx, "subject", m.Cluster+"\x1f"+m.Kind+"\x1f"+m.Subject); err == nil {
			return &MemberExistsError{Member: *old}
		}
		return members.Put(tx, m.ID, m)
	})
	s.record(ctx, ev, "cluster.member.add", cluster, err)
	var exists *MemberExistsError
	if errors.As(err, &exists) {
		return nil, err
	}
	s.refresh(cluster)
	// A changed role changes the identity open streams assert.
	s.membershipChanged()
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	return m, err
}

func (s *Service) lookupUser(subject string) (*identity.User, error) {
	if u, err := s.ids.GetUser(subject); err == nil {
		return u, nil
	}
	u, err := s.ids.UserByName(subject)
	if err != nil {
		return nil, fault.New(fault.Invalid, "no user %q", subject)
	}
	return u, nil
}

// Members lists a cluster's grants.
func (s *Service) Members(cluster string) ([]Member, error) {
	var out []Member
	err := s.db.View(func(tx *store.Tx) error {
		if r, err := records.Get(tx, cluster); err != nil {
			return err
		} else if !r.Live() {
			return store.ErrNotFound
		}
		var err error
		out, err = membersOf(tx, cluster)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	return out, err
}

// RemoveMember revokes one grant.
func (s *Service) RemoveMember(ctx context.Context, cluster, id string, ev audit.Event) error {
	err := s.db.Update(func(tx *store.Tx) error {
		m, err := members.Get(tx, id)
		if err != nil {
			return err
		}
		if m.Cluster != cluster {
			return store.ErrNotFound
		}
		return members.Delete(tx, id)
	})
	s.record(ctx, ev, "cluster.member.remove", cluster, err)
	s.refresh(cluster)
	s.membershipChanged()
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// TestResult is the answer of a connection test.
type TestResult struct {
	// Reachable: the cluster answered /version with the gateway's
	// credential.
	Reachable         bool   `json:"reachable"`
	KubernetesVersion string `json:"kubernetes_version,omitempty"`
	// LatencyMS is the time of the whole probe: /version and the access
	// reviews.
	LatencyMS int64 `json:"latency_ms"`
	// ConnectionStatus is the status the test stored: error when the
	// cluster is reachable but the gateway's identity lacks what Berth
	// needs (Permissions says what).
	ConnectionStatus string       `json:"connection_status"`
	Permissions      *Permissions `json:"permissions,omitempty"`
	Error            string       `json:"error,omitempty"`
}

// Test probes one cluster now and stores what it saw.
func (s *Service) Test(name string) (*TestResult, error) {
	if _, err := s.Get(name); err != nil {
		return nil, err
	}
	start := s.opts.Now()
	version, perms, err := s.probe(name)
	res := &TestResult{LatencyMS: s.opts.Now().Sub(start).Milliseconds(), KubernetesVersion: version, Reachable: version != "", Permissions: perms}
	if err != nil {
		res.Error = err.Error()
	}
	if r, err := s.Get(name); err == nil {
		res.ConnectionStatus = r.ConnectionStatus
	}
	return res, nil
}

// ProbeAll refreshes every cluster's connection status.
func (s *Service) ProbeAll() {
	var names []string
	s.mu.RLock()
	for name, c := range s.cache {
		if c.rec.Sealed != nil {
			names = append(names, name)
		}
	}
	s.mu.RUnlock()
	for _, n := range names {
		_, _, _ = s.probe(n)
	}
}

// probe reads one cluster's /version and, when it answers, what the
// gateway's identity may do there (checkPermissions), now, and stores
// what it saw.
func (s *Service) probe(name string) (string, *Permissions, error) {
	version, err := s.pool.Version(name, s.opts.ProbeTimeout)
	var perms *Permissions
	if err == nil {
		perms, err = s.checkPermissions(name)
	}
	s.observe(name, version, perms, err)
	return version, perms, err
}

func (s *Service) observe(name, version string, perms *Permissions, perr error) {
	now := s.opts.Now().UTC()
	err := s.db.Update(func(tx *store.Tx) error {
		r, err := records.Get(tx, name)
		if err != nil {
			return err
		}
		if !r.Live() || r.Sealed == nil {
			return nil
		}
		r.LastObservedAt = &now
		if version != "" {
			r.KubernetesVersion = version
		}
		if perms != nil {
			r.Permissions = perms
		}
		switch {
		case perr == nil:
			r.ConnectionStatus, r.KubernetesVersion, r.LastError = ConnReachable, version, ""
		case errors.Is(perr, proxy.ErrUnreachable):
			r.ConnectionStatus, r.LastError = ConnUnreachable, perr.Error()
		default:
			r.ConnectionStatus, r.LastError = ConnError, perr.Error()
		}
		if err := probeTransition(tx, now, r, perr); err != nil {
			return err
		}
		return records.Put(tx, name, r)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("store probe result", "cluster", name, "err", err)
	}
	s.refresh(name)
}

func (s *Service) record(ctx context.Context, ev audit.Event, action, name string, err error) {
	if s.audit == nil {
		return
	}
	ev.Category, ev.Action, ev.ResourceType, ev.ResourceID = audit.CategorySettings, action, "cluster", name
	ev.Result = audit.ResultSuccess
	if err != nil {
		ev.Result, ev.Reason = audit.ResultFailure, reason(err)
	}
	s.audit.Record(ctx, ev)
}

// reason is a short, secret-free cause for the audit log.
func reason(err error) string {
	switch {
	case errors.Is(err, store.ErrExists):
		return "exists"
	case errors.Is(err, store.ErrNotFound):
		return "not_found"
	default:
		return "error"
	}
}

// Endpoint returns how machines reach a cluster's API server directly: its
// URL and the CA that signs it (public data, not a credential).
func (s *Service) Endpoint(name string) (server string, caPEM []byte, err error) {
	r, err := s.Get(name)
	if err != nil {
		return "", nil, err
	}
	c, err := s.open(r)
	if err != nil {
		return "", nil, err
	}
	return c.Server, c.CAData, nil
}

// Call makes an API request of the gateway's own to a cluster as p in
// their role there (so the cluster's RBAC still decides), for features
// such as join tokens that change objects in the cluster.
func (s *Service) Call(p *identity.Principal, name, method, path, contentType string, body []byte) (int, []byte, error) {
	role, ok := s.Access(p, name)
	if !ok {
		return 0, nil, ErrNotFound
	}
	id := s.Identity(p, role, "", "")
	return s.pool.Do(name, method, path, id, contentType, body, s.opts.ProbeTimeout*3)
}

// Live returns the clusters that are not deleted, each with the time it
// was created, read within tx (managed DNS wants the store's truth, not a
// cache, and tells a re-created cluster from the one it replaced).
func Live(tx *store.Tx) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := records.Scan(tx, store.ScanOptions{}, func(name string, r *Record) (bool, error) {
		if r.Live() {
			out[name] = r.CreatedAt
		}
		return true, nil
	})
	return out, err
}
