package edgetls

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/events/eventstest"
)

// A run of failed renewals is reported once, by its first failure; a
// success ends the run. What was reported survives a restart (and is
// shared by replicas): it is in the store.
func TestRenewalFailureEmitsOncePerRun(t *testing.T) {
	db, box := testDB(t)
	start := func() *Manager {
		t.Helper()
		m, err := New(Options{DB: db, Box: box, Mode: ModeSelfSigned})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Stop)
		return m
	}
	m := start()
	ctx := context.Background()
	fail := func(m *Manager) {
		m.onEvent(ctx, evFailed, map[string]any{"identifier": "a.example", "renewal": true, "error": errors.New("acme: rate limited")})
	}
	steps := []struct {
		name  string
		do    func()
		emits bool
	}{
		{"first failure", func() { fail(m) }, true},
		{"retry fails", func() { fail(m) }, false},
		{"another name's success", func() { m.onEvent(ctx, evObtained, map[string]any{"identifier": "b.example"}) }, false},
		{"after a restart", func() { m = start(); fail(m) }, false},
		{"renewed", func() { m.onEvent(ctx, evObtained, map[string]any{"identifier": "a.example", "renewal": true}) }, false},
		{"fails again", func() { fail(m) }, true},
	}
	for _, st := range steps {
		st.do()
		got := eventstest.Take(t, db)
		if !st.emits {
			if len(got) != 0 {
				t.Fatalf("%s: want no event, got %+v", st.name, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Type != events.CertificateRenewalFailed || got[0].Data["domain"] != "a.example" ||
			got[0].Data["error"] != "acme: rate limited" || got[0].Actor != events.SystemActor || got[0].Summary == "" {
			t.Fatalf("%s: %+v", st.name, got)
		}
	}
	if st := m.getStatus("a.example"); st.LastError != "acme: rate limited" {
		t.Errorf("the certificates API lost the error: %+v", st)
	}
}

// A certificate within the warning window is warned about once: not
// again at the next check, after a restart, or by another replica, but
// its replacement is, when it too comes close.
func TestExpiryWarnsOncePerCertificate(t *testing.T) {
	db, box := testDB(t)
	ca := newCA(t, "files CA")
	now := time.Now().UTC().Truncate(time.Second)
	files := func(na time.Time) Files {
		c, k := ca.issue(t, pkix.Name{CommonName: "edge"}, []string{"edge.example"}, now.Add(-time.Hour), na, x509.ExtKeyUsageServerAuth)
		return Files{CertFile: writeTemp(t, "cert.pem", c), KeyFile: writeTemp(t, "key.pem", k), ReloadInterval: time.Hour}
	}
	far, near, nearer := files(now.Add(60*24*time.Hour)), files(now.Add(10*24*time.Hour+time.Hour)), files(now.Add(3*24*time.Hour+time.Hour))
	manager := func(f Files) *Manager {
		t.Helper()
		m, err := New(Options{DB: db, Box: box, Mode: ModeFiles, Files: f, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Stop)
		return m
	}
	steps := []struct {
		name  string
		files Files
		days  string // "" for no warning
	}{
		{"far from expiry", far, ""},
		{"within the window", near, "10"},
		{"checked again", near, ""},
		{"another replica, or a restart", near, ""},
		{"replaced by one closer still", nearer, "3"},
	}
	for _, st := range steps {
		n, err := manager(st.files).CheckExpiry(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := eventstest.Take(t, db)
		if st.days == "" {
			if n != 0 || len(got) != 0 {
				t.Fatalf("%s: want no warning, got %d %+v", st.name, n, got)
			}
			continue
		}
		if n != 1 || len(got) != 1 || got[0].Type != events.CertificateExpiring || got[0].Data["domain"] != "edge.example" ||
			got[0].Data["days_left"] != st.days || got[0].Data["expires_at"] == "" || !got[0].Time.Equal(now) {
			t.Fatalf("%s: %d %+v", st.name, n, got)
		}
	}
}

// Start runs the expiry check without being asked.
func TestStartChecksExpiry(t *testing.T) {
	db, box := testDB(t)
	ca := newCA(t, "files CA")
	now := time.Now()
	c, k := ca.issue(t, pkix.Name{CommonName: "edge"}, []string{"edge.example"}, now.Add(-time.Hour), now.Add(48*time.Hour), x509.ExtKeyUsageServerAuth)
	m, err := New(Options{DB: db, Box: box, Mode: ModeFiles,
		Files: Files{CertFile: writeTemp(t, "cert.pem", c), KeyFile: writeTemp(t, "key.pem", k), ReloadInterval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start("", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got := eventstest.Take(t, db); len(got) > 0 {
			if len(got) != 1 || got[0].Type != events.CertificateExpiring {
				t.Fatalf("%+v", got)
			}
			return
		}
	}
	t.Fatal("no warning")
}
