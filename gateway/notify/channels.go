package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
	"github.com/berthgw/berth/sdk"
)

// Channel is an operator-configured way to reach people: a channel type a
// notifier plugin offers (email, slack, telegram, webhook, …) with its
// settings. Secret settings are sealed at rest and never shown again.
type Channel struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	// Plugin pins the plugin that delivers; empty: the first running
	// notifier plugin that offers Type.
	Plugin string `json:"plugin,omitempty"`
	// Personal channels carry users' personal notifications to their own
	// targets (one per type).
	Personal bool `json:"personal,omitempty"`
	// Settings are the non-secret settings.
	Settings map[string]string `json:"settings,omitempty"`
	// Sealed holds the secret settings (a JSON object) sealed with the
	// secret key; SecretNames lists which are set.
	Sealed      []byte    `json:"sealed,omitempty"`
	SecretNames []string  `json:"secret_names,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

var channels = store.NewTable[Channel]("notify_channels",
	store.Index[Channel]{Name: "name", Unique: true, Values: func(c *Channel) []string { return []string{c.Name} }},
)

// ErrChannelNotFound: no channel of that name.
var ErrChannelNotFound = fault.New(fault.NotFound, "channel not found")

var channelName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// reserved are the fields of a channel's JSON that are not settings.
var reserved = []string{"id", "name", "type", "plugin", "personal", "created_at", "updated_at"}

// maxSettingBytes bounds one setting's value; a channel's settings are
// small (a URL, a token, a few headers).
const maxSettingBytes = 8 << 10

// ChannelInput is a channel as POST and PUT read it: name, type, plugin
// and personal, and every other field a setting of the type. A setting
// that is an object or a list (webhook headers) is kept as its JSON text.
type ChannelInput struct {
	Name     string
	Type     string
	Plugin   string
	Personal *bool
	Settings map[string]string
}

// ParseChannelInput reads a channel's JSON object.
func ParseChannelInput(body []byte) (ChannelInput, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return ChannelInput{}, fault.New(fault.Invalid, "the body must be a JSON object")
	}
	in := ChannelInput{Settings: map[string]string{}}
	str := func(key string) (string, error) {
		v, ok := raw[key]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fault.New(fault.Invalid, "field %q must be a string", key)
		}
		return s, nil
	}
	var err error
	if in.Name, err = str("name"); err != nil {
		return in, err
	}
	if in.Type, err = str("type"); err != nil {
		return in, err
	}
	if in.Plugin, err = str("plugin"); err != nil {
		return in, err
	}
	if v, ok := raw["personal"]; ok {
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return in, fault.New(fault.Invalid, "field \"personal\" must be true or false")
		}
		in.Personal = &b
	}
	for key, v := range raw {
		if slices.Contains(reserved, key) {
			continue
		}
		if strings.HasSuffix(key, "_configured") {
			return in, fault.New(fault.Invalid, "field %q is read-only", key)
		}
		val, err := settingValue(v)
		if err != nil {
			return in, fault.New(fault.Invalid, "setting %q: %v", key, err)
		}
		in.Settings[key] = val
	}
	return in, nil
}

// settingValue turns one JSON value into a setting's text: a string as
// is, true/false/numbers as written, objects and lists as compact JSON.
func settingValue(v json.RawMessage) (string, error) {
	v = bytes.TrimSpace(v)
	if len(v) > maxSettingBytes {
		return "", fmt.Errorf("longer than %d bytes", maxSettingBytes)
	}
	switch {
	case len(v) > 0 && v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", errors.New("malformed string")
		}
		return s, nil
	case len(v) > 0 && (v[0] == '{' || v[0] == '['):
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err != nil {
			return "", errors.New("malformed JSON")
		}
		return buf.String(), nil
	case string(v) == "null":
		return "", nil
	default:
		return string(v), nil
	}
}

// View is a channel as the API shows it: settings flat beside name and
// type, each secret as "<name>_configured": true.
func (c *Channel) View() map[string]any {
	out := map[string]any{}
	for k, v := range c.Settings {
		out[k] = v
	}
	for _, k := range c.SecretNames {
		out[k+"_configured"] = true
	}
	out["id"], out["name"], out["type"] = c.ID, c.Name, c.Type
	out["personal"], out["created_at"], out["updated_at"] = c.Personal, c.CreatedAt, c.UpdatedAt
	if c.Plugin != "" {
		out["plugin"] = c.Plugin
	}
	return out
}

// sealContext binds a channel's sealed settings to its id, so they cannot
// be moved to another channel.
func sealContext(id string) string { return "notify-channel:" + id }

// settings returns every setting of c, secrets unsealed. Only a send or a
// check needs them; they are never logged or shown.
func (s *Service) settings(c *Channel) (map[string]string, error) {
	out := maps.Clone(c.Settings)
	if out == nil {
		out = map[string]string{}
	}
	if len(c.Sealed) == 0 {
		return out, nil
	}
	plain, err := s.box.Open(c.Sealed, sealContext(c.ID))
	if err != nil {
		return nil, fmt.Errorf("channel %q: unseal settings: %w", c.Name, err)
	}
	var secrets map[string]string
	if err := json.Unmarshal(plain, &secrets); err != nil {
		return nil, fmt.Errorf("channel %q: sealed settings: %w", c.Name, err)
	}
	maps.Copy(out, secrets)
	return out, nil
}

// ListChannels returns every channel by name.
func (s *Service) ListChannels() ([]Channel, error) {
	var out []Channel
	err := s.db.View(func(tx *store.Tx) error {
		return channels.Scan(tx, store.ScanOptions{}, func(_ string, c *Channel) (bool, error) {
			out = append(out, *c)
			return true, nil
		})
	})
	slices.SortFunc(out, func(a, b Channel) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// Channel returns the channel called name.
func (s *Service) Channel(name string) (*Channel, error) {
	var c *Channel
	err := s.db.View(func(tx *store.Tx) (err error) { c, err = channelByName(tx, name); return err })
	return c, err
}

func channelByName(tx *store.Tx, name string) (*Channel, error) {
	c, _, err := channels.GetBy(tx, "name", name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrChannelNotFound
	}
	return c, err
}

// SaveChannel creates the channel (name == "") or updates the one called
// name. Settings left out of an update keep their values, secrets
// included; a setting sent as "" clears it. The plugin that offers the
// type checks the result before anything is stored.
func (s *Service) SaveChannel(ctx context.Context, name string, in ChannelInput) (*Channel, error) {
	var cur *Channel
	if name != "" {
		var err error
		if cur, err = s.Channel(name); err != nil {
			return nil, err
		}
		if in.Name != "" && in.Name != cur.Name {
			return nil, fault.New(fault.Invalid, "a channel cannot be renamed; create a new one")
		}
		if in.Type != "" && in.Type != cur.Type {
			return nil, fault.New(fault.Invalid, "a channel's type cannot change; create a new one")
		}
		in.Name, in.Type = cur.Name, cur.Type
		if in.Plugin == "" {
			in.Plugin = cur.Plugin
		}
	}
	if !channelName.MatchString(in.Name) {
		return nil, fault.New(fault.Invalid, "name must be 1-63 lowercase letters, digits and dashes, starting and ending with a letter or digit")
	}
	if in.Type == "" {
		return nil, fault.New(fault.Invalid, "type is required")
	}
	n, desc, _, err := s.notifier(ctx, in.Type, in.Plugin)
	if err != nil {
		return nil, err
	}
	known := map[string]sdk.ChannelSetting{}
	for _, st := range desc.Settings {
		known[st.Name] = st
	}
	// The settings as they will be: the current ones, changed by the input.
	all := map[string]string{}
	if cur != nil {
		if all, err = s.settings(cur); err != nil {
			return nil, err
		}
	}
	for k := range in.Settings {
		if _, ok := known[k]; !ok {
			return nil, fault.New(fault.Invalid, "channel type %q has no setting %q (it has: %s)", in.Type, k, settingNames(desc.Settings))
		}
	}
	if cur != nil {
		if err := secretsResent(cur, in.Settings, known); err != nil {
			return nil, err
		}
	}
	for k, v := range in.Settings {
		if v == "" {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	if err := n.CheckChannel(cctx, sdk.ChannelCheck{Channel: in.Type, Settings: all}); err != nil && !errors.Is(err, sdk.ErrUnimplemented) {
		return nil, pluginRefusal(err, "the channel's settings")
	}
	plain, secret := map[string]string{}, map[string]string{}
	for k, v := range all {
		if known[k].Secret {
			secret[k] = v
		} else {
			plain[k] = v
		}
	}
	now := s.now()
	c := &Channel{Name: in.Name, Type: in.Type, Plugin: in.Plugin, CreatedAt: now, UpdatedAt: now}
	if cur != nil {
		c.ID, c.CreatedAt, c.Personal = cur.ID, cur.CreatedAt, cur.Personal
	} else {
		c.ID = store.NewID("nch")
	}
	if in.Personal != nil {
		c.Personal = *in.Personal
	}
	c.Settings = plain
	if len(secret) > 0 {
		blob, err := json.Marshal(secret)
		if err != nil {
			return nil, err
		}
		c.Sealed = s.box.Seal(blob, sealContext(c.ID))
		c.SecretNames = slices.Sorted(maps.Keys(secret))
	}
	err = s.db.Update(func(tx *store.Tx) error {
		if c.Personal {
			if err := onePersonalPerType(tx, c); err != nil {
				return err
			}
		}
		if cur == nil {
			return channels.Insert(tx, c.ID, c)
		}
		return channels.Put(tx, c.ID, c)
	})
	if errors.Is(err, store.ErrDuplicate) {
		return nil, fault.New(fault.Conflict, "a channel called %q exists", c.Name)
	}
	if err != nil {
		return nil, errorf(err, "save channel %q", c.Name)
	}
	return c, nil
}

// secretsResent refuses an update that changes a plain setting of a
// channel with secrets unless it sends every secret again. Secrets are
// write-only so that those who manage channels cannot read them; without
// this, they could send them elsewhere instead, by pointing a webhook's
// url (its headers kept), an api_url (its token) or an SMTP host (its
// password) at a server of theirs.
func secretsResent(cur *Channel, in map[string]string, known map[string]sdk.ChannelSetting) error {
	var changed string
	for k, v := range in {
		if !known[k].Secret && v != cur.Settings[k] {
			changed = k
			break
		}
	}
	if changed == "" {
		return nil
	}
	var missing []string
	for _, k := range cur.SecretNames {
		if _, ok := in[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fault.New(fault.Invalid, "changing %q would send the channel's secrets to the new settings: send %s again with it", changed, strings.Join(missing, ", "))
	}
	return nil
}

// onePersonalPerType refuses a second personal channel of c's type: a
// user's personal notifications of one type need one transport.
func onePersonalPerType(tx *store.Tx, c *Channel) error {
	return channels.Scan(tx, store.ScanOptions{}, func(id string, o *Channel) (bool, error) {
		if id != c.ID && o.Personal && o.Type == c.Type {
			return false, fault.New(fault.Conflict, "channel %q already carries personal %s notifications", o.Name, c.Type)
		}
		return true, nil
	})
}

// DeleteChannel removes the channel called name; routes that name it must
// be changed first. Its pending deliveries become dead ("channel
// deleted"), in batches the store's transactions can hold.
func (s *Service) DeleteChannel(name string) error {
	var id string
	err := s.db.Update(func(tx *store.Tx) error {
		c, err := channelByName(tx, name)
		if err != nil {
			return err
		}
		var using []string
		err = routes.Scan(tx, store.ScanOptions{}, func(_ string, r *Route) (bool, error) {
			if r.Channel == c.Name {
				using = append(using, r.Name)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if len(using) > 0 {
			return fault.New(fault.Conflict, "routes %s send to channel %q; change or delete them first", strings.Join(using, ", "), c.Name)
		}
		id = c.ID
		return channels.Delete(tx, c.ID)
	})
	if err != nil {
		return err
	}
	batch := s.db.RecordsPerTxn(2)
	for {
		// n: how many this transaction ended; full: it stopped before the
		// batch's end because their messages filled it.
		var n int
		var full bool
		err := s.db.Update(func(tx *store.Tx) error {
			n, full = 0, false
			ids, err := deliveries.FirstIDsBy(tx, "queue", id, batch)
			if err != nil {
				return err
			}
			now := s.now()
			for _, did := range ids {
				if n > 0 && tx.Full() {
					full = true
					break
				}
				d, err := deliveries.Get(tx, did)
				if err != nil {
					return err
				}
				d.Status, d.LastError, d.NextAttempt, d.UpdatedAt, d.ExpiresAt = Dead, "channel deleted", time.Time{}, now, now.Add(s.opts.Retention)
				if err := deliveries.Put(tx, did, d); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return errorf(err, "channel %q deleted; ending its pending deliveries", name)
		}
		if n < batch && !full {
			return nil
		}
	}
}

// personalChannel returns the personal channel of type typ, if any.
func personalChannel(tx *store.Tx, typ string) (*Channel, error) {
	var found *Channel
	err := channels.Scan(tx, store.ScanOptions{}, func(_ string, c *Channel) (bool, error) {
		if c.Personal && c.Type == typ {
			found = c
			return false, nil
		}
		return true, nil
	})
	return found, err
}

func settingNames(sts []sdk.ChannelSetting) string {
	names := make([]string, len(sts))
	for i, st := range sts {
		names[i] = st.Name
	}
	return strings.Join(names, ", ")
}

// pluginRefusal turns a plugin's refusal of settings or a target into the
// API's answer: what the plugin found wrong is the caller's to fix (400);
// anything else keeps the kind the plugin host gave it.
func pluginRefusal(err error, what string) error {
	switch {
	case errors.Is(err, sdk.ErrInvalidArgument):
		return fault.Wrap(fault.Invalid, err, "%s: %s", what, refusalText(err))
	case errors.Is(err, sdk.ErrNotFound):
		return fault.Wrap(fault.Conflict, err, "the notifier plugin no longer offers this channel type")
	}
	return err
}

// refusalText is the plugin's own message, without the wrapping the
// client and the plugin host add, bounded.
func refusalText(err error) string {
	msg := err.Error()
	var st interface{ GRPCStatus() *status.Status }
	if errors.As(err, &st) {
		msg = st.GRPCStatus().Message()
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}
