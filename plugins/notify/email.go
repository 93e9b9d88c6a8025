package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/mail"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthgw/berth/sdk"
)

// emailChannel sends mail over SMTP with STARTTLS or implicit TLS.
type emailChannel struct{}

func (emailChannel) info() sdk.Channel {
	return sdk.Channel{
		Type: "email", Name: "email",
		Description: "sends mail through an SMTP server (STARTTLS or implicit TLS, AUTH PLAIN)",
		Settings: []sdk.ChannelSetting{
			{Name: "host", Required: true, Description: "SMTP server host name or address"},
			{Name: "port", Description: "SMTP server port; default 587 with starttls, 465 with implicit, 25 with none"},
			{Name: "tls", Description: "starttls (default; refuses a server that does not offer it), implicit (TLS from the first byte), or none (only without username and password)"},
			{Name: "username", Description: "SMTP AUTH user name; empty sends without AUTH"},
			{Name: "password", Secret: true, Description: "SMTP AUTH password"},
			{Name: "from", Required: true, Description: "sender address, optionally with a display name: Berth <berth@example.com>"},
		},
	}
}

// TLS modes of the email channel.
const (
	tlsStartTLS = "starttls"
	tlsImplicit = "implicit"
	tlsNone     = "none"
)

// emailSettings are an email channel's parsed settings.
type emailSettings struct {
	host     string
	port     string
	tls      string
	username string
	password string
	from     *mail.Address
}

// hostName matches a DNS name; addresses are parsed separately.
var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)

func parseEmail(ctx context.Context, rt *runtime, settings map[string]string) (emailSettings, error) {
	s := emailSettings{
		host:     setting(settings, "host"),
		port:     setting(settings, "port"),
		tls:      strings.ToLower(setting(settings, "tls")),
		username: setting(settings, "username"),
		password: settings["password"],
	}
	if s.host == "" {
		return s, invalidf("email: setting \"host\" is required")
	}
	if _, err := netip.ParseAddr(strings.Trim(s.host, "[]")); err == nil {
		s.host = strings.Trim(s.host, "[]")
	} else if !hostName.MatchString(s.host) {
		return s, invalidf("email: setting \"host\": %q is not a host name or address (no scheme, no port: the port has its own setting)", s.host)
	}
	switch s.tls {
	case "":
		s.tls = tlsStartTLS
	case tlsStartTLS, tlsImplicit, tlsNone:
	default:
		return s, invalidf("email: setting \"tls\": %q is not starttls, implicit or none", s.tls)
	}
	if s.port == "" {
		s.port = map[string]string{tlsStartTLS: "587", tlsImplicit: "465", tlsNone: "25"}[s.tls]
	} else if n, err := strconv.Atoi(s.port); err != nil || n < 1 || n > 65535 {
		return s, invalidf("email: setting \"port\": %q is not a port from 1 to 65535", s.port)
	}
	if (s.username == "") != (s.password == "") {
		return s, invalidf("email: settings \"username\" and \"password\" go together: set both or neither")
	}
	if s.tls == tlsNone && s.username != "" {
		return s, invalidf("email: setting \"tls\" is none but a username and password are set: they would cross the network in clear text")
	}
	from := setting(settings, "from")
	if from == "" {
		return s, invalidf("email: setting \"from\" is required")
	}
	var err error
	if s.from, err = parseAddress(from); err != nil {
		return s, invalidf("email: setting \"from\": %v", err)
	}
	// The guard judges the host exactly as it judges a URL's, so every
	// spelling of a private address is refused here too; the dial checks
	// again.
	if err := checkURL(ctx, rt, "email: setting \"host\"", "https://"+net.JoinHostPort(s.host, s.port)+"/"); err != nil {
		return s, err
	}
	return s, nil
}

// parseAddress parses one address, display name allowed; a list, a group
// or a line break is refused.
func parseAddress(s string) (*mail.Address, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return nil, errors.New("contains a line break")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "mail: ") + " (want one address such as ops@example.com or Ops <ops@example.com>)")
	}
	return a, nil
}

func (emailChannel) check(ctx context.Context, rt *runtime, settings map[string]string, target string) error {
	if _, err := parseEmail(ctx, rt, settings); err != nil {
		return err
	}
	if target != "" {
		if _, err := parseAddress(target); err != nil {
			return invalidf("email: target: %v", err)
		}
	}
	return nil
}

