// Package breakglass issues admin kubeconfigs that reach a cluster's API
// server directly, not through Berth, so operators keep a way in when the
// gateway itself is down or misbehaving. Each is a short-lived token of a
// ServiceAccount bound to cluster-admin, created in the cluster as the
// person who asked; it is handed out only to a cluster-admin who has just
// typed their password again, and every attempt is audited.
package breakglass

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/kubestatus"
)

// TokenTTL is the lifetime of the token in an admin kubeconfig: long
// enough to repair a cluster, short enough that a copy left on a laptop is
// soon worthless. The cluster enforces it (TokenRequest expirationSeconds).
const TokenTTL = time.Hour

// Namespace holds the break-glass ServiceAccounts.
const Namespace = "kube-system"

// Action is the audit action of every attempt.
const Action = "cluster.kubeconfig.admin"

// Labels and annotations on the objects Berth creates, so an operator can
// list them (kubectl get sa,clusterrolebinding -A -l berth.dev/break-glass)
// and Berth can tell its own from someone else's.
const (
	labelManagedBy  = "app.kubernetes.io/managed-by"
	labelBreakGlass = "berth.dev/break-glass"
	annotationUser  = "berth.dev/user"
	annotationUID   = "berth.dev/user-id"
)

// Refusals of Issue, testable with errors.Is. A refusal or failure of the
// cluster is a fault made by kubestatus.Fault, with the cluster's
// *apierrors.StatusError in its chain.
var (
	// ErrNotFound: no such cluster, or the caller may not see it.
	ErrNotFound = fault.New(fault.NotFound, "cluster not found")
	// ErrNotPasswordUser: the caller authenticated with something other
	// than their password (an API key, access key or client certificate).
	ErrNotPasswordUser = fault.New(fault.Forbidden, "an admin kubeconfig needs a password sign-in: API keys, access keys and client certificates cannot get one")
	// ErrNotClusterAdmin: the caller's role on the cluster is weaker than
	// cluster-admin.
	ErrNotClusterAdmin = fault.New(fault.Forbidden, "an admin kubeconfig needs the cluster-admin role on this cluster")
)

// Clusters is what the service needs of the cluster registry.
type Clusters interface {
	// Access returns the caller's role on a cluster.
	Access(p *identity.Principal, cluster string) (string, bool)
	// Call makes a request to a cluster as the caller in their role.
	Call(p *identity.Principal, cluster, method, path, contentType string, body []byte) (int, []byte, error)
	// Endpoint is the cluster API server's URL and CA.
	Endpoint(cluster string) (string, []byte, error)
	// ServerName is the TLS name to verify, when set at registration.
	ServerName(cluster string) (string, error)
	// Names lists the registered clusters.
	Names() []string
}

// Passwords checks a caller's current password (identity.Service).
type Passwords interface {
	ConfirmPassword(p *identity.Principal, password string) error
}

// Service issues admin kubeconfigs, and revokes them from users who no
// longer hold cluster-admin (see revoke.go).
type Service struct {
	clusters  Clusters
	passwords Passwords
	users     Users
	audit     *audit.Log
	now       func() time.Time
	log       *slog.Logger
	changed   chan struct{}
	// locks holds each cluster's clusterLock.
	locksMu sync.Mutex
	locks   map[string]*sync.RWMutex
}

// NewService makes the service; au may be nil (no audit) only in tests,
// now and log nil for time.Now and no log.
func NewService(cl Clusters, pw Passwords, users Users, au *audit.Log, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{clusters: cl, passwords: pw, users: users, audit: au, now: now, log: log, changed: make(chan struct{}, 1)}
}

// Issued is an admin kubeconfig and what it is for.
type Issued struct {
	// Kubeconfig is the file; it holds the token, so it is shown once and
	// never stored or logged.
	Kubeconfig     []byte
	ServiceAccount string
	ExpiresAt      time.Time
}

// passwordMethods are the sign-ins that proved the caller knows their
// password: a password login's tokens, a browser session, and the OAuth
// password grant. The others are machine credentials a person's
// password cannot vouch for.
var passwordMethods = []string{identity.MethodPassword, identity.MethodSession, identity.MethodOAuth}

// Issue checks that p may have an admin kubeconfig for cluster (a
// password sign-in, cluster-admin there, and password is their current
// password), then, as p, ensures the ServiceAccount and its cluster-admin
// binding and requests a token for it. Every attempt is audited as ev.
func (s *Service) Issue(ctx context.Context, p *identity.Principal, cluster, password string, ev audit.Event) (*Issued, error) {
	out, reason, err := s.issue(p, cluster, password)
	ev.Category, ev.Action, ev.ResourceType, ev.ResourceID = audit.CategorySecurity, Action, "cluster", cluster
	ev.Result, ev.Reason = audit.ResultSuccess, ""
	if err != nil {
		ev.Result, ev.Reason = audit.ResultFailure, reason
	} else {
		ev.Details = map[string]string{"service_account": Namespace + "/" + out.ServiceAccount, "expires_at": out.ExpiresAt.Format(time.RFC3339)}
	}
	if s.audit != nil {
		s.audit.Record(ctx, ev)
	}
	return out, err
}

