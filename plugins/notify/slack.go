package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/berthgw/berth/sdk"
)

// slackChannel posts to Slack through an incoming webhook or, with a bot
// token, the Web API's chat.postMessage.
type slackChannel struct{}

// defaultSlackAPI is Slack's Web API.
const defaultSlackAPI = "https://slack.com/api"

func (slackChannel) info() sdk.Channel {
	return sdk.Channel{
		Type: "slack", Name: "slack",
		Description: "posts to Slack through an incoming webhook or a bot token (chat.postMessage)",
		Settings: []sdk.ChannelSetting{
			{Name: "webhook_url", Secret: true, Description: "https incoming-webhook URL; set this or bot_token, not both"},
			{Name: "bot_token", Secret: true, Description: "bot token (xoxb-...) with chat:write; set this or webhook_url, not both"},
			{Name: "channel", Description: "channel posted to when a message has no target (bot token only): an id such as C0123456789 or #name"},
			{Name: "api_url", Description: "Web API base URL, default " + defaultSlackAPI + " (for a proxy in front of Slack)"},
		},
	}
}

// slackSettings are a Slack channel's parsed settings.
type slackSettings struct {
	webhookURL string
	botToken   string
	channel    string
	apiURL     string
}

var (
	// slackID is a channel, DM, group or user id.
	slackID = regexp.MustCompile(`^[CDGUW][A-Z0-9]{2,}$`)
	// slackName is a channel name: lower case, digits, - _ . up to 80.
	slackName = regexp.MustCompile(`^#[a-z0-9][a-z0-9._-]{0,79}$`)
	// slackToken is the shape of a bot token.
	slackToken = regexp.MustCompile(`^xoxb-[A-Za-z0-9-]{10,}$`)
)

func checkSlackTarget(what, target string) error {
	if !slackID.MatchString(target) && !slackName.MatchString(target) {
		return invalidf("slack: %s %q is not a Slack id (C0123456789) or #channel-name", what, target)
	}
	return nil
}

func parseSlack(ctx context.Context, rt *runtime, settings map[string]string) (slackSettings, error) {
	s := slackSettings{
		webhookURL: setting(settings, "webhook_url"),
		botToken:   setting(settings, "bot_token"),
		channel:    setting(settings, "channel"),
		apiURL:     strings.TrimRight(setting(settings, "api_url"), "/"),
	}
	switch {
	case s.webhookURL == "" && s.botToken == "":
		return s, invalidf("slack: set setting \"webhook_url\" or \"bot_token\"")
	case s.webhookURL != "" && s.botToken != "":
		return s, invalidf("slack: settings \"webhook_url\" and \"bot_token\" are both set: set only one")
	}
	if s.webhookURL != "" {
		// The URL is the credential: errors may name its host, not more.
		if err := requireHTTPS(ctx, rt, "slack: setting \"webhook_url\"", s.webhookURL); err != nil {
			return s, err
		}
		if s.channel != "" {
			return s, invalidf("slack: setting \"channel\" is for bot_token: an incoming webhook posts to the channel it was made for")
		}
		return s, nil
	}
	if !slackToken.MatchString(s.botToken) {
		return s, invalidf("slack: setting \"bot_token\" is not a bot token (xoxb-...)")
	}
	if s.channel != "" {
		if err := checkSlackTarget("setting \"channel\"", s.channel); err != nil {
			return s, err
		}
	}
	if s.apiURL == "" {
		s.apiURL = defaultSlackAPI
	}
	if err := requireHTTPS(ctx, rt, "slack: setting \"api_url\"", s.apiURL); err != nil {
		return s, err
	}
	return s, nil
}

// requireHTTPS refuses a URL that is not https or that the guard refuses.
// Credentials travel with these requests: never in clear text.
func requireHTTPS(ctx context.Context, rt *runtime, what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" {
		return invalidf("%s is not an https URL", what)
	}
	return checkURL(ctx, rt, what, raw)
}

func (slackChannel) check(ctx context.Context, rt *runtime, settings map[string]string, target string) error {
	if _, err := parseSlack(ctx, rt, settings); err != nil {
		return err
	}
	if target != "" {
		return checkSlackTarget("target", target)
	}
	return nil
}

// Slack's limits: a header block's text, a section's text.
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
)

// slackText escapes the three characters Slack's mrkdwn gives meaning to
// as markup (<@U123>, <!channel>, <url|text>), so a message cannot ping
// everyone or disguise a link.
func slackText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// cut shortens s to at most n runes, marking the cut.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// slackPayload builds the message: a header block with the subject, a
// mrkdwn section with the text, and the same as plain text for
// notifications and clients without blocks.
func slackPayload(channel string, msg sdk.Message) ([]byte, error) {
	type text struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type block struct {
		Type string `json:"type"`
		Text text   `json:"text"`
	}
	var blocks []block
	if subject := headerText(msg.Subject, slackHeaderMax); subject != "" {
		blocks = append(blocks, block{Type: "header", Text: text{Type: "plain_text", Text: cut(subject, slackHeaderMax)}})
	}
	body := msg.TextBody
	if body != "" {
		blocks = append(blocks, block{Type: "section", Text: text{Type: "mrkdwn", Text: cut(slackText(body), slackSectionMax)}})
	}
	fallback := slackText(strings.TrimSpace(headerText(msg.Subject, slackHeaderMax) + "\n" + body))
	return json.Marshal(struct {
		Channel string  `json:"channel,omitempty"`
		Text    string  `json:"text"`
		Blocks  []block `json:"blocks,omitempty"`
	}{channel, cut(fallback, slackSectionMax), blocks})
}

