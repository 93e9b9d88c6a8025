package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/berthgw/berth/sdk"
)

// maxSubject bounds the subject in runes, so that even fully encoded it
// stays far below SMTP's line limit once folded.
const maxSubject = 200

// safeIDPart is what the left side of a Message-ID may be made of without
// escaping (a dot-atom without dots at the edges).
var safeIDPart = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// messageID makes the Message-ID from the idempotency key, so that a
// retry of the same notification carries the same id and mail clients
// show it once. Keys that are not safe in a header are hashed, not
// mangled, so two keys never share an id.
func messageID(key string) string {
	left := key
	if len(left) > 64 || !safeIDPart.MatchString(left) {
		sum := sha256.Sum256([]byte(key))
		left = hex.EncodeToString(sum[:16])
	}
	return "<" + left + "@berth>"
}

// buildEmail writes the message: headers, then a multipart/alternative
// body with a text/plain and a text/html part, both quoted-printable, so
// the whole message is 7-bit and any SMTP server takes it.
func buildEmail(from, to *mail.Address, id string, msg sdk.Message, now time.Time) ([]byte, error) {
	var buf bytes.Buffer
	body := multipart.NewWriter(&buf)
	header := func(name, value string) { fmt.Fprintf(&buf, "%s: %s\r\n", name, value) }
	header("From", fold(from.String()))
	header("To", fold(to.String()))
	header("Subject", fold(mime.QEncoding.Encode("utf-8", headerText(msg.Subject, maxSubject))))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", id)
	header("MIME-Version", "1.0")
	// RFC 3834: no vacation or out-of-office replies to notifications.
	header("Auto-Submitted", "auto-generated")
	header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": body.Boundary()}))
	buf.WriteString("\r\n")

	// Clients that show the text part must show something.
	text := msg.TextBody
	if text == "" {
		text = msg.Subject
	}
	htmlBody := msg.HTMLBody
	if htmlBody == "" {
		htmlBody = "<!DOCTYPE html>\n<html><body><pre style=\"font-family: inherit; white-space: pre-wrap\">" +
			html.EscapeString(text) + "</pre></body></html>\n"
	}
	for _, part := range []struct{ contentType, content string }{
		{"text/plain; charset=utf-8", text},
		{"text/html; charset=utf-8", htmlBody},
	} {
		w, err := body.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.contentType},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, fmt.Errorf("email: build message: %w", err)
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(part.content)); err != nil {
			return nil, fmt.Errorf("email: build message: %w", err)
		}
		if err := qp.Close(); err != nil {
			return nil, fmt.Errorf("email: build message: %w", err)
		}
	}
	if err := body.Close(); err != nil {
		return nil, fmt.Errorf("email: build message: %w", err)
	}
	return buf.Bytes(), nil
}

// headerText makes text fit for a header: control characters (line breaks
// above all, which would inject headers) become spaces, and it is cut to
// at most limit runes.
func headerText(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit])
	}
	return s
}

// fold breaks a header value between RFC 2047 encoded-words, where the
// space is not part of the text, so no line grows past SMTP's limits.
func fold(v string) string {
	if len(v) <= 76 {
		return v
	}
	return strings.ReplaceAll(v, "?= =?", "?=\r\n =?")
}
