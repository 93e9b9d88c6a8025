package plugintest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/berthgw/berth/sdk"
	"github.com/hashicorp/go-hclog"
)

type quietNotifier struct{}

func (quietNotifier) ListChannels(context.Context) ([]sdk.Channel, error) {
	return []sdk.Channel{{Type: "log", Name: "log"}}, nil
}

func (quietNotifier) Send(_ context.Context, m sdk.Message) (sdk.Delivery, error) {
	return sdk.Delivery{ProviderMessageID: "log-" + m.IdempotencyKey}, nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestInProcessTeardownIsClean: a plugin served in process, configured
// (which serves the host services on the broker) and called, leaves no
// file in the temporary directory once its test ends, and its teardown
// logs no error. The plugin runs in a child process of this test binary
// that runs only this test, with its own TMPDIR: other tests' lingering
// goroutines must not write into the directory being checked.
func TestInProcessTeardownIsClean(t *testing.T) {
	if os.Getenv(teardownChild) != "" {
		teardownChildBody(t)
		return
	}
	tmp := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestInProcessTeardownIsClean$", "-test.count=1")
	cmd.Env = append(os.Environ(), teardownChild+"=1", "TMPDIR="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the plugin's run: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in the temporary directory: %s", e.Name())
	}
}

const teardownChild = "BERTH_TEST_TEARDOWN_CHILD"

// teardownChildBody is the child's part: serve, configure and call the
// plugin, then check its teardown logged no error.
func teardownChildBody(t *testing.T) {
	var logs lockedBuffer
	t.Run("plugin", func(t *testing.T) {
		c := StartInProcess(t, sdk.Options{
			Name: "quiet", Version: "1.0.0", Notifier: quietNotifier{},
			Logger: hclog.New(&hclog.LoggerOptions{Name: "quiet", Level: hclog.Trace, Output: &logs}),
		})
		c.Configure(t, []byte(`{}`))
		n, err := c.Notifier()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Send(t.Context(), sdk.Message{IdempotencyKey: "k", Channel: "log"}); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(os.TempDir())
		if len(entries) == 0 {
			t.Fatal("no socket in the temporary directory while the plugin runs: the test would prove nothing")
		}
	})
	if strings.Contains(logs.String(), "use of closed network connection") || strings.Contains(logs.String(), "[ERROR]") {
		t.Errorf("teardown logged an error:\n%s", logs.String())
	}
}
