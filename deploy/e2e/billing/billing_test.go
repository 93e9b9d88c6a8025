// Package billing runs the billing path with real processes: the berth
// binary with berth-plugin-billing-stripe and berth-plugin-notify beside
// it, stripe-mock (Stripe's API server for tests, built from its Go module
// at the version plugins/billing-stripe pins) as the payment provider,
// Stripe-signed webhooks sent the way Stripe sends them, and the
// first-party provisioner-local plugin creating a real control plane
// (etcd and the pinned kube-apiserver) once the quota allows it.
package billing

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/berthproc"
	"github.com/berthgw/berth/deploy/e2e/kubeenv"
	"github.com/berthgw/berth/internal/freeport"
	"github.com/berthgw/berth/sdk/controlplane"
)

const (
	secretKey     = "sk_test_e2e0123456789abcdefghij"
	webhookSecret = "whsec_e2e0123456789abcdefghijklmnop"
	// apiVersion is the Stripe API version stripe-go (and so the plugin)
	// reads; webhook endpoints are created with it (plugins/billing-stripe
	// README).
	apiVersion = "2026-02-25.clover"
)

var binDir string

// TestMain builds berth, the plugins and stripe-mock once.
func TestMain(m *testing.M) {
	dir, err := berthproc.Build(
		berthproc.Binary{Dir: "../../..", Out: "berth", Package: "./cmd/berth"},
		berthproc.Binary{Dir: "../../../plugins/notify", Out: "berth-plugin-notify", Package: "."},
		berthproc.Binary{Dir: "../../../plugins/billing-stripe", Out: "berth-plugin-billing-stripe", Package: "."},
		berthproc.Binary{Dir: "../../../plugins/provisioner-local", Out: "provisioner-local", Package: "."},
		berthproc.Binary{Dir: "../../../plugins/billing-stripe/internal/stripemocktest/testdata/stripe-mock", Out: "stripe-mock", Package: "github.com/stripe/stripe-mock"},
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var listening = regexp.MustCompile(`Listening for HTTP at address: (127\.0\.0\.1:\d+)`)

// stripeMock starts stripe-mock and returns its HTTP address.
func stripeMock(t *testing.T) string {
	cmd := exec.Command(filepath.Join(binDir, "stripe-mock"), "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + strings.TrimPrefix(a, "http://")
	case <-time.After(60 * time.Second):
		t.Fatal("stripe-mock did not listen")
	}
	return ""
}

// startGateway starts berth (the plugins beside it are found and
// started); config, when not empty, is its configuration file's YAML.
func startGateway(t *testing.T, config string) *berthproc.Gateway {
	g := berthproc.New(t, filepath.Join(binDir, "berth"), config,
		"BERTH_PUBLIC_URL=https://berth.example.com", "BERTH_NOTIFICATIONS_ALLOW_PRIVATE_TARGETS=127.0.0.1/32")
	g.Start(t)
	return g
}

// stripeEvent signs a Stripe event the way Stripe does:
// Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>.
func stripeEvent(t *testing.T, id, typ string, object map[string]any) (body []byte, signature string) {
	t.Helper()
	now := time.Now().Unix()
	body, err := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": apiVersion, "created": now, "livemode": false,
		"type": typ, "data": map[string]any{"object": object}, "pending_webhooks": 1})
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	fmt.Fprintf(mac, "%d.", now)
	mac.Write(body)
	return body, fmt.Sprintf("t=%d,v1=%s", now, hex.EncodeToString(mac.Sum(nil)))
}

