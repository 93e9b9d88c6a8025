// Package layout holds the test that keeps Berth's package boundaries as
// docs/architecture.md draws them: the table there is the rule, and this
// test fails when the code imports across it, or when a package is missing
// from it.
package layout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const modulePath = "github.com/berthgw/berth"

// The modules of this repository, relative to its root.
var modules = []string{".", "sdk", "plugins/provisioner-local"}

type rule struct {
	pattern string   // a package path, or a prefix ending in "/*"
	allowed []string // the same forms
}

// matches reports whether pkg is named by pattern: exactly, or below a
// "/*" prefix.
func matches(pattern, pkg string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/*"); ok {
		return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
	}
	return pattern == pkg
}

// ruleFor picks the most specific row naming pkg.
func ruleFor(rules []rule, pkg string) (rule, bool) {
	var best rule
	found := false
	for _, r := range rules {
		if matches(r.pattern, pkg) && (!found || len(r.pattern) > len(best.pattern)) {
			best, found = r, true
		}
	}
	return best, found
}

// readRules parses the table under the heading "## Packages" in
// docs/architecture.md: | `package` | holds | `import`, `import` |.
func readRules(t *testing.T, root string) []rule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rules []rule
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Packages"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 3 {
			t.Fatalf("architecture.md: a package row has %d cells, want 3: %s", len(cells), line)
		}
		r := rule{pattern: strings.Trim(strings.TrimSpace(cells[0]), "`")}
		for _, f := range strings.Split(cells[2], ",") {
			f = strings.TrimSpace(f)
			if strings.HasPrefix(f, "`") {
				r.allowed = append(r.allowed, strings.Trim(f, "`"))
			}
		}
		rules = append(rules, r)
	}
	if len(rules) < 10 {
		t.Fatalf("architecture.md: found %d package rows under '## Packages'", len(rules))
	}
	return rules
}

type goPackage struct {
	ImportPath string
	Imports    []string
}

// listPackages returns every package of the module in dir, with its
// non-test imports, paths relative to the repository.
func listPackages(t *testing.T, dir string) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v", dir, err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func local(path string) (string, bool) {
	if path == modulePath {
		return ".", true
	}
	return strings.CutPrefix(path, modulePath+"/")
}

func TestPackagesKeepTheirBoundaries(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	rules := readRules(t, root)
	seen := 0
	for _, m := range modules {
		for _, p := range listPackages(t, filepath.Join(root, m)) {
			pkg, ok := local(p.ImportPath)
			if !ok || strings.Contains(pkg, "/testdata/") {
				continue
			}
			seen++
			r, ok := ruleFor(rules, pkg)
			if !ok {
				t.Errorf("%s is not in docs/architecture.md's package table", pkg)
				continue
			}
			for _, imp := range p.Imports {
				dep, ok := local(imp)
				if !ok {
					continue
				}
				allowed := false
				for _, a := range r.allowed {
					allowed = allowed || matches(a, dep)
				}
				if !allowed {
					t.Errorf("%s imports %s, which docs/architecture.md does not allow (row %s)", pkg, dep, r.pattern)
				}
			}
		}
	}
	if seen < 20 {
		t.Fatalf("saw only %d packages", seen)
	}
}
