package api

import (
	"context"
	"time"
)

// Notifier sends messages to people and systems.
type Notifier interface {
	ListChannels(ctx context.Context) ([]Channel, error)
	// Send delivers one message. An unknown channel is sdk.ErrNotFound; a
	// provider that is down is sdk.ErrRetryable.
	Send(ctx context.Context, msg Message) (Delivery, error)
}

// Channel is a way the notifier can reach someone.
type Channel struct {
	// Type is "email", "slack", "telegram", "webhook", "file", ...
	Type string
	// Name identifies the channel within the plugin.
	Name        string
	Description string
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
}

// Delivery is the provider's receipt for a message.
type Delivery struct {
	ProviderMessageID string
	AcceptedAt        time.Time
}
