package breakglass

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/identity"
)

func TestServiceAccountName(t *testing.T) {
	long := strings.Repeat("abcdefghij", 10)
	cases := []struct {
		user, id, prefix string
	}{
		{"alice", "usr_1", "berth-admin-alice-"},
		{"Alice.Smith@example.com", "usr_2", "berth-admin-alice-smith-example-com-"},
		{"a__b", "usr_3", "berth-admin-a-b-"},
		{"--x--", "usr_4", "berth-admin-x-"},
		{"名前", "usr_5", "berth-admin-user-"},
		{long, "usr_6", "berth-admin-" + long[:maxNamePart] + "-"},
		{strings.Repeat("a", maxNamePart-1) + ".b", "usr_7", "berth-admin-" + strings.Repeat("a", maxNamePart-1) + "-"},
	}
	seen := map[string]string{}
	for _, tc := range cases {
		got := ServiceAccountName(&identity.Principal{Username: tc.user, UserID: tc.id})
		if !strings.HasPrefix(got, tc.prefix) || len(got) != len(tc.prefix)+8 {
			t.Errorf("%q: %q, want %s + 8 hex digits", tc.user, got, tc.prefix)
		}
		if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
			t.Errorf("%q: %q is not a DNS-1123 label: %v", tc.user, got, errs)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%q and %q share %q", tc.user, other, got)
		}
		seen[got] = tc.user
	}
	// Same sanitised name, different users: different accounts.
	a := ServiceAccountName(&identity.Principal{Username: "a.b", UserID: "usr_a"})
	b := ServiceAccountName(&identity.Principal{Username: "a_b", UserID: "usr_b"})
	if a == b {
		t.Errorf("a.b and a_b share %q", a)
	}
}

