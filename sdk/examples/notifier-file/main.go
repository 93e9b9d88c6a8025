// Command notifier-file is an example Berth notifier plugin: it appends
// each message as one JSON line to a file. It is small enough to read in
// one sitting and uses nothing but the SDK.
//
// Configuration:
//
//	{"path": "/var/lib/berth/notifications.jsonl"}
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/berthgw/berth/sdk"
)

// Config is the plugin's configuration.
type Config struct {
	Path string `json:"path" berth:"required,description=Absolute path of the file each message is appended to, one JSON object per line"`
}

// Validate checks what the tags cannot say.
func (c Config) Validate() error {
	if !filepath.IsAbs(c.Path) {
		return fmt.Errorf("field \"path\": %q is not an absolute path", c.Path)
	}
	return nil
}

// line is what one message looks like in the file.
type line struct {
	ID             string            `json:"id"`
	Time           time.Time         `json:"time"`
	IdempotencyKey string            `json:"idempotency_key"`
	Target         string            `json:"target"`
	TemplateID     string            `json:"template_id,omitempty"`
	Subject        string            `json:"subject"`
	TextBody       string            `json:"text_body,omitempty"`
	HTMLBody       string            `json:"html_body,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
}

type notifier struct {
	mu   sync.Mutex
	path string
}

func (n *notifier) configure(_ context.Context, cfg Config, _ sdk.Host) error {
	// Open once now so that a wrong path fails at Configure, where the
	// operator sees it, rather than at the first message.
	f, err := os.OpenFile(cfg.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("field \"path\": %v: %w", err, sdk.ErrInvalidConfig)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", cfg.Path, err)
	}
	n.mu.Lock()
	n.path = cfg.Path
	n.mu.Unlock()
	return nil
}

func (n *notifier) ListChannels(context.Context) ([]sdk.Channel, error) {
	return []sdk.Channel{{Type: "file", Name: "file", Description: "appends JSON lines to a file"}}, nil
}

func (n *notifier) Send(_ context.Context, msg sdk.Message) (sdk.Delivery, error) {
	if msg.Channel != "file" {
		return sdk.Delivery{}, fmt.Errorf("channel %q: %w", msg.Channel, sdk.ErrNotFound)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.path == "" {
		return sdk.Delivery{}, fmt.Errorf("not configured: %w", sdk.ErrFailedPrecondition)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	l := line{
		ID: hex.EncodeToString(id[:]), Time: time.Now().UTC(), IdempotencyKey: msg.IdempotencyKey,
		Target: msg.Target, TemplateID: msg.TemplateID, Subject: msg.Subject,
		TextBody: msg.TextBody, HTMLBody: msg.HTMLBody, Metadata: msg.Metadata,
	}
	data, err := json.Marshal(l)
	if err != nil {
		return sdk.Delivery{}, fmt.Errorf("encode message: %w", err)
	}
	f, err := os.OpenFile(n.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		// The file may come back (a remounted disk): worth a retry.
		return sdk.Delivery{}, fmt.Errorf("open %s: %v: %w", n.path, err, sdk.ErrRetryable)
	}
	// One write of the whole line: O_APPEND keeps lines whole.
	_, werr := f.Write(append(data, '\n'))
	cerr := f.Close()
	if werr != nil || cerr != nil {
		return sdk.Delivery{}, fmt.Errorf("append to %s: %v: %w", n.path, errorsJoin(werr, cerr), sdk.ErrRetryable)
	}
	return sdk.Delivery{ProviderMessageID: l.ID, AcceptedAt: l.Time}, nil
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func options() sdk.Options {
	n := &notifier{}
	return sdk.Options{
		Name:     "notifier-file",
		Version:  "1.0.0",
		Config:   sdk.TypedConfig(n.configure),
		Notifier: n,
	}
}

func main() {
	sdk.Serve(options())
}
