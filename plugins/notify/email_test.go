package main

import (
	"io"
	"mime"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/plugins/notify/internal/mailpittest"
	"github.com/berthgw/berth/sdk"
	smtpserver "github.com/emersion/go-smtp"
)

const (
	smtpUser     = "berth"
	smtpPassword = "pw-7c1d9e2a-not-in-errors"
)

// mailpitSettings are email settings for a mailpit started with auth.
func mailpitSettings(mp *mailpittest.Server, tlsMode string) map[string]string {
	return map[string]string{
		"host": mp.Host, "port": strconv.Itoa(mp.SMTPPort), "tls": tlsMode,
		"username": smtpUser, "password": smtpPassword, "from": "Berth Größe <berth@example.com>",
	}
}

func mailpitConfig(mp *mailpittest.Server) pluginConfig {
	return pluginConfig{AllowPrivateTargets: loopbackOnly, CAFile: mp.CAFile}
}

// TestEmailThroughMailpit sends through a real SMTP server (STARTTLS
// required, AUTH required) and reads the message back from its API.
func TestEmailThroughMailpit(t *testing.T) {
	mp := mailpittest.Start(t, mailpittest.Options{Username: smtpUser, Password: smtpPassword})
	n := startPlugin(t, mailpitConfig(mp))
	msg := sdk.Message{
		IdempotencyKey: "notif-2024.06.01-0001", Channel: "email", Target: "Ops Team <ops@example.com>",
		Subject:  "Cluster édge-1 is ready ✓",
		TextBody: "Hello ops,\nedge-1 is ready.\n-- \nBerth",
		HTMLBody: "<p>Hello <b>ops</b>, édge-1 is ready.</p>",
		Settings: mailpitSettings(mp, "starttls"),
	}
	d, err := n.Send(ctx(t), msg)
	if err != nil {
		t.Fatalf("send: %v\nmailpit:\n%s", err, mp.Output())
	}
	if d.ProviderMessageID != "<notif-2024.06.01-0001@berth>" {
		t.Errorf("provider message id %q, want the Message-ID", d.ProviderMessageID)
	}
	list := mp.Messages(t)
	if len(list) != 1 {
		t.Fatalf("mailpit holds %d messages, want 1", len(list))
	}
	m := mp.Message(t, list[0].ID)
	if m.From.Name != "Berth Größe" || m.From.Address != "berth@example.com" {
		t.Errorf("From = %+v", m.From)
	}
	if len(m.To) != 1 || m.To[0].Address != "ops@example.com" || m.To[0].Name != "Ops Team" {
		t.Errorf("To = %+v", m.To)
	}
	if m.Subject != msg.Subject {
		t.Errorf("Subject = %q, want %q", m.Subject, msg.Subject)
	}
	if m.MessageID != "notif-2024.06.01-0001@berth" {
		t.Errorf("Message-ID = %q", m.MessageID)
	}
	// Mail lines end in CRLF on the wire.
	if strings.TrimSpace(strings.ReplaceAll(m.Text, "\r\n", "\n")) != msg.TextBody {
		t.Errorf("text part = %q, want %q", m.Text, msg.TextBody)
	}
	if !strings.Contains(m.HTML, msg.HTMLBody) {
		t.Errorf("HTML part = %q, want it to hold %q", m.HTML, msg.HTMLBody)
	}
	h := mp.Headers(t, list[0].ID)
	for name, want := range map[string]string{"Auto-Submitted": "auto-generated", "Mime-Version": "1.0"} {
		if got := first(h, name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if date, err := mail.ParseDate(first(h, "Date")); err != nil || time.Since(date) > time.Minute {
		t.Errorf("Date %q: %v", first(h, "Date"), err)
	}
	// The wire form: 7-bit, encoded words, both parts quoted-printable.
	raw := mp.Raw(t, list[0].ID)
	for _, want := range []string{"Subject: =?utf-8?q?Cluster_=C3=A9dge-1", "From: =?utf-8?q?Berth_Gr=C3=B6=C3=9Fe?= <berth@example.com>",
		"Content-Type: multipart/alternative; boundary=", "Content-Type: text/plain; charset=utf-8", "Content-Type: text/html; charset=utf-8",
		"Content-Transfer-Encoding: quoted-printable"} {
		if !strings.Contains(raw, want) {
			t.Errorf("raw message lacks %q:\n%s", want, raw)
		}
	}
	for i, c := range raw {
		if c > 127 {
			t.Errorf("raw message has a non-ASCII byte at %d", i)
			break
		}
	}
}

// first returns a header's first value from mailpit's map, whatever the
// case of its name.
func first(h map[string][]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func TestEmailImplicitTLS(t *testing.T) {
	mp := mailpittest.Start(t, mailpittest.Options{Username: smtpUser, Password: smtpPassword, ImplicitTLS: true})
	n := startPlugin(t, mailpitConfig(mp))
	if _, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "email", Target: "ops@example.com", Subject: "implicit", TextBody: "t",
		Settings: mailpitSettings(mp, "implicit")}); err != nil {
		t.Fatal(err)
	}
	if list := mp.Messages(t); len(list) != 1 || list[0].Subject != "implicit" {
		t.Fatalf("mailpit holds %+v", list)
	}
}

// TestEmailRefusals: what a real server refuses, and what the plugin
// refuses before a message can leave.
func TestEmailRefusals(t *testing.T) {
	mp := mailpittest.Start(t, mailpittest.Options{Username: smtpUser, Password: smtpPassword})
	wrongPassword := mailpitSettings(mp, "starttls")
	wrongPassword["password"] = "wrong-" + smtpPassword
	tests := []struct {
		name     string
		cfg      pluginConfig
		settings map[string]string
		kind     error
		text     string
	}{
		{"wrong password", mailpitConfig(mp), wrongPassword, denied, "535"},
		{"untrusted certificate", pluginConfig{AllowPrivateTargets: loopbackOnly}, mailpitSettings(mp, "starttls"), refused, "certificate"},
		{"implicit TLS to a STARTTLS port", mailpitConfig(mp), mailpitSettings(mp, "implicit"), refused, "TLS"},
		{"private address not allowed", pluginConfig{CAFile: mp.CAFile}, mailpitSettings(mp, "starttls"), invalid, `"host"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startPlugin(t, tt.cfg)
			_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "email", Target: "ops@example.com", Subject: "s", TextBody: "t", Settings: tt.settings})
			t.Logf("error: %v", err)
			wantKind(t, "send", err, tt.kind)
			if err != nil && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q lacks %q", err, tt.text)
			}
			noSecrets(t, err, smtpPassword)
		})
	}
	if list := mp.Messages(t); len(list) != 0 {
		t.Errorf("mailpit holds %d messages after refusals", len(list))
	}
}

// fakeSMTP is a go-smtp server on 127.0.0.1 that answers MAIL, RCPT or
// DATA with a chosen error, for the failures a real server gives only
// when something is wrong.
type fakeSMTP struct {
	mailErr, rcptErr, dataErr error

	mu       sync.Mutex
	sessions int
	mails    int
	messages []string
	addr     string
}

func startFakeSMTP(t *testing.T, f *fakeSMTP) *fakeSMTP {
	t.Helper()
	s := smtpserver.NewServer(smtpserver.BackendFunc(func(*smtpserver.Conn) (smtpserver.Session, error) {
		f.mu.Lock()
		f.sessions++
		f.mu.Unlock()
		return &fakeSession{f: f}, nil
	}))
	s.Domain = "fake.test"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { s.Close() })
	return f
}

func (f *fakeSMTP) settings() map[string]string {
	host, port, _ := net.SplitHostPort(f.addr)
	// No TLS: this server has no certificate, and carries no password.
	return map[string]string{"host": host, "port": port, "tls": "none", "from": "berth@example.com"}
}

func (f *fakeSMTP) counts() (sessions, mails, messages int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions, f.mails, len(f.messages)
}

type fakeSession struct{ f *fakeSMTP }

func (s *fakeSession) Reset()        {}
func (s *fakeSession) Logout() error { return nil }
func (s *fakeSession) Mail(string, *smtpserver.MailOptions) error {
	s.f.mu.Lock()
	s.f.mails++
	s.f.mu.Unlock()
	return s.f.mailErr
}
func (s *fakeSession) Rcpt(string, *smtpserver.RcptOptions) error { return s.f.rcptErr }
func (s *fakeSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.f.dataErr != nil {
		return s.f.dataErr
	}
	s.f.mu.Lock()
	s.f.messages = append(s.f.messages, string(data))
	s.f.mu.Unlock()
	return nil
}

func smtpError(code int, enhanced smtpserver.EnhancedCode, text string) error {
	return &smtpserver.SMTPError{Code: code, EnhancedCode: enhanced, Message: text}
}

// TestEmailServerAnswers: a 4xx is retried by the gateway, a 5xx is
// dead-lettered with the server's own words.
func TestEmailServerAnswers(t *testing.T) {
	tests := []struct {
		name string
		f    func() *fakeSMTP
		kind error
		text string
	}{
		{"451 at MAIL", func() *fakeSMTP {
			return &fakeSMTP{mailErr: smtpError(451, smtpserver.EnhancedCode{4, 3, 0}, "Greylisted, try again later")}
		}, retryable, "451 4.3.0 Greylisted, try again later"},
		{"550 at RCPT", func() *fakeSMTP {
			return &fakeSMTP{rcptErr: smtpError(550, smtpserver.EnhancedCode{5, 1, 1}, "No such user here")}
		}, refused, "550 5.1.1 No such user here"},
		{"452 at RCPT", func() *fakeSMTP {
			return &fakeSMTP{rcptErr: smtpError(452, smtpserver.EnhancedCode{4, 2, 2}, "Mailbox full")}
		}, retryable, "Mailbox full"},
		{"554 after DATA", func() *fakeSMTP {
			return &fakeSMTP{dataErr: smtpError(554, smtpserver.EnhancedCode{5, 7, 1}, "Message rejected as spam")}
		}, refused, "554 5.7.1 Message rejected as spam"},
		{"451 after DATA", func() *fakeSMTP {
			return &fakeSMTP{dataErr: smtpError(451, smtpserver.EnhancedCode{4, 3, 0}, "Local error in processing")}
		}, retryable, "Local error in processing"},
		{"530 at MAIL", func() *fakeSMTP {
			return &fakeSMTP{mailErr: smtpError(530, smtpserver.EnhancedCode{5, 7, 0}, "Authentication required")}
		}, denied, "Authentication required"},
	}
	n := startPlugin(t, pluginConfig{AllowPrivateTargets: loopbackOnly})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeSMTP(t, tt.f())
			_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: tt.name, Channel: "email", Target: "ops@example.com", Subject: "s", TextBody: "t", Settings: f.settings()})
			t.Logf("error: %v", err)
			wantKind(t, "send", err, tt.kind)
			if err != nil && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q lacks the server's text %q", err, tt.text)
			}
		})
	}
	t.Run("accepted", func(t *testing.T) {
		f := startFakeSMTP(t, &fakeSMTP{})
		if _, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "ok", Channel: "email", Target: "ops@example.com", Subject: "s", TextBody: "t", Settings: f.settings()}); err != nil {
			t.Fatal(err)
		}
		if _, _, msgs := f.counts(); msgs != 1 {
			t.Errorf("server got %d messages", msgs)
		}
	})
}

// TestEmailNoSTARTTLS: with tls starttls (the default), a server that
// does not offer STARTTLS gets no mail: no downgrade to clear text.
func TestEmailNoSTARTTLS(t *testing.T) {
	f := startFakeSMTP(t, &fakeSMTP{})
	n := startPlugin(t, pluginConfig{AllowPrivateTargets: loopbackOnly})
	settings := f.settings()
	delete(settings, "tls")
	_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "email", Target: "ops@example.com", Subject: "s", Settings: settings})
	wantKind(t, "send", err, refused)
	if err != nil && !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("error %q does not name STARTTLS", err)
	}
	if sessions, mails, _ := f.counts(); sessions != 1 || mails != 0 {
		t.Errorf("server saw %d sessions and %d MAIL commands, want 1 and 0", sessions, mails)
	}
}

// TestEmailSSRF: an SMTP host on loopback or metadata addresses is
// refused unless allowed, and the server there sees no connection.
func TestEmailSSRF(t *testing.T) {
	f := startFakeSMTP(t, &fakeSMTP{})
	_, port, _ := net.SplitHostPort(f.addr)
	n := startPlugin(t, pluginConfig{})
	for _, host := range []string{"127.0.0.1", "127.1", "0x7f000001", "::ffff:127.0.0.1", "[::1]", "localhost", "169.254.169.254", "10.1.2.3"} {
		settings := map[string]string{"host": host, "port": port, "tls": "none", "from": "berth@example.com"}
		err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: "email", Settings: settings})
		wantKind(t, "CheckChannel host "+host, err, invalid)
		_, err = n.Send(ctx(t), sdk.Message{IdempotencyKey: host, Channel: "email", Target: "ops@example.com", Subject: "s", Settings: settings})
		wantKind(t, "Send host "+host, err, invalid)
	}
	if sessions, _, _ := f.counts(); sessions != 0 {
		t.Errorf("the loopback SMTP server saw %d sessions", sessions)
	}
}

func TestEmailCheckChannel(t *testing.T) {
	n := startPlugin(t, pluginConfig{})
	good := func(change map[string]string) map[string]string {
		s := map[string]string{"host": "93.184.216.34", "username": "u", "password": smtpPassword, "from": "Berth <berth@example.com>"}
		for k, v := range change {
			if v == "" {
				delete(s, k)
			} else {
				s[k] = v
			}
		}
		return s
	}
	tests := []struct {
		name     string
		settings map[string]string
		target   string
		text     string // "" means accepted
	}{
		{"defaults", good(nil), "ops@example.com", ""},
		{"implicit", good(map[string]string{"tls": "implicit", "port": "465"}), "Ops <ops@example.com>", ""},
		{"none without auth", good(map[string]string{"tls": "none", "username": "", "password": ""}), "", ""},
		{"IPv6 host", good(map[string]string{"host": "2606:2800:220:1:248:1893:25c8:1946"}), "", ""},
		{"none with auth", good(map[string]string{"tls": "none"}), "", `"tls"`},
		{"username alone", good(map[string]string{"password": ""}), "", `"password"`},
		{"bad tls", good(map[string]string{"tls": "ssl"}), "", `"tls"`},
		{"bad port", good(map[string]string{"port": "70000"}), "", `"port"`},
		{"host with port", good(map[string]string{"host": "smtp.example.com:587"}), "", `"host"`},
		{"host with scheme", good(map[string]string{"host": "smtp://smtp.example.com"}), "", `"host"`},
		{"no host", good(map[string]string{"host": ""}), "", `"host"`},
		{"no from", good(map[string]string{"from": ""}), "", `"from"`},
		{"from list", good(map[string]string{"from": "a@example.com, b@example.com"}), "", `"from"`},
		{"from with CRLF", good(map[string]string{"from": "a@example.com\r\nBcc: x@example.com"}), "", `"from"`},
		{"target list", good(nil), "a@example.com, b@example.com", "target"},
		{"target with CRLF", good(nil), "a@example.com\r\nBcc: x@example.com", "target"},
		{"target not an address", good(nil), "ops", "target"},
		{"unknown setting", good(map[string]string{"smtp_host": "x"}), "", `"smtp_host"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := n.CheckChannel(ctx(t), sdk.ChannelCheck{Channel: "email", Settings: tt.settings, Target: tt.target})
			if tt.text == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantKind(t, "CheckChannel", err, invalid)
			if err != nil && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not name %s", err, tt.text)
			}
			noSecrets(t, err, smtpPassword)
		})
	}
}

