// Package join lets machines at the edge join a cluster with one
// `curl -sfL https://<edge>/join?token=… | sh -`: join tokens are kubeadm
// bootstrap tokens that Berth creates in the cluster, stores only as a
// hash, and trades for a node set-up script at /join.
package join

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/clusters"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/kubestatus"
	"github.com/berthgw/berth/gateway/store"
)

// Token statuses.
const (
	StatusActive  = "active"
	StatusUsed    = "used"
	StatusExpired = "expired"
	StatusRevoked = "revoked"
)

// BootstrapGroup is the extra group Berth's bootstrap tokens authenticate
// with; Berth binds it to the node-bootstrapper role so a kubelet can ask
// for its client certificate.
const BootstrapGroup = "system:bootstrappers:berth:default-node-token"

// Limits on what a caller may ask for.
const (
	MinTTL  = time.Minute
	MaxTTL  = 7 * 24 * time.Hour
	MaxUses = 1000
)

// Token is a stored join token. The secret half is kept only as an HMAC.
type Token struct {
	ID        string    `json:"id"`
	Cluster   string    `json:"cluster"`
	Digest    string    `json:"digest"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxUses   int       `json:"max_uses,omitempty"`
	Uses      int       `json:"uses"`
	UsedBy    []string  `json:"used_by,omitempty"`
	Revoked   bool      `json:"revoked,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiryReported is set by the sweep that reported the token expired
	// unused (join_token.expired), so it is reported once.
	ExpiryReported bool `json:"expiry_reported,omitempty"`
}

// Status derives the token's status at now.
func (t *Token) Status(now time.Time) string {
	switch {
	case t.Revoked:
		return StatusRevoked
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return StatusUsed
	case !now.Before(t.ExpiresAt):
		return StatusExpired
	}
	return StatusActive
}

var tokens = store.NewTable("join_tokens",
	store.Index[Token]{Name: "cluster", Values: func(t *Token) []string { return []string{t.Cluster} }},
)

// tokenPattern is kubeadm's bootstrap token format.
var tokenPattern = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

// ErrNotFound is every refusal of a token a caller names: unknown,
// malformed, expired, revoked, used up, or on a cluster the caller may not
// see, alike, so the answer tells nothing about which.
var ErrNotFound = fault.New(fault.NotFound, "not found")

// Service creates, lists, revokes and redeems join tokens.
type Service struct {
	db       *store.DB
	clusters *clusters.Service
	audit    *audit.Log
	key      []byte // HMAC key for token digests
	now      func() time.Time
}

// NewService makes the service. key keys the token digests (derive it from
// the gateway's secret key).
func NewService(db *store.DB, cl *clusters.Service, au *audit.Log, key []byte, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, clusters: cl, audit: au, key: key, now: now}
}

func (s *Service) digest(secret string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("join-token\x00" + secret))
	return hex.EncodeToString(m.Sum(nil))
}

const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("join: no randomness: " + err.Error())
	}
	for i := range b {
		// 252 = 7×36: reject the top values so every character is equally likely.
		for b[i] >= 252 {
			var one [1]byte
			_, _ = rand.Read(one[:])
			b[i] = one[0]
		}
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Created is what a caller sees once: the token value.
type Created struct {
	Token *Token
	Value string
}

// Create makes a join token for cluster: it stores the digest, creates the
// bootstrap token Secret in the cluster's kube-system (as the caller, so
// the cluster's RBAC decides), binds the bootstrap group to the
// node-bootstrapper role, and publishes cluster-info in kube-public.
func (s *Service) Create(ctx context.Context, p *identity.Principal, cluster string, ttl time.Duration, maxUses int, ev audit.Event) (*Created, error) {
	if ttl < MinTTL || ttl > MaxTTL {
		return nil, fault.New(fault.Invalid, "ttl_seconds must be from %d to %d", int(MinTTL.Seconds()), int(MaxTTL.Seconds()))
	}
	if maxUses < 0 || maxUses > MaxUses {
		return nil, fault.New(fault.Invalid, "max_uses must be from 1 to %d", MaxUses)
	}
	server, ca, err := s.clusters.Endpoint(cluster)
	if errors.Is(err, clusters.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	id, secret := randomString(6), randomString(16)
	now := s.now().UTC()
	t := &Token{ID: id, Cluster: cluster, Digest: s.digest(secret), ExpiresAt: now.Add(ttl), MaxUses: maxUses, CreatedBy: p.UserID, CreatedAt: now}

	if err := s.createInCluster(p, t, secret, server, ca); err != nil {
		s.record(ctx, ev, "join_token.create", t, err)
		return nil, err
	}
	err = s.db.Update(func(tx *store.Tx) error { return tokens.Insert(tx, t.ID, t) })
	s.record(ctx, ev, "join_token.create", t, err)
	if err != nil {
		return nil, err
	}
	return &Created{Token: t, Value: id + "." + secret}, nil
}

// createInCluster writes the bootstrap token Secret and the objects a
// kubelet's TLS bootstrap needs.
func (s *Service) createInCluster(p *identity.Principal, t *Token, secret, server string, ca []byte) error {
	sec := map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
		"metadata": map[string]any{"name": "bootstrap-token-" + t.ID, "namespace": "kube-system",
			"labels": map[string]string{"app.kubernetes.io/managed-by": "berth"}},
		"stringData": map[string]string{
			"description":                    "Berth join token",
			"token-id":                       t.ID,
			"token-secret":                   secret,
			"expiration":                     t.ExpiresAt.Format(time.RFC3339),
			"usage-bootstrap-authentication": "true",
			"usage-bootstrap-signing":        "true",
			"auth-extra-groups":              BootstrapGroup,
		},
	}
	if err := s.apply(p, t.Cluster, "/api/v1/namespaces/kube-system/secrets", sec, false); err != nil {
		return err
	}
	binding := map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": "berth:node-bootstrapper"},
		"roleRef":  map[string]string{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-bootstrapper"},
		"subjects": []map[string]string{{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": BootstrapGroup}},
	}
	if err := s.apply(p, t.Cluster, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding, true); err != nil {
		return err
	}
	kubeconfig, err := clusterInfo(server, ca)
	if err != nil {
		return err
	}
	info := map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "cluster-info", "namespace": "kube-public"},
		"data":     map[string]string{"kubeconfig": kubeconfig},
	}
	return s.apply(p, t.Cluster, "/api/v1/namespaces/kube-public/configmaps", info, true)
}

// apply creates obj; an existing object is fine when mayExist.
func (s *Service) apply(p *identity.Principal, cluster, path string, obj any, mayExist bool) error {
	body, _ := json.Marshal(obj)
	code, resp, err := s.clusters.Call(p, cluster, http.MethodPost, path, "application/json", body)
	if err == nil {
		err = kubestatus.Error(http.MethodPost, code, resp)
	}
	if mayExist && (apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)) {
		return nil
	}
	return kubestatus.Fault(err, "POST "+path)
}

