// Package dns runs managed DNS with real processes: the berth binary, the
// first-party RFC 2136 plugin it starts, a real authoritative server
// (knot, from Debian's package) holding the zone, and a real Kubernetes
// API server for the cluster registered into Berth.
package dns

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berthgw/berth/deploy/e2e/berthproc"
	"github.com/berthgw/berth/deploy/e2e/kubeenv"
	"github.com/berthgw/berth/sdk/testpeer"
)

var binDir string

// TestMain builds berth and the RFC 2136 plugin once.
func TestMain(m *testing.M) {
	dir, err := berthproc.Build(
		berthproc.Binary{Dir: "../../..", Out: "berth", Package: "./cmd/berth"},
		berthproc.Binary{Dir: "../../../plugins/dns-rfc2136", Out: "dns-rfc2136", Package: "."},
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

// startGateway runs berth with the RFC 2136 plugin pointed at knot.
func startGateway(t *testing.T, knot *testpeer.Knot) *berthproc.Gateway {
	plugin := filepath.Join(binDir, "dns-rfc2136")
	data, err := os.ReadFile(plugin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	g := berthproc.New(t, filepath.Join(binDir, "berth"), fmt.Sprintf(`dns:
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
`, plugin, hex.EncodeToString(sum[:]), knot.KeySecret, knot.Addr, knot.KeyName, knot.KeyAlgorithm))
	g.Start(t)
	t.Cleanup(func() {
		if strings.Contains(g.Logs(), knot.KeySecret) {
			t.Error("the TSIG secret is in berth's log")
		}
	})
	return g
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
	admin := g.Admin(t)

	if s := g.Call(t, admin, "PUT", "/api/v1/dns/settings", map[string]any{"base_domain": "co.uk", "plugin": "rfc2136", "target_hostname": "edge.example.net"}, nil); s != 400 {
		t.Errorf("a public suffix as the base domain: %d, want 400", s)
	}
	g.Must(t, 200, admin, "PUT", "/api/v1/dns/settings", map[string]any{"base_domain": "apps.berth.test", "zone": "berth.test", "plugin": "rfc2136",
		"target_hostname": "edge.example.net", "resolver": knot.Addr, "ttl": 60}, nil)
	g.Must(t, 201, admin, "POST", "/api/v1/clusters", map[string]any{"name": "c1", "server": kube.Server, "token": kube.AdminToken,
		"certificate_authority_data": base64.StdEncoding.EncodeToString(kube.CAData)}, nil)
	var cluster struct {
		Target string `json:"ingress_cname_target"`
	}
	g.Must(t, 200, admin, "GET", "/api/v1/clusters/c1", nil, &cluster)
	if cluster.Target != "c1.apps.berth.test" {
		t.Errorf("ingress_cname_target = %q", cluster.Target)
	}
	berthproc.Eventually(t, "c1's CNAME in knot", func() bool {
		return slices.Equal(knot.Values(t, "c1.apps.berth.test.", "CNAME"), []string{"edge.example.net."})
	})

	g.Must(t, 201, admin, "POST", "/api/v1/clusters/c1/hostnames", map[string]string{"hostname": "shop.apps.berth.test"}, nil)
	g.Must(t, 201, admin, "POST", "/api/v1/clusters/c1/hostnames", map[string]string{"hostname": "www.customer.example"}, nil)
	if s := g.Call(t, admin, "POST", "/api/v1/clusters/c1/hostnames", map[string]string{"hostname": "bad_name.apps.berth.test"}, nil); s != 400 {
		t.Errorf("an underscore: %d, want 400", s)
	}
	berthproc.Eventually(t, "shop's CNAME in knot", func() bool {
		return slices.Equal(knot.Values(t, "shop.apps.berth.test.", "CNAME"), []string{"c1.apps.berth.test."})
	})
	hostnames := func() map[string]binding {
		var list struct{ Items []binding }
		g.Must(t, 200, admin, "GET", "/api/v1/clusters/c1/hostnames", nil, &list)
		out := map[string]binding{}
		for _, b := range list.Items {
			out[b.Hostname] = b
		}
		return out
	}
	berthproc.Eventually(t, "shop synced and resolving", func() bool {
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
	berthproc.Eventually(t, "the hand-deleted record back", func() bool {
		return slices.Equal(knot.Values(t, "shop.apps.berth.test.", "CNAME"), []string{"c1.apps.berth.test."})
	})

	// The cluster deleted: its records go, the others stay.
	if s := g.Call(t, admin, "DELETE", "/api/v1/clusters/c1", nil, nil); s != 204 && s != 202 {
		t.Fatalf("delete cluster: %d", s)
	}
	berthproc.Eventually(t, "c1's records gone", func() bool {
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