// issue does Issue's work and names, for the audit log, why it failed.
func (s *Service) issue(p *identity.Principal, cluster, password string) (*Issued, string, error) {
	role, ok := s.clusters.Access(p, cluster)
	switch {
	case !ok:
		return nil, "not_found", ErrNotFound
	case p.Scoped() || !slices.Contains(passwordMethods, p.AuthMethod):
		return nil, "not_password_sign_in", ErrNotPasswordUser
	case role != "cluster-admin":
		return nil, "not_cluster_admin", ErrNotClusterAdmin
	}
	if err := s.passwords.ConfirmPassword(p, password); err != nil {
		reason, err := passwordRefused(err)
		return nil, reason, err
	}
	// From here on the cluster of this name must not be let go of (or
	// replaced) under the calls: the lock holds off its unregistering, and
	// the role is checked again under it, since the cluster may have been
	// unregistered, or registered anew, while the password was checked.
	mu := s.clusterLock(cluster)
	mu.RLock()
	defer mu.RUnlock()
	if role, ok := s.clusters.Access(p, cluster); !ok {
		return nil, "not_found", ErrNotFound
	} else if role != "cluster-admin" {
		return nil, "not_cluster_admin", ErrNotClusterAdmin
	}
	server, ca, err := s.clusters.Endpoint(cluster)
	if err != nil {
		return nil, "error", fmt.Errorf("cluster %s endpoint: %w", cluster, err)
	}
	tlsName, err := s.clusters.ServerName(cluster)
	if err != nil {
		return nil, "error", fmt.Errorf("cluster %s endpoint: %w", cluster, err)
	}
	sa := ServiceAccountName(p)
	if err := s.ensureServiceAccount(p, cluster, sa); err != nil {
		return nil, "cluster_error", err
	}
	if err := s.ensureBinding(p, cluster, sa); err != nil {
		return nil, "cluster_error", err
	}
	token, expires, err := s.requestToken(p, cluster, sa)
	if err != nil {
		return nil, "cluster_error", err
	}
	kc, err := kubeconfig(cluster, server, tlsName, ca, sa, token, expires)
	if err != nil {
		return nil, "error", err
	}
	return &Issued{Kubeconfig: kc, ServiceAccount: sa, ExpiresAt: expires}, "", nil
}

// passwordRefused is the audit reason and the fault for a password that
// ConfirmPassword refused: a locked account is TooMany with when to come
// back; a wrong password Forbidden, since the session itself is valid (not
// 401); another refusal of the password Invalid; a user who is gone
// Unauthenticated.
func passwordRefused(err error) (string, error) {
	var fe *fault.Error
	if !errors.As(err, &fe) {
		return "invalid", err
	}
	switch fe.Kind {
	case fault.TooMany:
		secs := max(1, int((fe.RetryAfter+time.Second-1)/time.Second))
		return "locked", fault.New(fault.TooMany, "too many wrong passwords for this account; try again in %d seconds", secs).
			Retry(time.Duration(secs) * time.Second)
	case fault.Forbidden:
		return "bad_password", err
	case fault.Unauthenticated:
		return "invalid", fault.New(fault.Unauthenticated, "invalid credentials")
	}
	return "invalid", err
}

// maxNamePart bounds the username part of a ServiceAccount name, so that
// "berth-admin-" + it + "-" + 8 hex digits stays a 63-character DNS label.
const maxNamePart = 40

// ServiceAccountName is the break-glass ServiceAccount (and
// ClusterRoleBinding) of p: "berth-admin-<username>-<hash>", the username
// lower-cased with anything outside [a-z0-9] turned into '-', and the hash
// from the user id, so two users whose names sanitise alike (a.b, a_b),
// or a new user reusing a deleted one's name, never share an account.
func ServiceAccountName(p *identity.Principal) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(p.Username) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > maxNamePart {
		name = strings.TrimRight(name[:maxNamePart], "-")
	}
	if name == "" {
		name = "user"
	}
	sum := sha256.Sum256([]byte(p.UserID))
	return "berth-admin-" + name + "-" + hex.EncodeToString(sum[:4])
}

func (s *Service) metadata(p *identity.Principal, name string, namespaced bool) map[string]any {
	md := map[string]any{
		"name":        name,
		"labels":      map[string]string{labelManagedBy: "berth", labelBreakGlass: "true"},
		"annotations": map[string]string{annotationUser: p.Username, annotationUID: p.UserID},
	}
	if namespaced {
		md["namespace"] = Namespace
	}
	return md
}