func TestKubeconfig(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	data, err := kubeconfig("prod", "https://10.0.0.1:6443", "kube.internal", []byte("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"), "berth-admin-a-12345678", "tok-123", exp)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# Break-glass admin kubeconfig for cluster prod") || !strings.Contains(string(data), "2030-01-02T03:04:05Z") ||
		!strings.Contains(string(data), "kubectl -n kube-system delete serviceaccount berth-admin-a-12345678") {
		t.Errorf("header:\n%s", data)
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatalf("not a kubeconfig: %v", err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || cfg.Clusters[ctx.Cluster].Server != "https://10.0.0.1:6443" || cfg.Clusters[ctx.Cluster].TLSServerName != "kube.internal" ||
		len(cfg.Clusters[ctx.Cluster].CertificateAuthorityData) == 0 || cfg.AuthInfos[ctx.AuthInfo].Token != "tok-123" {
		t.Errorf("kubeconfig: %+v", cfg)
	}
}

// fakeClusters answers Access from a table and records every Call, to
// show refusals reach nothing in the cluster. The calls themselves are
// exercised against a real kube-apiserver by the gateway's e2e test.
type fakeClusters struct {
	role  string
	calls []string
}

func (f *fakeClusters) Access(*identity.Principal, string) (string, bool) {
	return f.role, f.role != ""
}
func (f *fakeClusters) Call(_ *identity.Principal, _, method, path, _ string, _ []byte) (int, []byte, error) {
	f.calls = append(f.calls, method+" "+path)
	return 500, nil, nil
}
func (f *fakeClusters) Endpoint(string) (string, []byte, error) { return "https://k:6443", nil, nil }
func (f *fakeClusters) ServerName(string) (string, error)       { return "", nil }
func (f *fakeClusters) Names() []string                         { return nil }

type fakePasswords struct{ right string }

func (f fakePasswords) ConfirmPassword(_ *identity.Principal, pw string) error {
	if pw != f.right {
		return fault.New(fault.Forbidden, "the password is wrong")
	}
	return nil
}

func TestIssueRefusals(t *testing.T) {
	person := &identity.Principal{UserID: "usr_1", Username: "ann", AuthMethod: identity.MethodPassword}
	cases := []struct {
		name     string
		p        *identity.Principal
		role     string
		password string
		want     error
		reason   string
	}{
		{"not a member", person, "", "right", ErrNotFound, "not_found"},
		{"api key", &identity.Principal{UserID: "usr_1", AuthMethod: identity.MethodAPIKey}, "cluster-admin", "right", ErrNotPasswordUser, "not_password_sign_in"},
		{"access key", &identity.Principal{UserID: "usr_1", AuthMethod: identity.MethodAccessKey}, "cluster-admin", "right", ErrNotPasswordUser, "not_password_sign_in"},
		{"client certificate", &identity.Principal{UserID: "usr_1", AuthMethod: identity.MethodClientCert}, "cluster-admin", "right", ErrNotPasswordUser, "not_password_sign_in"},
		{"scoped", &identity.Principal{UserID: "usr_1", AuthMethod: identity.MethodPassword, Scopes: []string{"cluster:x"}}, "cluster-admin", "right", ErrNotPasswordUser, "not_password_sign_in"},
		{"admin role is not enough", person, "admin", "right", ErrNotClusterAdmin, "not_cluster_admin"},
		{"wrong password", person, "cluster-admin", "wrong", nil, "bad_password"},
		// The fake cluster answers 500: the cluster's refusal, as a StatusError.
		{"reaches the cluster", person, "cluster-admin", "right", nil, "cluster_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc := &fakeClusters{role: tc.role}
			s := NewService(fc, fakePasswords{right: "right"}, nil, nil, nil, nil)
			_, reason, err := s.issue(tc.p, "prod", tc.password)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || reason != tc.reason {
				t.Fatalf("got %v (%s), want %v (%s)", err, reason, tc.want, tc.reason)
			}
			if tc.reason == "cluster_error" && !apierrors.IsInternalError(err) {
				t.Errorf("the cluster's 500 is not in the error: %v", err)
			}
			if tc.reason != "cluster_error" && len(fc.calls) > 0 {
				t.Errorf("a refusal called the cluster: %q", fc.calls)
			}
			if tc.reason == "cluster_error" && (len(fc.calls) != 1 || !strings.HasPrefix(fc.calls[0], "POST /api/v1/namespaces/kube-system/serviceaccounts")) {
				t.Errorf("calls: %q", fc.calls)
			}
		})
	}
	// Issue audits through the same path; with no log it still answers.
	if _, err := NewService(&fakeClusters{}, fakePasswords{}, nil, nil, nil, nil).Issue(context.Background(), person, "prod", "x", audit.Event{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Issue: %v", err)
	}
}

// passwordsThen checks the password, then runs then: the cluster changing
// while the (slow, argon2id) check runs.
type passwordsThen struct {
	fakePasswords
	then func()
}

func (f passwordsThen) ConfirmPassword(p *identity.Principal, pw string) error {
	err := f.fakePasswords.ConfirmPassword(p, pw)
	f.then()
	return err
}

// The role is checked again once the cluster is held: a cluster
// unregistered (or registered anew without the caller's membership) while
// the password was checked gets nothing created in it.
func TestIssueChecksTheRoleAgainAfterThePassword(t *testing.T) {
	person := &identity.Principal{UserID: "usr_1", Username: "ann", AuthMethod: identity.MethodPassword}
	for _, tc := range []struct {
		roleAfter string
		want      error
	}{{"", ErrNotFound}, {"edit", ErrNotClusterAdmin}} {
		c := &fakeClusters{role: "cluster-admin"}
		pw := passwordsThen{fakePasswords{right: "pw"}, func() { c.role = tc.roleAfter }}
		_, err := NewService(c, pw, nil, nil, nil, nil).Issue(context.Background(), person, "prod", "pw", audit.Event{})
		if !errors.Is(err, tc.want) || len(c.calls) != 0 {
			t.Errorf("role %q after the password: %v with calls %q, want %v and no calls", tc.roleAfter, err, c.calls, tc.want)
		}
	}
}

// An unregistering holds off issuing on its cluster until it is done, so
// it never lists between an issue's account and its binding.
func TestUnregisteringHoldsOffIssuing(t *testing.T) {
	person := &identity.Principal{UserID: "usr_1", Username: "ann", AuthMethod: identity.MethodPassword}
	c := &fakeClusters{role: "cluster-admin"}
	s := NewService(c, fakePasswords{right: "pw"}, nil, nil, nil, nil)
	listing, finish := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Unregistering(context.Background(), "prod", "root", func(_ context.Context, method, path, _ string, _ []byte) (int, []byte, error) {
			if strings.Contains(path, "serviceaccounts") {
				close(listing)
				<-finish
			}
			return 200, []byte(`{"items":[]}`), nil
		})
	}()
	<-listing
	issued := make(chan struct{})
	go func() {
		defer close(issued)
		s.Issue(context.Background(), person, "prod", "pw", audit.Event{})
	}()
	select {
	case <-issued:
		t.Fatal("an admin kubeconfig was issued while the cluster was being unregistered")
	case <-time.After(100 * time.Millisecond):
	}
	if len(c.calls) != 0 {
		t.Errorf("the issue reached the cluster during the unregistering: %q", c.calls)
	}
	close(finish)
	<-done
	<-issued
	if len(c.calls) == 0 {
		t.Error("the issue did not go on once the unregistering ended")
	}
}
