package api

import (
	"context"
	"time"
)

// Notifier sends messages to people and systems.
type Notifier interface {
	ListChannels(ctx context.Context) ([]Channel, error)
	// Send delivers one message. An unknown channel is sdk.ErrNotFound; a
	// provider that is down is sdk.ErrRetryable. The Delivery's
	// ProviderMessageID must not be empty and must differ for messages
	// with different idempotency keys (a repeat of one key gets the first
	// answer again, replayed by the SDK); the conformance suite checks
	// both, so a fixed placeholder id fails it.
	Send(ctx context.Context, msg Message) (Delivery, error)
}

// ChannelChecker is implemented by a Notifier whose channels take
// settings. The gateway calls CheckChannel before it saves an operator's
// channel (and a user's personal target), so that bad settings are refused
// with a 400 and nothing is stored; a refusal is ErrInvalidArgument with a
// message that names the setting.
type ChannelChecker interface {
	CheckChannel(ctx context.Context, check ChannelCheck) error
}

// Channel is a way the notifier can reach someone.
type Channel struct {
	// Type is "email", "slack", "telegram", "webhook", "file", ...
	Type string
	// Name identifies the channel within the plugin.
	Name        string
	Description string
	// Settings are what an operator configures for a channel of this
	// type; each message carries their saved values (Message.Settings).
	Settings []ChannelSetting
}

// ChannelSetting describes one setting of a channel type.
type ChannelSetting = Setting

// Setting describes one setting an operator saves for a plugin (a
// notifier channel's, a billing provider's); the gateway passes the saved
// values with every call.
type Setting struct {
	Name        string
	Description string
	Required    bool
	// Secret settings are write-only: the gateway seals them at rest and
	// shows only that they are configured.
	Secret bool
}

// ChannelCheck is what CheckChannel validates.
type ChannelCheck struct {
	// Channel is a Channel.Name from ListChannels.
	Channel  string
	Settings map[string]string
	// Target, when set, is a recipient to check as well.
	Target string
}

// Message is one notification.
type Message struct {
	IdempotencyKey string
	// Channel is a Channel.Name from ListChannels.
	Channel string
	// Target is the recipient in the channel's terms: an address, a chat id, a URL.
	Target     string
	TemplateID string
	Subject    string
	TextBody   string
	HTMLBody   string
	Metadata   map[string]string
	// Settings are the channel's settings as the operator saved them,
	// secrets included: the gateway sends them with every message, so the
	// plugin keeps no per-channel state. Never log them.
	Settings map[string]string
}

// Delivery is the provider's receipt for a message.
type Delivery struct {
	// ProviderMessageID identifies the message at the provider: never
	// empty, unique per idempotency key (the same key yields the same id),
	// e.g. the provider's own message id, or one derived from the key
	// when the provider returns none.
	ProviderMessageID string
	AcceptedAt        time.Time
}
