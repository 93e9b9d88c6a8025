package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/berthgw/berth/sdk"
)

// channel is one way of notifying: its description, the check of its
// settings and targets, and the send.
type channel interface {
	info() sdk.Channel
	// check validates settings and, when not empty, a target; it returns
	// ErrInvalidArgument naming the setting.
	check(ctx context.Context, rt *runtime, settings map[string]string, target string) error
	send(ctx context.Context, rt *runtime, msg sdk.Message) (sdk.Delivery, error)
}

// notifier implements sdk.Notifier and sdk.ChannelChecker.
//
// Idempotency: the SDK's server runs Send at most once per idempotency key
// and request (sdk/server.go, once) and answers repeats from a bounded
// cache, so the plugin keeps no record of keys of its own. Receivers get
// the key too (email Message-ID, webhook X-Berth-Delivery) to de-duplicate
// across plugin restarts.
type notifier struct {
	rt       atomic.Pointer[runtime]
	channels map[string]channel
}

func newNotifier() *notifier {
	n := &notifier{channels: map[string]channel{}}
	for _, c := range []channel{emailChannel{}, webhookChannel{}, slackChannel{}, telegramChannel{}} {
		n.channels[c.info().Name] = c
	}
	// Until configured, the defaults: nothing private, system roots, 10s.
	rt, err := newRuntime(Config{Timeout: "10s"})
	if err != nil {
		panic(err) // the defaults are valid; a failure is a bug here
	}
	n.rt.Store(rt)
	return n
}

// ListChannels returns the four channels, in a fixed order.
func (n *notifier) ListChannels(context.Context) ([]sdk.Channel, error) {
	var out []sdk.Channel
	for _, name := range []string{"email", "webhook", "slack", "telegram"} {
		out = append(out, n.channels[name].info())
	}
	return out, nil
}

func (n *notifier) channel(name string) (channel, error) {
	c, ok := n.channels[name]
	if !ok {
		return nil, fmt.Errorf("channel %q: %w", name, sdk.ErrNotFound)
	}
	return c, nil
}

// CheckChannel validates a channel's settings and, when given, a target.
func (n *notifier) CheckChannel(ctx context.Context, chk sdk.ChannelCheck) error {
	c, err := n.channel(chk.Channel)
	if err != nil {
		return err
	}
	if err := checkKnown(c.info(), chk.Settings); err != nil {
		return err
	}
	return redact(c.check(ctx, n.rt.Load(), chk.Settings, chk.Target), secretsOf(c.info(), chk.Settings))
}

// Send delivers one message within the configured timeout.
func (n *notifier) Send(ctx context.Context, msg sdk.Message) (sdk.Delivery, error) {
	c, err := n.channel(msg.Channel)
	if err != nil {
		return sdk.Delivery{}, err
	}
	if err := checkKnown(c.info(), msg.Settings); err != nil {
		return sdk.Delivery{}, err
	}
	rt := n.rt.Load()
	sendCtx, cancel := context.WithTimeout(ctx, rt.timeout)
	defer cancel()
	d, err := c.send(sendCtx, rt, msg)
	if err != nil {
		// The channels report the plugin's own timeout as retryable (a
		// slow peer); when the caller gave up instead, its error is the
		// kind that counts.
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%s: %w", err.Error(), cerr)
		}
		return sdk.Delivery{}, redact(err, secretsOf(c.info(), msg.Settings))
	}
	if d.AcceptedAt.IsZero() {
		d.AcceptedAt = time.Now().UTC()
	}
	return d, nil
}

// checkKnown refuses settings the channel does not declare: a typo in a
// setting's name would otherwise be saved and silently ignored.
func checkKnown(ch sdk.Channel, settings map[string]string) error {
	var unknown []string
	for name := range settings {
		if !slices.ContainsFunc(ch.Settings, func(s sdk.ChannelSetting) bool { return s.Name == name }) {
			unknown = append(unknown, fmt.Sprintf("%q", name))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	var known []string
	for _, s := range ch.Settings {
		known = append(known, s.Name)
	}
	return invalidf("%s: unknown setting %s (the settings are %s)", ch.Name, strings.Join(unknown, ", "), strings.Join(known, ", "))
}

// setting returns a setting's value with surrounding space trimmed; an
// empty value means the setting is not set.
func setting(settings map[string]string, name string) string {
	return strings.TrimSpace(settings[name])
}

// invalidf returns an ErrInvalidArgument error with a formatted message.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), sdk.ErrInvalidArgument)
}

// kindf returns an error of the given kind with a formatted message.
func kindf(kind error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), kind)
}