// The path: an admin's plan → an order → a Checkout Session in
// stripe-mock → a signed checkout.session.completed pays it, raises the
// quota and notifies → a signed customer.subscription.deleted takes the
// plan back.
func TestBillingWithStripeMock(t *testing.T) {
	mock := stripeMock(t)
	g := startGateway(t, provisioningConfig(t))
	admin := g.Admin(t)

	// Notifications of billing events to a webhook receiver.
	var mu sync.Mutex
	var got []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("X-Berth-Event"))
		mu.Unlock()
		w.WriteHeader(204)
	}))
	defer rcv.Close()
	g.Must(t, 201, admin, "POST", "/api/v1/notifications/channels", map[string]any{"name": "ops", "type": "webhook", "url": rcv.URL}, nil)
	g.Must(t, 201, admin, "POST", "/api/v1/notifications/routes", map[string]any{"name": "money", "events": []string{"order.*", "entitlement.*", "subscription.*"}, "channel": "ops"}, nil)

	g.Must(t, 200, admin, "PUT", "/api/v1/billing/settings", map[string]string{"secret_key": secretKey, "webhook_secret": webhookSecret, "api_base": mock}, nil)
	var settings map[string]any
	g.Must(t, 200, admin, "GET", "/api/v1/billing/settings", nil, &settings)
	if settings["secret_key_configured"] != true || settings["secret_key"] != nil {
		t.Errorf("settings as read: %v", settings)
	}
	var plan struct{ ID string }
	g.Must(t, 201, admin, "POST", "/api/v1/billing/plans", map[string]any{"name": "Team", "price": 4900, "currency": "eur", "interval": "month",
		"entitlements": map[string]any{"max_clusters": 5, "max_cpu": "2"}}, &plan)
	// carol may create clusters; the configured quota (half a core) is too
	// small for the one she wants.
	g.Must(t, 201, admin, "POST", "/api/v1/roles", map[string]any{"name": "builder", "permissions": []string{"clusters:read", "clusters:write"}}, nil)
	var user struct{ ID string }
	g.Must(t, 201, admin, "POST", "/api/v1/users", map[string]any{"username": "carol", "password": "carol-password-123", "email": "carol@example.com", "roles": []string{"builder"}}, &user)
	carol := g.Login(t, "carol", "carol-password-123")
	cluster := func(name, cpu string) map[string]any {
		return map[string]any{"name": name, "provision": map[string]any{"control_plane": map[string]string{"cpu": cpu, "memory": "1Gi"}, "workers": map[string]string{"cpu": "0", "memory": "0"}}}
	}
	var refusal struct{ Error, Message string }
	if s := g.Call(t, carol, "POST", "/api/v1/clusters", cluster("paid", "1"), &refusal); s != 403 || refusal.Error != "quota_exceeded" {
		t.Fatalf("a cluster over the default quota: %d %+v, want 403 quota_exceeded", s, refusal)
	}
	var ent struct {
		Active bool
		Limits struct {
			MaxClusters int `json:"max_clusters"`
		}
	}
	g.Must(t, 200, carol, "GET", "/api/v1/billing/entitlement", nil, &ent)
	defaultClusters := ent.Limits.MaxClusters

	var order struct{ ID, Status string }
	g.Must(t, 201, carol, "POST", "/api/v1/billing/orders", map[string]any{"plan_id": plan.ID}, &order)
	var checkout struct {
		URL string `json:"checkout_url"`
	}
	g.Must(t, 200, carol, "POST", "/api/v1/billing/orders/"+order.ID+"/checkout", nil, &checkout)
	if !strings.HasPrefix(checkout.URL, "https://") {
		t.Errorf("checkout URL %q from stripe-mock", checkout.URL)
	}

	session := map[string]any{"id": "cs_test_e2e", "object": "checkout.session", "client_reference_id": order.ID,
		"metadata": map[string]string{"order_id": order.ID, "user_id": user.ID, "plan_id": plan.ID},
		"customer": "cus_test_e2e", "subscription": "sub_test_e2e", "amount_total": 4900, "currency": "eur",
		"status": "complete", "payment_status": "paid", "mode": "subscription"}
	body, sig := stripeEvent(t, "evt_test_paid", "checkout.session.completed", session)
	// A tampered body or a wrong signature is refused and changes nothing.
	if s := g.Call(t, "", "POST", "/api/v1/billing/webhooks/stripe", bytes.Replace(body, []byte("4900"), []byte("0049"), 1), nil, "Stripe-Signature", sig); s != 400 {
		t.Errorf("a tampered webhook: %d, want 400", s)
	}
	g.Must(t, 200, carol, "GET", "/api/v1/billing/orders/"+order.ID, nil, &order)
	if order.Status != "pending" {
		t.Fatalf("a refused webhook changed the order: %s", order.Status)
	}
	if s := g.Call(t, "", "POST", "/api/v1/billing/webhooks/stripe", body, nil, "Stripe-Signature", sig); s != 200 {
		t.Fatalf("checkout.session.completed: %d", s)
	}
	if s := g.Call(t, "", "POST", "/api/v1/billing/webhooks/stripe", body, nil, "Stripe-Signature", sig); s != 200 {
		t.Errorf("its replay: %d, want 200", s)
	}
	g.Must(t, 200, carol, "GET", "/api/v1/billing/orders/"+order.ID, nil, &order)
	g.Must(t, 200, carol, "GET", "/api/v1/billing/entitlement", nil, &ent)
	if order.Status != "paid" || !ent.Active || ent.Limits.MaxClusters != 5 {
		t.Fatalf("after payment: order %s, entitlement %+v (default was %d)", order.Status, ent, defaultClusters)
	}
	// The plan's quota lets carol create the cluster refused before, and
	// provisioner-local makes it.
	var op struct{ ID, Status, Error string }
	g.Must(t, 202, carol, "POST", "/api/v1/clusters", cluster("paid", "1"), &op)
	deadline := time.Now().Add(5 * time.Minute)
	for op.Status != "succeeded" {
		if op.Status == "failed" || op.Status == "cancelled" || time.Now().After(deadline) {
			t.Fatalf("provisioning under the plan: %+v", op)
		}
		time.Sleep(time.Second)
		g.Must(t, 200, carol, "GET", "/api/v1/operations/"+op.ID, nil, &op)
	}
	var version struct{ GitVersion string }
	g.Must(t, 200, carol, "GET", "/proxy/clusters/paid/version", nil, &version)
	if !strings.HasPrefix(version.GitVersion, "v1.") {
		t.Errorf("the new cluster's version through the proxy: %+v", version)
	}
	var portal struct {
		URL string `json:"portal_url"`
	}
	g.Must(t, 200, carol, "POST", "/api/v1/billing/portal", nil, &portal)
	if !strings.HasPrefix(portal.URL, "https://") {
		t.Errorf("portal URL %q", portal.URL)
	}
	var invoices struct{ Items []map[string]any }
	g.Must(t, 200, carol, "GET", "/api/v1/billing/invoices", nil, &invoices)

	sub := map[string]any{"id": "sub_test_e2e", "object": "subscription", "customer": "cus_test_e2e", "status": "canceled", "currency": "eur",
		"metadata": map[string]string{"order_id": order.ID, "user_id": user.ID, "plan_id": plan.ID}}
	body, sig = stripeEvent(t, "evt_test_ended", "customer.subscription.deleted", sub)
	if s := g.Call(t, "", "POST", "/api/v1/billing/webhooks/stripe", body, nil, "Stripe-Signature", sig); s != 200 {
		t.Fatalf("customer.subscription.deleted: %d", s)
	}
	g.Must(t, 200, carol, "GET", "/api/v1/billing/entitlement", nil, &ent)
	if ent.Active || ent.Limits.MaxClusters != defaultClusters {
		t.Errorf("after the subscription ended: %+v, want the default %d", ent, defaultClusters)
	}
	// The cluster stays (clusters never stop for billing), but the quota
	// is the default again: even a tenth of a core more is refused.
	if s := g.Call(t, carol, "POST", "/api/v1/clusters", cluster("more", "100m"), &refusal); s != 403 || refusal.Error != "quota_exceeded" {
		t.Errorf("a cluster after the plan ended: %d %+v, want 403 quota_exceeded", s, refusal)
	}
	var still struct{ Name string }
	g.Must(t, 200, carol, "GET", "/api/v1/clusters/paid", nil, &still)
	want := []string{"order.paid", "entitlement.changed", "subscription.ended", "entitlement.changed"}
	for range 600 {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("notifications %v, want %v", got, want)
	}
}

// provisioningConfig is berth's configuration for the test: provisioner-
// local as the default provisioner (its control planes stopped when the
// test ends), and a default quota of half a core per user.
func provisioningConfig(t *testing.T) string {
	bins := kubeenv.MustBinaries(t)
	plugin := filepath.Join(binDir, "provisioner-local")
	data, err := os.ReadFile(plugin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	dir := t.TempDir()
	ports, err := freeport.Pick(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { controlplane.KillGroups(filepath.Join(dir, "clusters", "*", "run", "*.pid")) })
	return fmt.Sprintf(`provisioning:
  provisioner: local
  quota:
    max_cpu: 500m
plugins:
  instances:
    - name: local
      path: %s
      sha256: %s
      required: true
      capabilities: [provisioner]
      config:
        data_dir: %s
        etcd_path: %s
        kube_apiserver_path: %s
        port_range_start: %d
        port_range_end: %d
        max_clusters: 2
        stop_on_exit: true
`, plugin, hex.EncodeToString(sum[:]), dir, bins.Etcd, bins.KubeAPIServer, ports[0], ports[0]+20)
}
