package config

import (
	"os"
	"strings"
	"testing"
)

func TestPluginsSection(t *testing.T) {
	const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	c, err := Load(writeFile(t, `plugins:
  call_wait: 2s
  instances:
    - name: notifier-file
      path: /usr/lib/berth/plugins/notifier-file
      sha256: `+sum+`
      env: [TZ, "MODE=fast"]
      required: true
      capabilities: [notifier]
      config:
        path: /var/lib/berth/out.jsonl
        nested: {retries: 3}
`), envMap(map[string]string{"BERTH_PLUGINS_MAX_FAILURES": "7"}))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plugins
	if p.CallWait.D().String() != "2s" || p.MaxFailures != 7 || p.RestartBackoffMax.D().String() != "1m0s" {
		t.Errorf("settings: %+v", p)
	}
	d, ok := p.Plugin("notifier-file")
	if !ok || !d.Required || d.SHA256 != sum || len(d.Env) != 2 || d.Config["path"] != "/var/lib/berth/out.jsonl" {
		t.Fatalf("declaration: %+v", d)
	}
	if nested, ok := d.Config["nested"].(map[string]any); !ok || nested["retries"] != 3 {
		t.Errorf("nested config: %#v", d.Config["nested"])
	}

	entry := func(extra string) string {
		return "plugins:\n  instances:\n    - name: p\n      path: /bin/p\n      sha256: " + sum + "\n" + extra
	}
	tests := []struct {
		name, file, wantKey, wantMsg string
	}{
		{"unknown key in an entry", entry("      sha265: x\n"), "plugins.instances", `unknown key "sha265"`},
		{"missing checksum", "plugins:\n  instances:\n    - name: p\n      path: /bin/p\n", "plugins.instances[0].sha256", "64 hex digits"},
		{"bad name", strings.Replace(entry(""), "name: p", "name: Bad/Name", 1), "plugins.instances[0].name", "not a plugin name"},
		{"duplicate", entry("    - name: p\n      path: /bin/q\n      sha256: " + sum + "\n"), "plugins.instances[1].name", "declared twice"},
		{"bad env", entry("      env: [\"1BAD\"]\n"), "plugins.instances[0].env[0]", "NAME"},
		{"bad capability", entry("      capabilities: [printer]\n"), "plugins.instances[0].capabilities[0]", "unknown capability"},
		{"backoff order", "plugins:\n  restart_backoff_min: 2m\n", "plugins.restart_backoff_max", "less than"},
		{"no failures", "plugins:\n  max_failures: 0\n", "plugins.max_failures", "at least 1"},
		{"unknown provisioner", "provisioning:\n  provisioner: nope\n", "provisioning.provisioner", `no plugin named "nope"`},
		{"provisioner without the capability", "provisioning:\n  provisioner: p\n" + entry("      capabilities: [notifier]\n"), "provisioning.provisioner", "provisioner capability"},
		{"bad quota", "provisioning:\n  quota:\n    max_cpu: lots\n", "provisioning.quota.max_cpu", "not a quantity"},
		{"few workers", "provisioning:\n  workers: 0\n", "provisioning.workers", "from 1 to 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tt.file), nil)
			ce, ok := err.(*Error)
			if !ok {
				t.Fatalf("error %v is not *config.Error", err)
			}
			if ce.Key != tt.wantKey || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error = %v (key %q), want key %q and %q", err, ce.Key, tt.wantKey, tt.wantMsg)
			}
		})
	}
}

func TestReloadRereadsTheFile(t *testing.T) {
	path := writeFile(t, "plugins:\n  max_failures: 3\n")
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAt(path, "plugins:\n  max_failures: 4\n"); err != nil {
		t.Fatal(err)
	}
	c2, err := c.Reload()
	if err != nil || c2.Plugins.MaxFailures != 4 {
		t.Fatalf("reload: %v, %+v", err, c2)
	}
}

func writeFileAt(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }
