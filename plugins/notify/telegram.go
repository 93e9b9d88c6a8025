package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/berthgw/berth/sdk"
)

// telegramChannel sends through a Telegram bot (Bot API sendMessage).
type telegramChannel struct{}

// defaultTelegramAPI is the Bot API's server.
const defaultTelegramAPI = "https://api.telegram.org"

func (telegramChannel) info() sdk.Channel {
	return sdk.Channel{
		Type: "telegram", Name: "telegram",
		Description: "sends through a Telegram bot (Bot API sendMessage)",
		Settings: []sdk.ChannelSetting{
			{Name: "bot_token", Required: true, Secret: true, Description: "the bot's token from @BotFather (123456:ABC...)"},
			{Name: "chat_id", Description: "chat sent to when a message has no target: a chat id (-100123...) or @channelusername"},
			{Name: "api_url", Description: "Bot API base URL, default " + defaultTelegramAPI + " (for a local Bot API server)"},
		},
	}
}

var (
	telegramToken    = regexp.MustCompile(`^\d+:[A-Za-z0-9_-]{30,}$`)
	telegramChatID   = regexp.MustCompile(`^-?\d{1,20}$`)
	telegramUsername = regexp.MustCompile(`^@[A-Za-z][A-Za-z0-9_]{3,31}$`)
)

// telegramSettings are a Telegram channel's parsed settings.
type telegramSettings struct {
	token  string
	chatID string
	apiURL string
}

func checkTelegramTarget(what, target string) error {
	if !telegramChatID.MatchString(target) && !telegramUsername.MatchString(target) {
		return invalidf("telegram: %s %q is not a chat id (-1001234567890) or @channelusername", what, target)
	}
	return nil
}

func parseTelegram(ctx context.Context, rt *runtime, settings map[string]string) (telegramSettings, error) {
	s := telegramSettings{
		token:  setting(settings, "bot_token"),
		chatID: setting(settings, "chat_id"),
		apiURL: strings.TrimRight(setting(settings, "api_url"), "/"),
	}
	if s.token == "" {
		return s, invalidf("telegram: setting \"bot_token\" is required")
	}
	if !telegramToken.MatchString(s.token) {
		return s, invalidf("telegram: setting \"bot_token\" is not a bot token (digits, a colon, then at least 30 letters, digits, - or _)")
	}
	if s.chatID != "" {
		if err := checkTelegramTarget("setting \"chat_id\"", s.chatID); err != nil {
			return s, err
		}
	}
	if s.apiURL == "" {
		s.apiURL = defaultTelegramAPI
	}
	if err := requireHTTPS(ctx, rt, "telegram: setting \"api_url\"", s.apiURL); err != nil {
		return s, err
	}
	return s, nil
}

func (telegramChannel) check(ctx context.Context, rt *runtime, settings map[string]string, target string) error {
	if _, err := parseTelegram(ctx, rt, settings); err != nil {
		return err
	}
	if target != "" {
		return checkTelegramTarget("target", target)
	}
	return nil
}

// telegramReserved are the characters MarkdownV2 requires escaped
// anywhere outside entities, and the backslash that escapes them.
var telegramReserved = strings.NewReplacer(
	`\`, `\\`, "_", `\_`, "*", `\*`, "[", `\[`, "]", `\]`, "(", `\(`, ")", `\)`, "~", `\~`,
	"`", "\\`", ">", `\>`, "#", `\#`, "+", `\+`, "-", `\-`, "=", `\=`, "|", `\|`,
	"{", `\{`, "}", `\}`, ".", `\.`, "!", `\!`,
)

// telegramMax is sendMessage's limit on the text, in characters after
// entity parsing; the text is cut before escaping to stay within it.
const telegramMax = 4096

// telegramText is the message in MarkdownV2: the subject in bold, a blank
// line, the text, every reserved character escaped so nothing the message
// says is taken as markup.
func telegramText(msg sdk.Message) string {
	subject := headerText(msg.Subject, 256)
	body := cut(msg.TextBody, telegramMax-len([]rune(subject))-2)
	switch {
	case subject == "":
		return telegramReserved.Replace(body)
	case body == "":
		return "*" + telegramReserved.Replace(subject) + "*"
	}
	return "*" + telegramReserved.Replace(subject) + "*\n\n" + telegramReserved.Replace(body)
}

