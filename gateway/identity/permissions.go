package identity

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthgw/berth/gateway/store"
)

// Permissions are strings "<resource>:<verb>". Routes declare the one they
// need; roles grant sets of them.
const (
	PermClustersRead  = "clusters:read"
	PermClustersWrite = "clusters:write"
	PermUsersAdmin    = "users:admin"
	PermAuditRead     = "audit:read"
	PermSettingsAdmin = "settings:admin"
	// PermMetricsRead lets a scraper read /metrics, which names every
	// cluster.
	PermMetricsRead = "metrics:read"
	// PermUsersImpersonate lets a caller act as another Berth user
	// through the Kubernetes proxy (kubectl --as): the request reaches
	// the cluster as that user, with their groups and their role there.
	// Only the admin role holds it unless a custom role grants it.
	PermUsersImpersonate = "users:impersonate"
	// PermAll is held only by the built-in admin role: every permission,
	// including those other packages register (RegisterPermission).
	PermAll = "*"
)

// Authentication methods, as recorded on principals, sessions and audit
// events.
const (
	MethodPassword  = "password"
	MethodAPIKey    = "api_key"
	MethodAccessKey = "access_key"
	MethodOAuth     = "oauth"
	MethodSession   = "session"
	// MethodClientCert is a TLS client certificate verified against the
	// configured client CA.
	MethodClientCert = "client_certificate"
)

// ClusterScopePrefix starts an API-key scope that restricts the key to one
// cluster: "cluster:prod".
const ClusterScopePrefix = "cluster:"

var permissions = struct {
	sync.RWMutex
	m map[string]string
}{m: map[string]string{
	PermClustersRead:  "see clusters and reach them through the proxy",
	PermClustersWrite: "register, change and remove clusters",
	PermUsersAdmin:    "manage users, roles and everyone's credentials",
	PermAuditRead:     "read the audit log",
	PermSettingsAdmin: "change gateway settings",
	PermMetricsRead:   "read Prometheus metrics at /metrics",
	PermUsersImpersonate: "act as another Berth user through the Kubernetes proxy (kubectl --as); " +
		"only as users whose permissions the caller holds too",
}}

// RegisterPermission adds a permission a package outside identity defines
// (pluginhost's plugins:admin), so roles may grant it. Registering twice keeps the first text.
func RegisterPermission(name, description string) {
	permissions.Lock()
	defer permissions.Unlock()
	if _, ok := permissions.m[name]; !ok {
		permissions.m[name] = description
	}
}

// KnownPermission reports whether name is a registered permission.
func KnownPermission(name string) bool {
	permissions.RLock()
	defer permissions.RUnlock()
	_, ok := permissions.m[name]
	return ok
}

// PermissionInfo describes one permission for the API.
type PermissionInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Permissions lists the registered permissions in name order.
func Permissions() []PermissionInfo {
	permissions.RLock()
	defer permissions.RUnlock()
	out := make([]PermissionInfo, 0, len(permissions.m))
	for n, d := range permissions.m {
		out = append(out, PermissionInfo{n, d})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// builtinRoles cannot be changed or deleted through the API.
var builtinRoles = map[string][]string{
	RoleAdmin: {PermAll},
	RoleUser:  {PermClustersRead},
}

// BuiltinRole reports whether name is admin or user.
func BuiltinRole(name string) bool { _, ok := builtinRoles[name]; return ok }

// Role is a named set of permissions. The built-in roles are not stored;
// custom roles are.
type Role struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Permissions []string  `json:"permissions"`
	Builtin     bool      `json:"builtin"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
}

// rolesTable is the table of custom roles, keyed by name.
var rolesTable = store.NewTable[Role]("roles")

// resolvePermissions returns the sorted union of the permissions of roles.
// A role that no longer exists grants nothing.
func resolvePermissions(tx *store.Tx, roles []string) ([]string, error) {
	var perms []string
	for _, r := range roles {
		if p, ok := builtinRoles[r]; ok {
			perms = append(perms, p...)
			continue
		}
		role, err := rolesTable.Get(tx, r)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		perms = append(perms, role.Permissions...)
	}
	slices.Sort(perms)
	return slices.Compact(perms), nil
}

// Principal is who made a request, as established by authentication: the
// user, what they may do, and the credential they used (by id — never the
// secret). Its slices may be shared with the service's cache of recent
// grants: copy one before changing it.
type Principal struct {
	UserID   string   `json:"user_id"`
	Username string   `json:"username"`
	Roles    []string `json:"roles"`
	Groups   []string `json:"groups"`
	// Permissions are resolved from Roles at authentication time, so a
	// role change applies to the very next request.
	Permissions []string `json:"permissions"`
	// AuthMethod is password, api_key, access_key, oauth or session.
	AuthMethod string `json:"auth_method"`
	// CredentialID is the access token's jti, or the API key's id.
	CredentialID string `json:"credential_id"`
	// SessionID is the session (refresh-token family, browser session, or
	// access-key exchange) behind a token; empty for API keys.
	SessionID string `json:"session_id,omitempty"`
	// Scopes narrow an API key: permission scopes intersect with the
	// user's permissions, cluster:<name> scopes restrict which clusters
	// the key reaches. Empty means the user's full rights.
	Scopes []string `json:"scopes,omitempty"`
	// ExpiresAt is when the session, API key or client certificate behind
	// the credential stops working; zero for never. An access token itself
	// expires sooner, and is renewed from its session.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// TokenKeyID is the key that signed the access token, for a token's
	// principal. Work outliving the request (a watch) ends when that key
	// is withdrawn after a leak (RotateSigningKey with retirePrevious).
	TokenKeyID string `json:"-"`
}

// Can reports whether the principal holds permission: the user's roles
// must grant it and, for a scoped API key, the key's permission scopes
// (if it has any) must include it.
func (p *Principal) Can(permission string) bool {
	if p == nil || permission == "" {
		return false
	}
	if !slices.Contains(p.Permissions, permission) && !slices.Contains(p.Permissions, PermAll) {
		return false
	}
	restricted := false
	for _, s := range p.Scopes {
		if strings.HasPrefix(s, ClusterScopePrefix) {
			continue
		}
		restricted = true
		if s == permission {
			return true
		}
	}
	return !restricted
}

// AllowsCluster reports whether the principal's credential may reach the
// named cluster: true unless the API key carries cluster:<name> scopes
// that do not include it. Whether the user may act inside the cluster is
// the cluster's own RBAC's business.
func (p *Principal) AllowsCluster(name string) bool {
	if p == nil || name == "" {
		return false
	}
	restricted := false
	for _, s := range p.Scopes {
		if c, ok := strings.CutPrefix(s, ClusterScopePrefix); ok {
			restricted = true
			if c == name {
				return true
			}
		}
	}
	return !restricted
}

// Scoped reports whether the principal is an API key narrowed by scopes.
// Scoped keys may not mint new credentials, which would escape the scope.
func (p *Principal) Scoped() bool { return p != nil && len(p.Scopes) > 0 }

// RateKey is the key the principal's requests are rate-limited under: the
// API key for key traffic, so a robot's key has its own bucket, else the
// user.
func (p *Principal) RateKey() string {
	if p.AuthMethod == MethodAPIKey {
		return p.CredentialID
	}
	return p.UserID
}
