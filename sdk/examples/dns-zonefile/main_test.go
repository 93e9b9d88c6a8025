package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/plugintest"
)

const zone = "example.com."

// config makes a directory with an empty zone file for the suite's zone.
func config(t *testing.T) []byte {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, zone+"zone"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return []byte(fmt.Sprintf(`{"dir": %q}`, dir))
}

func TestConformanceInProcess(t *testing.T) {
	f := plugintest.InProcess(func(*testing.T) sdk.Options { return options() }, config)
	plugintest.RunDNSConformance(t, f, zone)
}

func TestConformanceSubprocess(t *testing.T) {
	f := plugintest.Subprocess(plugintest.Build(t, "."), config)
	plugintest.RunDNSConformance(t, f, zone)
}

// TestZoneFileRoundTrip writes records through a real plugin process and
// reads the file back.
func TestZoneFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, zone+"zone")
	if err := os.WriteFile(path, []byte("; hand-written\n@ 3600 IN A 192.0.2.10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := plugintest.StartProcess(t, plugintest.Build(t, "."))
	c.Configure(t, []byte(fmt.Sprintf(`{"dir": %q}`, dir)))
	d, err := c.DNS()
	if err != nil {
		t.Fatal(err)
	}
	in := []sdk.Record{
		{Name: "_acme-challenge", Type: "TXT", Value: `token with "quotes" and spaces`, TTL: time.Minute},
		{Name: "@", Type: "MX", Value: "mail.example.com.", Priority: 10},
	}
	if _, err := d.AppendRecords(t.Context(), sdk.RecordsChange{Zone: zone, Records: in}); err != nil {
		t.Fatal(err)
	}
	got, err := d.GetRecords(t.Context(), zone)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("zone has %d records: %+v", len(got), got)
	}
	if got[1].Value != in[0].Value || got[1].TTL != time.Minute || got[2].Priority != 10 || got[2].TTL != 300*time.Second {
		t.Errorf("records read back: %+v", got)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "@ 300 IN MX 10 mail.example.com.") {
		t.Errorf("zone file:\n%s", data)
	}
}

func TestZoneNamesCannotEscapeDir(t *testing.T) {
	c := plugintest.StartInProcess(t, options())
	c.Configure(t, config(t))
	d, err := c.DNS()
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range []string{"../etc/passwd", "a/b.", "..", "exa mple.com."} {
		if _, err := d.GetRecords(t.Context(), z); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("zone %q: error = %v, want ErrInvalidArgument", z, err)
		}
	}
}

func FuzzParseZone(f *testing.F) {
	f.Add([]byte("@ 300 IN A 192.0.2.1\nwww 60 IN TXT \"x y\"\n@ 300 IN MX 10 mx.\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := parseZone(data)
		if err != nil {
			return
		}
		// What parses must survive a write and a read unchanged.
		again, err := parseZone(formatZone(recs))
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if len(again) != len(recs) {
			t.Fatalf("%d records became %d", len(recs), len(again))
		}
	})
}