// TestEmailHeaderInjection: a subject or display name cannot add
// headers, whatever it holds.
func TestEmailHeaderInjection(t *testing.T) {
	from, _ := mail.ParseAddress("Berth <berth@example.com>")
	to, _ := mail.ParseAddress("ops@example.com")
	body, err := buildEmail(from, to, "<k@berth>", sdk.Message{Subject: "hi\r\nBcc: victim@example.com\nX-Evil: 1", TextBody: "t"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Bcc") != "" || m.Header.Get("X-Evil") != "" {
		t.Errorf("injected headers: %v", m.Header)
	}
	if got, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); got != "hi Bcc: victim@example.com X-Evil: 1" {
		t.Errorf("subject = %q", got)
	}
}

func TestMessageID(t *testing.T) {
	tests := []struct{ key, want string }{
		{"notif-1", "<notif-1@berth>"},
		{"a.b_c-D", "<a.b_c-D@berth>"},
	}
	for _, tt := range tests {
		if got := messageID(tt.key); got != tt.want {
			t.Errorf("messageID(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	// Unsafe keys are hashed: well-formed, stable, and distinct.
	seen := map[string]string{}
	for _, key := range []string{"a b", "a_b>", "<x@y>", "a\r\nb", ".lead", "trail.", "a..b", strings.Repeat("k", 65), "é"} {
		id := messageID(key)
		if id != messageID(key) || !safeIDPart.MatchString(strings.TrimSuffix(strings.TrimPrefix(id, "<"), "@berth>")) {
			t.Errorf("messageID(%q) = %q", key, id)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("keys %q and %q share the id %s", key, other, id)
		}
		seen[id] = key
	}
}
