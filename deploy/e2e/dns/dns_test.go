// Package dns runs managed DNS with real processes: the berth binary, the
// first-party RFC 2136 plugin it starts, a real authoritative server
// (knot, from Debian's package) holding the zone, and a real Kubernetes
// API server for the cluster registered into Berth.
package dns

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/deploy/e2e/kubeenv"
	"github.com/berthgw/berth/internal/freeport"
	"github.com/berthgw/berth/sdk/testpeer"
)

const adminPassword = "admin-Password-0001"

var binDir string

// TestMain builds berth and the RFC 2136 plugin once.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-dns-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for _, b := range []struct{ dir, out, pkg string }{
		{"../../..", "berth", "./cmd/berth"},
		{"../../../plugins/dns-rfc2136", "dns-rfc2136", "."},
	} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = b.dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.out, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type gateway struct {
	base string
	mu   sync.Mutex
	logs bytes.Buffer
}

func (g *gateway) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logs.Write(p)
}

// startGateway runs berth with the RFC 2136 plugin pointed at knot.
func startGateway(t *testing.T, knot *testpeer.Knot) *gateway {
	ports, err := freeport.Pick(2)
	if err != nil {
		t.Fatal(err)
	}
	plugin := filepath.Join(binDir, "dns-rfc2136")
	data, err := os.ReadFile(plugin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	cfg := filepath.Join(t.TempDir(), "berth.yaml")
	yaml := fmt.Sprintf(`dns:
  interval: 1s
plugins:
  instances:
    - name: rfc2136
      path: %s
      sha256: %s
      required: true
      capabilities: [dns]
      env: ["BERTH_DNS_TSIG_SECRET=%s"]
      config:
        server: %q
        tsig_key_name: %q
        tsig_algorithm: %s
`, plugin, hex.EncodeToString(sum[:]), knot.KeySecret, knot.Addr, knot.KeyName, knot.KeyAlgorithm)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gateway{base: "http://127.0.0.1:" + strconv.Itoa(ports[0])}
	cmd := exec.Command(filepath.Join(binDir, "berth"), "serve", "--config", cfg)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"BERTH_DATA_DIR=" + t.TempDir(),
		"BERTH_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(ports[0]),
		"BERTH_HTTPS_ADDR=127.0.0.1:" + strconv.Itoa(ports[1]),
		"BERTH_ADMIN_PASSWORD=" + adminPassword,
		"BERTH_RATE_LIMITS_AUTH_REQUESTS=0", "BERTH_RATE_LIMITS_API_REQUESTS=0",
	}
	cmd.Stdout, cmd.Stderr = g, g
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		g.mu.Lock()
		logs := g.logs.String()
		g.mu.Unlock()
		if strings.Contains(logs, knot.KeySecret) {
			t.Error("the TSIG secret is in berth's log")
		}
		if t.Failed() {
			lines := strings.Split(logs, "\n")
			t.Logf("berth's last log lines:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	for range 600 {
		if resp, err := http.Get(g.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return g
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("berth never ready")
	return nil
}

func (g *gateway) call(t *testing.T, token, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, g.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode
}

func (g *gateway) must(t *testing.T, want int, token, method, path string, body, out any) {
	t.Helper()
	var raw json.RawMessage
	if got := g.call(t, token, method, path, body, &raw); got != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, got, want, raw)
	}
	if out != nil {
		json.Unmarshal(raw, out)
	}
}

// eventually waits up to a minute for cond, naming what it waited for.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type binding struct {
	Hostname  string `json:"hostname"`
	Scope     string `json:"dns_management_scope"`
	DNSStatus string `json:"dns_management_status"`
	Message   string `json:"dns_management_message"`
	Status    string `json:"status"`
}

