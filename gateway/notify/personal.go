package notify

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
)

// Personal is a user's own notification settings, as in KubeBYON: which of
// their own targets receive their personal events (the operations they
// started). Those events never go to an operator's channel in their place.
type Personal struct {
	EmailNotifications    bool      `json:"email_notifications"`
	SlackNotifications    bool      `json:"slack_notifications"`
	SlackTarget           string    `json:"slack_target"`
	TelegramNotifications bool      `json:"telegram_notifications"`
	TelegramChatID        string    `json:"telegram_chat_id"`
	UpdatedAt             time.Time `json:"updated_at,omitzero"`
}

// The shapes of personal targets: a Slack member id, a Telegram private
// chat's id (groups and channels are negative or @names).
var (
	slackUser    = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	telegramUser = regexp.MustCompile(`^[1-9][0-9]{0,19}$`)
)

// personal is keyed by user id.
var personal = store.NewTable[Personal]("notify_personal")

// PersonalSettings returns user's settings; a user who never saved any
// has everything off.
func (s *Service) PersonalSettings(user string) (Personal, error) {
	var p Personal
	err := s.db.View(func(tx *store.Tx) error {
		got, err := personal.Get(tx, user)
		if err == nil {
			p = *got
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	return p, err
}

// SavePersonal replaces user's settings. Turning Slack or Telegram on
// needs a target; a target is checked by the plugin of the personal
// channel of that type, and turning a type on needs such a channel.
func (s *Service) SavePersonal(ctx context.Context, user string, p Personal) (Personal, error) {
	if p.SlackNotifications && p.SlackTarget == "" {
		return p, fault.New(fault.Invalid, "slack_target is required when slack_notifications is on")
	}
	if p.TelegramNotifications && p.TelegramChatID == "" {
		return p, fault.New(fault.Invalid, "telegram_chat_id is required when telegram_notifications is on")
	}
	// Personal messages go to the user alone: a Slack channel or a
	// Telegram group would let any member make the bot post there.
	if p.SlackTarget != "" && !slackUser.MatchString(p.SlackTarget) {
		return p, fault.New(fault.Invalid, "slack_target must be your Slack member id (U0123ABCD), not a channel")
	}
	if p.TelegramChatID != "" && !telegramUser.MatchString(p.TelegramChatID) {
		return p, fault.New(fault.Invalid, "telegram_chat_id must be the id of your private chat with the bot (a positive number), not a group or channel")
	}
	if p.EmailNotifications {
		addr, err := s.users.Email(user)
		if err != nil {
			return p, err
		}
		if addr == "" {
			return p, fault.New(fault.Invalid, "your account has no email address; ask an administrator to set one before turning email on")
		}
	}
	for _, t := range []struct {
		on            bool
		typ, target   string
		field, option string
	}{
		{p.EmailNotifications, "email", "", "", "email_notifications"},
		{p.SlackNotifications, "slack", p.SlackTarget, "slack_target", "slack_notifications"},
		{p.TelegramNotifications, "telegram", p.TelegramChatID, "telegram_chat_id", "telegram_notifications"},
	} {
		// A target is checked even while its type is off, so that what is
		// stored is always deliverable once turned on.
		if !t.on && t.target == "" {
			continue
		}
		var c *Channel
		if err := s.db.View(func(tx *store.Tx) (err error) { c, err = personalChannel(tx, t.typ); return err }); err != nil {
			return p, err
		}
		if c == nil {
			if t.on {
				return p, fault.New(fault.Conflict, "no %s channel carries personal notifications yet; an administrator must mark one personal", t.typ)
			}
			continue
		}
		if t.target == "" {
			continue
		}
		if err := s.checkTarget(ctx, c, t.target); err != nil {
			var fe *fault.Error
			if errors.As(err, &fe) && fe.Kind == fault.Invalid {
				return p, fault.Wrap(fault.Invalid, err, "%s: %s", t.field, refusalText(err))
			}
			return p, err
		}
	}
	p.UpdatedAt = s.now()
	err := s.db.Update(func(tx *store.Tx) error { return personal.Put(tx, user, &p) })
	return p, err
}