func (emailChannel) send(ctx context.Context, rt *runtime, msg sdk.Message) (sdk.Delivery, error) {
	s, err := parseEmail(ctx, rt, msg.Settings)
	if err != nil {
		return sdk.Delivery{}, err
	}
	if msg.Target == "" {
		return sdk.Delivery{}, invalidf("email: no target: a message needs a recipient address")
	}
	to, err := parseAddress(msg.Target)
	if err != nil {
		return sdk.Delivery{}, invalidf("email: target: %v", err)
	}
	now := time.Now()
	id := messageID(msg.IdempotencyKey)
	body, err := buildEmail(s.from, to, id, msg, now)
	if err != nil {
		return sdk.Delivery{}, err
	}
	if err := s.deliver(ctx, rt, to.Address, body); err != nil {
		return sdk.Delivery{}, err
	}
	return sdk.Delivery{ProviderMessageID: id, AcceptedAt: now.UTC()}, nil
}

// deliver runs one SMTP transaction for one recipient.
func (s emailSettings) deliver(ctx context.Context, rt *runtime, rcpt string, body []byte) error {
	conn, err := rt.guard.DialContext(ctx, "tcp", net.JoinHostPort(s.host, s.port))
	if err != nil {
		return transportErr("email: connect to the SMTP server", err)
	}
	// net/smtp knows no contexts: the deadline goes on the connection and
	// a cancellation closes it.
	raw := conn
	defer context.AfterFunc(ctx, func() { raw.Close() })()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	// net/textproto reads a reply line of any length: bound the session.
	conn = &boundedConn{Conn: conn, left: maxSMTPRead}
	if s.tls == tlsImplicit {
		tc := tls.Client(conn, rt.tlsConfig(s.host))
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return transportErr("email: TLS handshake", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return smtpErr("greeting", err)
	}
	defer c.Close()
	if s.tls == tlsStartTLS {
		// Never fall back to clear text: a server (or a man in the middle)
		// that hides STARTTLS is refused.
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return kindf(sdk.ErrFailedPrecondition, "email: the SMTP server does not offer STARTTLS (set tls to implicit for port 465, or none for a relay without TLS)")
		}
		if err := c.StartTLS(rt.tlsConfig(s.host)); err != nil {
			return smtpErr("STARTTLS", err)
		}
	}
	if s.username != "" {
		ok, mechs := c.Extension("AUTH")
		if !ok || !slices.Contains(strings.Fields(strings.ToUpper(mechs)), "PLAIN") {
			return kindf(sdk.ErrFailedPrecondition, "email: the SMTP server does not offer AUTH PLAIN (offered: %q)", peerText([]byte(mechs)))
		}
		// PlainAuth sends the password only over TLS, which every mode
		// with a username has by now.
		if err := c.Auth(smtp.PlainAuth("", s.username, s.password, s.host)); err != nil {
			return smtpErr("AUTH", err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return smtpErr("MAIL FROM", err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		return smtpErr("RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return smtpErr("DATA", err)
	}
	if _, err := w.Write(body); err != nil {
		return smtpErr("DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpErr("end of DATA", err)
	}
	// The message is accepted once the server answered the DATA; a failed
	// QUIT changes nothing, and reporting it would resend.
	_ = c.Quit()
	return nil
}

// maxSMTPRead bounds what one SMTP session reads from the server, TLS
// handshake included: replies are a few lines, but a hostile server, or
// whoever is on the path before STARTTLS, could send an endless one and
// have the plugin buffer it until the send's timeout.
const maxSMTPRead = 1 << 20

// boundedConn fails reads past its budget.
type boundedConn struct {
	net.Conn
	left int64
}

func (c *boundedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("the SMTP server sent more than 1 MiB")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

// smtpErr classifies an SMTP reply: 4xx is temporary, an authentication
// refusal is PermissionDenied, any other 5xx a permanent refusal carrying
// the server's text.
func smtpErr(stage string, err error) error {
	var tp *textproto.Error
	if !errors.As(err, &tp) {
		return transportErr("email: "+stage, err)
	}
	text := peerText([]byte(tp.Msg))
	switch {
	case tp.Code >= 400 && tp.Code < 500:
		return kindf(sdk.ErrRetryable, "email: %s: SMTP server answered %d %s", stage, tp.Code, text)
	case stage == "AUTH" || tp.Code == 530 || tp.Code == 535:
		return kindf(sdk.ErrPermissionDenied, "email: %s: SMTP server answered %d %s", stage, tp.Code, text)
	default:
		return kindf(sdk.ErrFailedPrecondition, "email: %s: SMTP server answered %d %s", stage, tp.Code, text)
	}
}