func (slackChannel) send(ctx context.Context, rt *runtime, msg sdk.Message) (sdk.Delivery, error) {
	s, err := parseSlack(ctx, rt, msg.Settings)
	if err != nil {
		return sdk.Delivery{}, err
	}
	target := msg.Target
	if target != "" {
		if err := checkSlackTarget("target", target); err != nil {
			return sdk.Delivery{}, err
		}
	}
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "User-Agent": {"berth-notify"}}
	endpoint := s.webhookURL
	if s.botToken != "" {
		if target == "" {
			target = s.channel
		}
		if target == "" {
			return sdk.Delivery{}, invalidf("slack: no target and no setting \"channel\" to post to")
		}
		endpoint = s.apiURL + "/chat.postMessage"
		h.Set("Authorization", "Bearer "+s.botToken)
	} else {
		// An incoming webhook posts only to its own channel: a target is
		// checked for shape above and otherwise not used.
		target = ""
	}
	body, err := slackPayload(target, msg)
	if err != nil {
		return sdk.Delivery{}, fmt.Errorf("slack: encode message: %w", err)
	}
	for attempt := 0; ; attempt++ {
		a, err := post(ctx, rt, "slack", endpoint, h, body)
		if err != nil {
			return sdk.Delivery{}, err
		}
		id, wait, err := slackAnswer(a, s.botToken != "")
		if wait > 0 && attempt == 0 && waitToRetry(ctx, wait) {
			continue
		}
		if err != nil {
			return sdk.Delivery{}, err
		}
		if id == "" {
			id = "slack:" + msg.IdempotencyKey
		}
		return sdk.Delivery{ProviderMessageID: id, AcceptedAt: time.Now().UTC()}, nil
	}
}

// slackErrors maps Slack's error codes to kinds; codes not listed are
// permanent refusals.
var slackErrors = map[string]error{
	// The credential is wrong, revoked or lacks a permission.
	"invalid_auth": sdk.ErrPermissionDenied, "not_authed": sdk.ErrPermissionDenied,
	"token_revoked": sdk.ErrPermissionDenied, "token_expired": sdk.ErrPermissionDenied,
	"account_inactive": sdk.ErrPermissionDenied, "missing_scope": sdk.ErrPermissionDenied,
	"no_permission": sdk.ErrPermissionDenied, "invalid_token": sdk.ErrPermissionDenied,
	"no_service": sdk.ErrPermissionDenied, "team_disabled": sdk.ErrPermissionDenied,
	"ekm_access_denied": sdk.ErrPermissionDenied,
	// Slack is busy or failing.
	"ratelimited": sdk.ErrRetryable, "rate_limited": sdk.ErrRetryable,
	"internal_error": sdk.ErrRetryable, "fatal_error": sdk.ErrRetryable,
	"service_unavailable": sdk.ErrRetryable, "request_timeout": sdk.ErrRetryable,
}

// slackAnswer reads Slack's answer: the message's id ("<channel>/<ts>"
// from the Web API; incoming webhooks answer a bare "ok"), how long Slack
// asks to wait before a retry, and the error.
func slackAnswer(a answer, api bool) (string, time.Duration, error) {
	wait, hasWait := retryAfter(a.header)
	var reply struct {
		OK      bool   `json:"ok"`
		Error   string `json:"error"`
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	}
	code := ""
	if api {
		if err := json.Unmarshal(a.body, &reply); err == nil {
			code = reply.Error
		}
	} else if a.status != http.StatusOK {
		// Incoming webhooks answer errors as plain text: "invalid_token".
		code = strings.TrimSpace(string(a.body))
	}
	switch {
	case a.status == http.StatusTooManyRequests || code == "ratelimited" || code == "rate_limited":
		if !hasWait {
			wait = time.Second
		}
		return "", wait, kindf(sdk.ErrRetryable, "slack: rate limited (retry after %s)", wait)
	case a.status >= 500:
		return "", 0, kindf(sdk.ErrRetryable, "slack: answered %d %s: %s", a.status, http.StatusText(a.status), peerText(a.body))
	case api && a.status == http.StatusOK && reply.OK:
		if reply.Channel != "" && reply.TS != "" {
			return reply.Channel + "/" + reply.TS, 0, nil
		}
		return "", 0, nil
	case !api && a.status == http.StatusOK:
		return "", 0, nil
	}
	if code == "" {
		return "", 0, kindf(sdk.ErrFailedPrecondition, "slack: answered %d %s: %s", a.status, http.StatusText(a.status), peerText(a.body))
	}
	kind, ok := slackErrors[code]
	if !ok {
		kind = sdk.ErrFailedPrecondition
	}
	return "", 0, kindf(kind, "slack: %s", peerText([]byte(code)))
}
