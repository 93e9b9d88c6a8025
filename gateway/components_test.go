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
	duties := g.duties().Names()
	at := func(names []string, name string) int {
		i := slices.Index(names, name)
		if i < 0 {
			t.Fatalf("no component %q in %q", name, names)
		}
		return i
	}
	for _, before := range [][2]string{
		{"store changes", "plugins"},
		{"plugins", "tls certificates"},
		{"plugins", "leader duties"}, // operations and the outbox call plugins
		{"stream checks", "leader duties"},
		{"leader duties", "http server"},
	} {
		if at(names, before[0]) > at(names, before[1]) {
			t.Errorf("%s starts after %s: %q", before[0], before[1], names)
		}
	}
	for _, before := range [][2]string{
		{"cluster probes", "node history"},
		{"cluster probes", "operations"},
		{"cluster probes", "break-glass sweep"},
	} {
		if at(duties, before[0]) > at(duties, before[1]) {
			t.Errorf("%s starts after %s: %q", before[0], before[1], duties)
		}
	}
	if names[len(names)-1] != "http server" {
		t.Errorf("the HTTP server is not the last to start: %q", names)
	}
	for _, c := range []string{"store gc", "admin socket"} {
		at(names, c)
	}
	for _, d := range []string{"notification outbox", "audit purge", "signing-key rotation"} {
		at(duties, d)
	}
}
