package plugintest

import (
	"context"
	"os"
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
// logs no error.
func TestInProcessTeardownIsClean(t *testing.T) {

	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where go-plugin puts its sockets
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
		entries, _ := os.ReadDir(tmp)
		if len(entries) == 0 {
			t.Fatal("no socket in the temporary directory while the plugin runs: the test would prove nothing")
		}
	})
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in the temporary directory: %s", e.Name())
	}
	if strings.Contains(logs.String(), "use of closed network connection") || strings.Contains(logs.String(), "[ERROR]") {
		t.Errorf("teardown logged an error:\n%s", logs.String())
	}

}
