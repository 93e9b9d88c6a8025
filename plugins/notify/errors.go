package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/berthgw/berth/plugins/notify/netguard"
	"github.com/berthgw/berth/sdk"
)

// transportErr classifies a failure to connect to or talk with a peer:
// a target the guard refuses is a bad setting, a certificate the plugin
// cannot verify needs the operator (ca_file, or the peer's certificate),
// and anything else (refused connection, reset, timeout, DNS) is
// temporary.
func transportErr(what string, err error) error {
	// url.Error repeats the request's URL, and URLs carry secrets (a
	// Telegram bot token is in the path, a webhook URL may hold one).
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, netguard.ErrRefused):
		return invalidf("%s: %v%s", what, err, allowHint)
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return kindf(sdk.ErrFailedPrecondition, "%s: TLS: %v (is the peer's CA in ca_file?)", what, err)
	case errors.As(err, &record):
		return kindf(sdk.ErrFailedPrecondition, "%s: TLS: the peer does not speak TLS here: %v", what, err)
	}
	return kindf(sdk.ErrRetryable, "%s: %v", what, err)
}

// allowHint tells the operator how a refused private target is allowed.
const allowHint = " (private networks are reached only when the plugin's allow_private_targets names them)"

// maxPeerText bounds how much of a peer's answer goes into an error.
const maxPeerText = 300

// peerText makes a peer's answer fit for an error message: valid UTF-8,
// one line, no control characters, at most maxPeerText bytes.
func peerText(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxPeerText {
		cut := maxPeerText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// minSecretLen is the shortest value redact looks for: replacing every
// "a" in a message would garble it and protect nothing.
const minSecretLen = 4

// secretsOf returns the values of a channel's secret settings, in the
// spellings they may take in a message: as saved, trimmed, escaped for a
// URL, and for the webhook headers setting each header value.
func secretsOf(ch sdk.Channel, settings map[string]string) []string {
	var out []string
	add := func(v string) {
		for _, s := range []string{v, strings.TrimSpace(v), url.PathEscape(v), url.QueryEscape(v)} {
			if len(s) >= minSecretLen {
				out = append(out, s)
			}
		}
	}
	for _, st := range ch.Settings {
		v, ok := settings[st.Name]
		if !st.Secret || !ok {
			continue
		}
		add(v)
		var headers map[string]any
		if json.Unmarshal([]byte(v), &headers) == nil {
			for _, hv := range headers {
				if s, ok := hv.(string); ok {
					add(s)
					// "Bearer <token>": a receiver that refuses it may
					// name the token alone.
					if _, cred, ok := strings.Cut(strings.TrimSpace(s), " "); ok {
						add(cred)
					}
				}
			}
		}
	}
	return out
}

// redact returns err with every secret in its message replaced. It is the
// last line of defence: messages are built not to contain secrets, and
// this catches what a library may have put in one (a URL in a net error).
func redact(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "[redacted]")
		// peerText cuts a peer's answer short: a secret it echoed may end
		// the message's part cut off, marked "…".
		for n := len(s) - 1; n >= minSecretLen; n-- {
			msg = strings.ReplaceAll(msg, s[:n]+"…", "[redacted]…")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

// redactedError carries the kind of err with a message free of secrets. It
// has no Unwrap, so err's own message cannot be reached through it.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Is keeps errors.Is(e, sdk.ErrRetryable) and the like working, which is
// how the SDK picks the status code.
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }
