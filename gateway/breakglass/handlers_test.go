package breakglass

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthgw/berth/gateway/authn"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
	"github.com/berthgw/berth/gateway/internal/apitest"
)

// answeringClusters are three clusters that answer every call alike:
// "prod" as a cluster that lets the caller make a break-glass account,
// "locked-down" with its RBAC's 403, "broken" with a bare 500. ann holds
// cluster-admin on each, vic view; there is no cluster "nope".
type answeringClusters struct{}

func (answeringClusters) Access(p *identity.Principal, cluster string) (string, bool) {
	if cluster == "nope" {
		return "", false
	}
	switch p.Username {
	case "ann":
		return "cluster-admin", true
	case "vic":
		return "view", true
	}
	return "", false
}

func (answeringClusters) Call(_ *identity.Principal, cluster, method, path, _ string, _ []byte) (int, []byte, error) {
	switch cluster {
	case "locked-down":
		b, _ := json.Marshal(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
			Reason: metav1.StatusReasonForbidden, Code: 403,
			Message: `serviceaccounts is forbidden: User "berth:ann" cannot create resource "serviceaccounts" in API group "" in the namespace "kube-system"`})
		return 403, b, nil
	case "broken":
		return 500, nil, nil
	}
	if strings.HasSuffix(path, "/token") {
		return 201, []byte(`{"status":{"token":"sa-token-0123456789","expirationTimestamp":"2030-01-01T00:00:00Z"}}`), nil
	}
	return 201, []byte(`{}`), nil
}

func (answeringClusters) Endpoint(string) (string, []byte, error) { return "https://k:6443", nil, nil }
func (answeringClusters) ServerName(string) (string, error)       { return "", nil }
func (answeringClusters) Names() []string                         { return nil }

// scriptedPasswords refuses passwords with the faults identity returns.
type scriptedPasswords struct{}

func (scriptedPasswords) ConfirmPassword(_ *identity.Principal, pw string) error {
	switch pw {
	case "right":
		return nil
	case "locked":
		return fault.New(fault.TooMany, "too many failed sign-ins").Retry(1500 * time.Millisecond)
	case "gone":
		return identity.ErrUnauthenticated
	}
	return fault.New(fault.Forbidden, "the password is wrong")
}

// POST …/kubeconfig with a password, in-process: each refusal answers
// with its status, code and message, the cluster's own for a cluster's
// refusal; a locked account says when to come back.
func TestAdminKubeconfigHandler(t *testing.T) {
	e := apitest.New(t)
	h := NewHandlers(NewService(answeringClusters{}, scriptedPasswords{}, nil, e.Audit, e.Now, e.Log), e.Authn)
	e.Serve(t, []authn.Route{{Method: "POST", Path: "/api/v1/clusters/{name}/kubeconfig", Permission: identity.PermClustersRead, Handler: h.AdminKubeconfig}})
	_, ann := e.User(t, "ann")
	_, vic := e.User(t, "vic")
	e.Secret("sa-token-0123456789")
	for _, tc := range []struct {
		name, cluster, token string
		body                 any
		status               int
		code, msg            string
	}{
		{"no password", "prod", ann, map[string]any{}, 400, "invalid_request", "password is required"},
		{"unknown field", "prod", ann, map[string]any{"password": "right", "ttl": 9}, 400, "invalid_request", "unknown field"},
		{"unknown cluster", "nope", ann, map[string]any{"password": "right"}, 404, "not_found", "cluster not found"},
		{"view member", "prod", vic, map[string]any{"password": "right"}, 403, "forbidden", "cluster-admin role"},
		{"wrong password", "prod", ann, map[string]any{"password": "wrong"}, 403, "forbidden", "the password is wrong"},
		{"locked account", "prod", ann, map[string]any{"password": "locked"}, 429, "rate_limited", "try again in 2 seconds"},
		{"user gone", "prod", ann, map[string]any{"password": "gone"}, 401, "unauthorized", "invalid credentials"},
		{"the cluster's RBAC refuses", "locked-down", ann, map[string]any{"password": "right"}, 403, "forbidden", `cannot create resource \"serviceaccounts\"`},
		{"the cluster fails", "broken", ann, map[string]any{"password": "right"}, 502, "unavailable", "the cluster answered 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, h := e.Do(t, "POST", "/api/v1/clusters/"+tc.cluster+"/kubeconfig", tc.token, tc.body)
			if status != tc.status || !strings.Contains(string(body), `"error":"`+tc.code+`"`) || !strings.Contains(string(body), tc.msg) {
				t.Fatalf("%d %s, want %d %s %q", status, body, tc.status, tc.code, tc.msg)
			}
			if tc.status == http.StatusTooManyRequests && h.Get("Retry-After") != "2" {
				t.Errorf("Retry-After %q, want 2", h.Get("Retry-After"))
			}
		})
	}
	status, body, hdr := e.Do(t, "POST", "/api/v1/clusters/prod/kubeconfig", ann, map[string]any{"password": "right"})
	if status != 200 || !strings.Contains(string(body), "server: https://k:6443") || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v %s", status, hdr, body)
	}
	if !e.HasEvent(t, Action, "success") || !e.HasEvent(t, Action, "failure") {
		t.Error("attempts not audited")
	}
}
