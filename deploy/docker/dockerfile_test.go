// Package docker checks deploy/docker/Dockerfile against the rest of the
// repository. The image itself is not built by the tests (no container
// runtime or registry on CI); these checks catch drift: a new first-party
// plugin missing from the image, or a path or user the Helm chart and the
// image disagree on.
package docker

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/config"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestDockerfile(t *testing.T) {
	df := readFile(t, "Dockerfile")
	for _, want := range []string{
		"ENV CGO_ENABLED=0",
		"-o /out/usr/local/bin/berth ./cmd/berth",
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"USER 65532:65532",
		"EXPOSE 8080 8443",
		`ENTRYPOINT ["/usr/local/bin/berth", "serve"]`,
		`CMD ["--config", "/etc/berth/berth.yaml"]`,
		"COPY deploy/docker/berth.yaml /out/etc/berth/berth.yaml",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// Every first-party plugin (a module under plugins/) is built into the
	// image, and its go.mod is copied for the download layer.
	mods, err := filepath.Glob("../../plugins/*/go.mod")
	if err != nil || len(mods) == 0 {
		t.Fatalf("no plugin modules found: %v", err)
	}
	for _, m := range mods {
		name := filepath.Base(filepath.Dir(m))
		for _, want := range []string{
			"COPY plugins/" + name + "/go.mod plugins/" + name + "/go.sum plugins/" + name + "/",
			"cd plugins/" + name + " && go build",
		} {
			if !strings.Contains(df, want) {
				t.Errorf("plugin %s: Dockerfile lacks %q", name, want)
			}
		}
		// Installed under its name, or under the name the gateway finds a
		// first-party plugin by (berth-plugin-<name>, in plugins.dir).
		if !strings.Contains(df, "-o /out/usr/lib/berth/plugins/"+name+" .") && !strings.Contains(df, "-o /out/usr/lib/berth/plugins/berth-plugin-"+name+" .") {
			t.Errorf("plugin %s is not installed in /usr/lib/berth/plugins", name)
		}
	}
	// The final stage runs as the user the chart's pods run as.
	values := readFile(t, "../helm/berth/values.yaml")
	if !regexp.MustCompile(`(?m)^  uid: 65532$`).MatchString(values) || !regexp.MustCompile(`(?m)^  gid: 65532$`).MatchString(values) {
		t.Error("the chart's securityContext uid/gid are not the image's 65532")
	}
	t.Logf("checked the Dockerfile's build flags, base, user, ports, entrypoint and %d plugin(s) by reading it (it is not built here)", len(mods))
}

// TestImageConfig loads the image's berth.yaml with Berth's configuration
// loader: listeners on every address, data in the declared volume.
func TestImageConfig(t *testing.T) {
	cfg, err := config.Load("berth.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/berth" || cfg.HTTP.Addr != "0.0.0.0:8080" || cfg.HTTPS.Addr != "0.0.0.0:8443" {
		t.Errorf("data_dir %q, http.addr %q, https.addr %q", cfg.DataDir, cfg.HTTP.Addr, cfg.HTTPS.Addr)
	}
	if !strings.Contains(readFile(t, "Dockerfile"), `VOLUME ["/var/lib/berth"]`) {
		t.Error("data_dir is not the image's volume")
	}
}
