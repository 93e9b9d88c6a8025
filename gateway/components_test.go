package gateway

import (
	"slices"
	"testing"
)

// The order of the components is what lets each use those before it:
// plugins before the certificates (DNS-01) and operations (provisioners)
// that call them, cluster probes before what reads clusters, the HTTP
// server last so that requests see everything running and finish before
// anything stops.
func TestComponentOrder(t *testing.T) {
	g, err := New(Options{Config: testConfig(t, t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	names := g.components.Names()
	at := func(name string) int {
		i := slices.Index(names, name)
		if i < 0 {
			t.Fatalf("no component %q in %q", name, names)
		}
		return i
	}
	for _, before := range [][2]string{
		{"plugins", "tls certificates"},
		{"plugins", "operations"},
		{"cluster probes", "node history"},
		{"cluster probes", "operations"},
		{"cluster probes", "break-glass sweep"},
		{"plugins", "notification outbox"},
	} {
		if at(before[0]) > at(before[1]) {
			t.Errorf("%s starts after %s: %q", before[0], before[1], names)
		}
	}
	if names[len(names)-1] != "http server" {
		t.Errorf("the HTTP server is not the last to start: %q", names)
	}
	for _, loop := range []string{"store gc", "audit purge", "signing-key rotation", "admin socket"} {
		at(loop)
	}
}