func (telegramChannel) send(ctx context.Context, rt *runtime, msg sdk.Message) (sdk.Delivery, error) {
	s, err := parseTelegram(ctx, rt, msg.Settings)
	if err != nil {
		return sdk.Delivery{}, err
	}
	chat := msg.Target
	if chat == "" {
		chat = s.chatID
	}
	if chat == "" {
		return sdk.Delivery{}, invalidf("telegram: no target and no setting \"chat_id\" to send to")
	}
	if err := checkTelegramTarget("target", chat); err != nil {
		return sdk.Delivery{}, err
	}
	body, err := json.Marshal(map[string]any{
		"chat_id":              chat,
		"text":                 telegramText(msg),
		"parse_mode":           "MarkdownV2",
		"link_preview_options": map[string]bool{"is_disabled": true},
	})
	if err != nil {
		return sdk.Delivery{}, fmt.Errorf("telegram: encode message: %w", err)
	}
	// The token is in the path, as the Bot API wants it: post() keeps the
	// URL out of its errors.
	endpoint := s.apiURL + "/bot" + s.token + "/sendMessage"
	h := http.Header{"Content-Type": {"application/json"}, "User-Agent": {"berth-notify"}}
	for attempt := 0; ; attempt++ {
		a, err := post(ctx, rt, "telegram", endpoint, h, body)
		if err != nil {
			return sdk.Delivery{}, err
		}
		id, wait, err := telegramAnswer(a)
		if wait > 0 && attempt == 0 && waitToRetry(ctx, wait) {
			continue
		}
		if err != nil {
			return sdk.Delivery{}, err
		}
		return sdk.Delivery{ProviderMessageID: id, AcceptedAt: time.Now().UTC()}, nil
	}
}

// telegramAnswer reads the Bot API's answer: the message's id
// ("<chat id>/<message id>"), how long Telegram asks to wait before a
// retry, and the error.
func telegramAnswer(a answer) (string, time.Duration, error) {
	var reply struct {
		OK          bool   `json:"ok"`
		ErrorCode   int    `json:"error_code"`
		Description string `json:"description"`
		Parameters  struct {
			RetryAfter int `json:"retry_after"`
		} `json:"parameters"`
		Result struct {
			MessageID int64 `json:"message_id"`
			Chat      struct {
				ID int64 `json:"id"`
			} `json:"chat"`
		} `json:"result"`
	}
	if err := json.Unmarshal(a.body, &reply); err != nil {
		if a.status >= 500 || a.status == http.StatusTooManyRequests {
			return "", 0, kindf(sdk.ErrRetryable, "telegram: answered %d %s", a.status, http.StatusText(a.status))
		}
		return "", 0, kindf(sdk.ErrFailedPrecondition, "telegram: answered %d with no Bot API reply: %s", a.status, peerText(a.body))
	}
	if reply.OK {
		return strconv.FormatInt(reply.Result.Chat.ID, 10) + "/" + strconv.FormatInt(reply.Result.MessageID, 10), 0, nil
	}
	code := reply.ErrorCode
	if code == 0 {
		code = a.status
	}
	desc := peerText([]byte(reply.Description))
	switch {
	case code == http.StatusTooManyRequests:
		wait := time.Duration(reply.Parameters.RetryAfter) * time.Second
		if wait <= 0 {
			wait = time.Second
		}
		return "", wait, kindf(sdk.ErrRetryable, "telegram: rate limited, retry after %d s: %s", int(wait/time.Second), desc)
	case code >= 500:
		return "", 0, kindf(sdk.ErrRetryable, "telegram: %d %s", code, desc)
	case code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusNotFound:
		// 401 and 404 are what the Bot API answers a wrong or revoked
		// token; 403 a bot that was blocked or removed from the chat.
		return "", 0, kindf(sdk.ErrPermissionDenied, "telegram: %d %s", code, desc)
	default:
		return "", 0, kindf(sdk.ErrFailedPrecondition, "telegram: %d %s", code, desc)
	}
}
