package sdk_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docRegion matches the markers of a region of a Go file that a document
// shows: "// doc:begin NAME" and "// doc:end NAME" on lines of their own.
var docRegion = regexp.MustCompile(`^\s*// doc:(begin|end) (\S+)\s*$`)

// regions returns every marked region of the Go files under dir, by
// "file#name", without the marker lines and the blank lines around them.
func regions(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		open := map[string][]string{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if m := docRegion.FindStringSubmatch(line); m != nil {
				if m[1] == "begin" {
					open[m[2]] = []string{}
				} else if lines, ok := open[m[2]]; ok {
					out[path+"#"+m[2]] = strings.Trim(strings.Join(lines, "\n"), "\n")
					delete(open, m[2])
				} else {
					t.Errorf("%s: doc:end %s without doc:begin", path, m[2])
				}
				continue
			}
			for name := range open {
				open[name] = append(open[name], line)
			}
		}
		for name := range open {
			t.Errorf("%s: doc:begin %s without doc:end", path, name)
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// goBlocks returns the ```go blocks of a Markdown file.
func goBlocks(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```go":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, strings.Trim(strings.Join(cur, "\n"), "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// TestPluginsDocSnippetsCompile: every Go snippet in docs/plugins.md is,
// character for character, a marked region of a file in the SDK's
// examples, which are compiled and tested (the doc's notifier passes the
// conformance suite there, and runs under berth serve in the gateway's
// tests); and every marked region is in the document.
func TestPluginsDocSnippetsCompile(t *testing.T) {
	regs := regions(t, "examples")
	used := map[string]bool{}
	blocks := goBlocks(t, filepath.Join("..", "docs", "plugins.md"))
	if len(blocks) == 0 {
		t.Fatal("docs/plugins.md has no Go snippet: the test would prove nothing")
	}
	for i, b := range blocks {
		found := false
		for name, r := range regs {
			if r == b {
				found, used[name] = true, true
			}
		}
		if !found {
			first, _, _ := strings.Cut(b, "\n")
			t.Errorf("Go snippet %d of docs/plugins.md (%q…) is not a region of an example file; copy it from one (// doc:begin NAME … // doc:end NAME)", i+1, first)
		}
	}
	for name := range regs {
		if !used[name] {
			t.Errorf("region %s is not shown in docs/plugins.md", name)
		}
	}
}