// object is the part of a Kubernetes object Berth checks before reusing it.
type object struct {
	Metadata struct {
		Name        string            `json:"name"`
		UID         string            `json:"uid"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	RoleRef struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"roleRef"`
	Subjects []struct {
		Kind      string `json:"kind"`
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"subjects"`
}

// ours reports whether an existing object was made by Berth for p, so an
// object of the same name that someone else made is never taken over.
func (o *object) ours(p *identity.Principal) bool {
	return o.Metadata.Labels[labelManagedBy] == "berth" && o.Metadata.Labels[labelBreakGlass] == "true" &&
		o.Metadata.Annotations[annotationUID] == p.UserID
}

func (s *Service) ensureServiceAccount(p *identity.Principal, cluster, sa string) error {
	obj := map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": s.metadata(p, sa, true)}
	return s.create(p, cluster, "/api/v1/namespaces/"+Namespace+"/serviceaccounts", sa, obj, func(o *object) bool { return o.ours(p) })
}

func (s *Service) ensureBinding(p *identity.Principal, cluster, sa string) error {
	obj := map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": s.metadata(p, sa, false),
		"roleRef":  map[string]string{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
		"subjects": []map[string]string{{"kind": "ServiceAccount", "name": sa, "namespace": Namespace}},
	}
	return s.create(p, cluster, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", sa, obj, func(o *object) bool {
		if !o.ours(p) || o.RoleRef.Kind != "ClusterRole" || o.RoleRef.Name != "cluster-admin" {
			return false
		}
		for _, sub := range o.Subjects {
			if sub.Kind == "ServiceAccount" && sub.Name == sa && sub.Namespace == Namespace {
				return true
			}
		}
		return false
	})
}

// create makes obj in collection; when it already exists (an earlier
// kubeconfig) it is reused if usable says so.
func (s *Service) create(p *identity.Principal, cluster, collection, name string, obj any, usable func(*object) bool) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	code, resp, err := s.clusters.Call(p, cluster, http.MethodPost, collection, "application/json", body)
	if err == nil {
		err = kubestatus.Error(http.MethodPost, code, resp)
	}
	switch {
	case err == nil:
		return nil
	case !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err):
		return kubestatus.Fault(err, "create "+collection+"/"+name)
	}
	path := collection + "/" + url.PathEscape(name)
	code, resp, err = s.clusters.Call(p, cluster, http.MethodGet, path, "", nil)
	if err == nil {
		err = kubestatus.Error(http.MethodGet, code, resp)
	}
	if err != nil {
		return kubestatus.Fault(err, "read "+collection+"/"+name)
	}
	var o object
	if err := json.Unmarshal(resp, &o); err != nil || !usable(&o) {
		return fault.New(fault.BadGateway, "%s/%s exists and is not Berth's break-glass object for this user; remove or rename it", collection, name)
	}
	return nil
}

// requestToken asks the cluster for a TokenRequest of sa lasting TokenTTL.
// The token is returned to the caller only; errors never carry the answer.
func (s *Service) requestToken(p *identity.Principal, cluster, sa string) (string, time.Time, error) {
	req := map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"spec": map[string]any{"expirationSeconds": int64(TokenTTL / time.Second)},
	}
	body, _ := json.Marshal(req)
	path := "/api/v1/namespaces/" + Namespace + "/serviceaccounts/" + url.PathEscape(sa) + "/token"
	code, resp, err := s.clusters.Call(p, cluster, http.MethodPost, path, "application/json", body)
	if err == nil {
		err = kubestatus.Error(http.MethodPost, code, resp)
	}
	if err != nil {
		return "", time.Time{}, kubestatus.Fault(err, "token request for "+sa)
	}
	var tr struct {
		Status struct {
			Token               string    `json:"token"`
			ExpirationTimestamp time.Time `json:"expirationTimestamp"`
		} `json:"status"`
	}
	if err := json.Unmarshal(resp, &tr); err != nil || tr.Status.Token == "" {
		return "", time.Time{}, fault.New(fault.BadGateway, "token request for %s: the answer holds no token", sa)
	}
	expires := tr.Status.ExpirationTimestamp.UTC()
	if expires.IsZero() {
		expires = s.now().Add(TokenTTL).UTC()
	}
	return tr.Status.Token, expires, nil
}

// kubeconfig writes a kubeconfig reaching server directly (not through
// Berth) as sa with token, headed by comments saying what it is, until when
// it works, and how to revoke it early.
func kubeconfig(cluster, server, tlsServerName string, caPEM []byte, sa, token string, expires time.Time) ([]byte, error) {
	name := cluster + "-admin"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[cluster] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM, TLSServerName: tlsServerName}
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: sa}
	cfg.CurrentContext = name
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	head := fmt.Sprintf("# Break-glass admin kubeconfig for cluster %s, issued by Berth.\n"+
		"# It reaches the cluster's API server directly as ServiceAccount %s/%s (cluster-admin).\n"+
		"# The token expires at %s. Berth revokes it when you lose cluster-admin here\n"+
		"# or the cluster is unregistered from Berth;\n"+
		"# revoke it earlier with:\n"+
		"#   kubectl -n %s delete serviceaccount %s\n",
		cluster, Namespace, sa, expires.Format(time.RFC3339), Namespace, sa)
	return append([]byte(head), out...), nil
}
