package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/plugintest"
)

func config(t *testing.T) []byte {
	return []byte(fmt.Sprintf(`{"path": %q}`, filepath.Join(t.TempDir(), "messages.jsonl")))
}

func TestConformanceInProcess(t *testing.T) {
	f := plugintest.InProcess(func(*testing.T) sdk.Options { return options() }, config)
	plugintest.RunNotifierConformance(t, f, "ops@example.com")
}

func TestConformanceSubprocess(t *testing.T) {
	f := plugintest.Subprocess(plugintest.Build(t, "."), config)
	plugintest.RunNotifierConformance(t, f, "ops@example.com")
}

// TestOneLinePerMessage checks the file itself, through a real process.
func TestOneLinePerMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	c := plugintest.StartProcess(t, plugintest.Build(t, "."))
	c.Configure(t, []byte(fmt.Sprintf(`{"path": %q}`, path)))
	n, err := c.Notifier()
	if err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"a", "b", "a"} {
		if _, err := n.Send(t.Context(), sdk.Message{IdempotencyKey: key, Channel: "file", Target: "ops", Subject: "s-" + key}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, l)
	}
	if len(got) != 2 || got[0].Subject != "s-a" || got[1].Subject != "s-b" {
		t.Fatalf("file holds %+v, want messages a and b once each", got)
	}
}

func TestConfigErrors(t *testing.T) {
	c := plugintest.StartInProcess(t, options())
	tests := map[string]string{
		"missing path":  `{}`,
		"relative path": `{"path": "out.jsonl"}`,
		"unknown field": `{"path": "/tmp/x", "colour": "red"}`,
		"wrong type":    `{"path": 3}`,
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			err := c.Base().ValidateConfig(t.Context(), []byte(raw))
			if !errors.Is(err, sdk.ErrInvalidConfig) {
				t.Fatalf("error = %v, want ErrInvalidConfig", err)
			}
		})
	}
}
