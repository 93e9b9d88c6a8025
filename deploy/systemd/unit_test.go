// Package systemd tests deploy/systemd: the unit's settings as written, and
// systemd's own checks of the unit and of the sysusers file when systemd's
// tools are installed (each check says in the log what it checked, or why it
// could not run).
package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/config"
)

// unit maps "Section.Key" to the values in the order written.
type unit map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, "\\") {
				t.Fatalf("%s:%d: not a key=value line of a section: %q", path, n, line)
			}
			u[section+"."+strings.TrimSpace(k)] = append(u[section+"."+strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestUnitSettings checks the settings the install relies on, as written.
func TestUnitSettings(t *testing.T) {
	u := parseUnit(t, "berth.service")
	want := map[string]string{
		"Service.Type":                     "exec",
		"Service.User":                     "berth",
		"Service.Group":                    "berth",
		"Service.DynamicUser":              "no",
		"Service.ExecStart":                "/usr/local/bin/berth serve --config /etc/berth/berth.yaml",
		"Service.StateDirectory":           "berth",
		"Service.StateDirectoryMode":       "0700",
		"Service.Environment":              "BERTH_DATA_DIR=/var/lib/berth",
		"Service.ConfigurationDirectory":   "berth",
		"Service.EnvironmentFile":          "-/etc/berth/berth.env",
		"Service.UMask":                    "0077",
		"Service.LimitNOFILE":              "1048576",
		"Service.Restart":                  "on-failure",
		"Service.RestartPreventExitStatus": "2",
		"Service.KillMode":                 "mixed",
		"Service.NoNewPrivileges":          "yes",
		"Service.ProtectSystem":            "strict",
		"Service.ProtectHome":              "yes",
		"Service.PrivateTmp":               "yes",
		"Service.PrivateDevices":           "yes",
		"Service.ProtectKernelTunables":    "yes",
		"Service.ProtectKernelModules":     "yes",
		"Service.ProtectKernelLogs":        "yes",
		"Service.ProtectControlGroups":     "yes",
		"Service.RestrictAddressFamilies":  "AF_INET AF_INET6 AF_UNIX",
		"Service.RestrictNamespaces":       "yes",
		"Service.LockPersonality":          "yes",
		"Service.MemoryDenyWriteExecute":   "yes",
		"Service.SystemCallArchitectures":  "native",
		// Empty: no capabilities at all (the listeners are above 1024).
		"Service.CapabilityBoundingSet": "",
		"Service.AmbientCapabilities":   "",
		"Install.WantedBy":              "multi-user.target",
	}
	for k, v := range want {
		got, ok := u[k]
		if !ok || len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want exactly %q", k, got, v)
		}
	}
	if f := u["Service.SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
		t.Errorf("SystemCallFilter %q, want @system-service first", f)
	}
	// systemd must wait longer than Berth does for in-flight requests.
	cfg, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := time.ParseDuration(strings.Join(u["Service.TimeoutStopSec"], ""))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	if stop <= cfg.Limits.ShutdownTimeout.D() {
		t.Errorf("TimeoutStopSec=%s is not longer than the default limits.shutdown_timeout %s", stop, cfg.Limits.ShutdownTimeout.D())
	}
	t.Logf("checked %d settings of berth.service as written; TimeoutStopSec=%s > shutdown_timeout %s", len(want)+2, stop, cfg.Limits.ShutdownTimeout.D())
}

// TestSystemdAnalyze runs systemd-analyze verify and its offline security
// review on the unit. The unit's ExecStart binary is not installed here, and
// verify insists that it exist, so a copy of the unit runs this test's own
// executable instead; nothing else is changed.
func TestSystemdAnalyze(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIPPED, NOT PASSED: systemd-analyze is not installed (Debian package systemd); only TestUnitSettings checked the unit")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("berth.service")
	if err != nil {
		t.Fatal(err)
	}
	unitPath := filepath.Join(t.TempDir(), "berth.service")
	copied := strings.Replace(string(data), "ExecStart=/usr/local/bin/berth ", "ExecStart="+self+" ", 1)
	if err := os.WriteFile(unitPath, []byte(copied), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", unitPath).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "berth.service") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
	if !t.Failed() {
		t.Logf("systemd-analyze verify: no complaint about berth.service")
	}

	out, err = exec.Command(tool, "security", "--offline=yes", unitPath).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=yes: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for berth\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	// systemd rates 0-10, lower is better; up to 2 is its "OK" band.
	// A removed hardening line pushes the unit above it.
	if level > 2.0 {
		t.Errorf("systemd-analyze security rates berth.service %.1f, want at most 2.0:\n%s", level, out)
	}
	t.Logf("systemd-analyze security --offline: exposure %.1f (0 best, 10 worst)", level)
}

// TestSysusers lets systemd-sysusers create the berth user from the
// sysusers file in a scratch root, as it would in /.
func TestSysusers(t *testing.T) {
	tool, err := exec.LookPath("systemd-sysusers")
	if err != nil {
		t.Skip("SKIPPED, NOT PASSED: systemd-sysusers is not installed (Debian package systemd); berth.sysusers was not checked")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "usr", "lib", "sysusers.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("berth.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "berth.conf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "--root="+root).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^berth:x:(\d+):(\d+):[^:]*:/var/lib/berth:/usr/sbin/nologin$`).Find(passwd)
	if line == nil {
		t.Fatalf("no berth system user in the passwd systemd-sysusers wrote:\n%s", passwd)
	}
	t.Logf("systemd-sysusers creates %s", line)
}