// clusterInfo is the kubeadm discovery kubeconfig: server and CA only.
func clusterInfo(server string, ca []byte) (string, error) {
	cfg := map[string]any{
		"apiVersion": "v1", "kind": "Config",
		"clusters": []map[string]any{{"name": "", "cluster": map[string]any{"server": server, "certificate-authority-data": ca}}},
	}
	b, err := json.Marshal(cfg)
	return string(b), err
}

// CAHash is kubeadm's pin of a CA: sha256 of its SubjectPublicKeyInfo.
func CAHash(caPEM []byte) (string, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil {
		return "", errors.New("cluster CA is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("cluster CA: %w", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// List returns a cluster's tokens, newest first.
func (s *Service) List(cluster string) ([]Token, error) {
	var out []Token
	err := s.db.View(func(tx *store.Tx) error {
		ids, err := tokens.IDsBy(tx, "cluster", cluster)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if t, err := tokens.Get(tx, id); err == nil {
				out = append(out, *t)
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b Token) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, err
}

// Revoke stops a token: at once in Berth, and by deleting its Secret in the
// cluster. Revoking a revoked token succeeds again (idempotent).
func (s *Service) Revoke(ctx context.Context, p *identity.Principal, id string, ev audit.Event) error {
	var t *Token
	err := s.db.Update(func(tx *store.Tx) error {
		var err error
		if t, err = tokens.Get(tx, id); err != nil {
			return err
		}
		if _, ok := s.clusters.Access(p, t.Cluster); !ok {
			return store.ErrNotFound
		}
		t.Revoked = true
		return tokens.Put(tx, id, t)
	})
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	if err == nil {
		path := "/api/v1/namespaces/kube-system/secrets/bootstrap-token-" + id
		code, resp, cerr := s.clusters.Call(p, t.Cluster, http.MethodDelete, path, "", nil)
		if cerr == nil {
			cerr = kubestatus.Error(http.MethodDelete, code, resp)
		}
		if !apierrors.IsNotFound(cerr) {
			err = kubestatus.Fault(cerr, "DELETE "+path)
		}
	}
	s.record(ctx, ev, "join_token.revoke", t, err)
	return err
}

// Redeem checks a presented token and counts one use. Every refusal is the
// same ErrNotFound, so a caller learns nothing about which check failed;
// the secret is compared as an HMAC digest in constant time.
func (s *Service) Redeem(ctx context.Context, value, clientIP string) (*Token, string, error) {
	m := tokenPattern.FindStringSubmatch(value)
	if m == nil {
		return nil, "", ErrNotFound
	}
	want := s.digest(m[2])
	var t *Token
	err := s.db.Update(func(tx *store.Tx) error {
		var err error
		if t, err = tokens.Get(tx, m[1]); err != nil {
			return ErrNotFound
		}
		if !hmac.Equal([]byte(t.Digest), []byte(want)) || t.Status(s.now()) != StatusActive {
			return ErrNotFound
		}
		t.Uses++
		if len(t.UsedBy) < 100 && !slices.Contains(t.UsedBy, clientIP) {
			t.UsedBy = append(t.UsedBy, clientIP)
		}
		if err := tokens.Put(tx, t.ID, t); err != nil {
			return err
		}
		return emitUsed(tx, s.now(), t, clientIP)
	})
	if err != nil {
		return nil, "", ErrNotFound
	}
	ev := audit.Event{ClientIP: clientIP, Details: map[string]string{"uses": fmt.Sprint(t.Uses)}}
	s.record(ctx, ev, "join_token.use", t, nil)
	return t, m[2], nil
}

func (s *Service) record(ctx context.Context, ev audit.Event, action string, t *Token, err error) {
	if s.audit == nil {
		return
	}
	ev.Category, ev.Action, ev.ResourceType = "cluster", action, "join_token"
	if t != nil {
		ev.ResourceID = t.ID
		if ev.Details == nil {
			ev.Details = map[string]string{}
		}
		ev.Details["cluster"] = t.Cluster
	}
	ev.Result = audit.ResultSuccess
	if err != nil {
		ev.Result, ev.Reason = audit.ResultFailure, "error"
	}
	s.audit.Record(ctx, ev)
}