// The path: base domain set → cluster registered → its CNAME in
// knot → a platform-managed and a self-managed hostname bound → the
// managed one in knot, the other not managed → a record deleted by hand
// comes back → the cluster deleted, its records gone, a record Berth
// does not own still there.
func TestManagedDNSWithKnot(t *testing.T) {
	const zone = "berth.test."
	knot := testpeer.StartKnot(t, testpeer.KnotOptions{Zones: []string{zone}})
	kube := kubeenv.ForTest(t, kubeenv.Options{})
	// Someone else's records in the zone, one of them under the base
	// domain.
	knot.AddRecord(t, zone, "legacy.apps", 300, "A", "198.51.100.7")
	knot.AddRecord(t, zone, "www", 300, "CNAME", "elsewhere.example.net.")

	g := startGateway(t, knot)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	g.must(t, 200, "", "POST", "/api/v1/auth/login", map[string]string{"username": "admin", "password": adminPassword}, &tok)
	admin := tok.AccessToken

	if s := g.call(t, admin, "PUT", "/api/v1/dns/settings", map[string]any{"base_domain": "co.uk", "plugin": "rfc2136", "target_hostname": "edge.example.net"}, nil); s != 400 {
		t.Errorf("a public suffix as the base domain: %d, want 400", s)
	}
	g.must(t, 200, admin, "PUT", "/api/v1/dns/settings", map[string]any{"base_domain": "apps.berth.test", "zone": "berth.test", "plugin": "rfc2136",
		"target_hostname": "edge.example.net", "resolver": knot.Addr, "ttl": 60}, nil)
	g.must(t, 201, admin, "POST", "/api/v1/clusters", map[string]any{"name": "c1", "server": kube.Server, "token": kube.AdminToken,
		"certificate_authority_data": base64.StdEncoding.EncodeToString(kube.CAData)}, nil)
	var cluster struct {
		Target string `json:"ingress_cname_target"`
	}
	g.must(t, 200, admin, "GET", "/api/v1/clusters/c1", nil, &cluster)
	if cluster.Target != "c1.apps.berth.test" {
		t.Errorf("ingress_cname_target = %q", cluster.Target)
	}
	eventually(t, "c1's CNAME in knot", func() bool {
		return slices.Equal(knot.Values(t, "c1.apps.berth.test.", "CNAME"), []string{"edge.example.net."})
	})

	g.must(t, 201, admin, "POST", "/api/v1/clusters/c1/hostnames", map[string]string{"hostname": "shop.apps.berth.test"}, nil)
	g.must(t, 201, admin, "POST", "/api/v1/clusters/c1/hostnames", map[string]string{"hostname": "www.customer.example"}, nil)
	if s := g.call(t, admin, "POST", "/api/v1/clusters/c1/hostnames", map[string]string{"hostname": "bad_name.apps.berth.test"}, nil); s != 400 {
		t.Errorf("an underscore: %d, want 400", s)
	}
	eventually(t, "shop's CNAME in knot", func() bool {
		return slices.Equal(knot.Values(t, "shop.apps.berth.test.", "CNAME"), []string{"c1.apps.berth.test."})
	})
	hostnames := func() map[string]binding {
		var list struct{ Items []binding }
		g.must(t, 200, admin, "GET", "/api/v1/clusters/c1/hostnames", nil, &list)
		out := map[string]binding{}
		for _, b := range list.Items {
			out[b.Hostname] = b
		}
		return out
	}
	eventually(t, "shop synced and resolving", func() bool {
		b := hostnames()["shop.apps.berth.test"]
		return b.DNSStatus == "synced" && b.Status == "ready"
	})
	if b := hostnames()["www.customer.example"]; b.Scope != "self_managed" || b.DNSStatus != "not_managed" || b.Status == "ready" {
		t.Errorf("the self-managed hostname: %+v", b)
	}

	// Deleted by hand: back on the next pass.
	knot.RemoveRecord(t, zone, "shop.apps", "CNAME", "")
	if v := knot.Values(t, "shop.apps.berth.test.", "CNAME"); len(v) != 0 {
		t.Fatalf("the record is still there after removing it by hand: %v", v)
	}
	eventually(t, "the hand-deleted record back", func() bool {
		return slices.Equal(knot.Values(t, "shop.apps.berth.test.", "CNAME"), []string{"c1.apps.berth.test."})
	})

	// The cluster deleted: its records go, the others stay.
	if s := g.call(t, admin, "DELETE", "/api/v1/clusters/c1", nil, nil); s != 204 && s != 202 {
		t.Fatalf("delete cluster: %d", s)
	}
	eventually(t, "c1's records gone", func() bool {
		return len(knot.Values(t, "c1.apps.berth.test.", "CNAME")) == 0 && len(knot.Values(t, "shop.apps.berth.test.", "CNAME")) == 0 &&
			len(knot.Values(t, "_berth.c1.apps.berth.test.", "TXT")) == 0 && len(knot.Values(t, "_berth.shop.apps.berth.test.", "TXT")) == 0
	})
	if v := knot.Values(t, "legacy.apps.berth.test.", "A"); !slices.Equal(v, []string{"198.51.100.7"}) {
		t.Errorf("a record Berth does not own: %v", v)
	}
	if v := knot.Values(t, "www.berth.test.", "CNAME"); !slices.Equal(v, []string{"elsewhere.example.net."}) {
		t.Errorf("a record outside the base domain: %v", v)
	}
}
