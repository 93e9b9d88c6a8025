package main

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/berthgw/berth/sdk"
)

// An SMTP server (or whoever sits on the path before STARTTLS) that sends
// an endless reply line must not make the plugin buffer it until the
// send's timeout: net/textproto reads a line of any length.
func TestEmailEndlessReplyIsBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	const offered = 64 << 20
	var written atomic.Int64
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		chunk := append([]byte("220 "), bytes.Repeat([]byte("x"), 64<<10-4)...)
		for written.Load() < offered {
			n, err := conn.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
			chunk = chunk[:cap(chunk)]
			copy(chunk, bytes.Repeat([]byte("x"), 4))
		}
		buf := make([]byte, 1)
		_, _ = conn.Read(buf) // hold the connection until the client gives up
	}()
	host, port, _ := net.SplitHostPort(l.Addr().String())
	n := startPlugin(t, pluginConfig{AllowPrivateTargets: loopbackOnly, Timeout: "5s"})
	_, err = n.Send(ctx(t), sdk.Message{Channel: "email", Target: "ops@example.com", Subject: "s", TextBody: "t",
		Settings: map[string]string{"host": host, "port": port, "tls": "none", "from": "berth@example.com"}})
	if err == nil {
		t.Fatal("an endless greeting was taken for one")
	}
	if w := written.Load(); w >= 16<<20 {
		t.Errorf("the plugin read %d MiB of one reply line before giving up", w>>20)
	}
}

// A receiver's answer goes into the error, and from there into the
// delivery's last_error that notification admins read; secrets are
// write-only to them. A receiver that names the credential it refused (a
// token without its "Bearer", or the value cut short by the error's length
// bound) must not show it there.
func TestReceiverEchoOfSecretsIsRedacted(t *testing.T) {
	const token = "tok-0123456789abcdefghij"
	for _, body := range []string{
		"invalid token " + token,
		strings.Repeat("a", 285) + " " + token,
	} {
		r := startReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(body))
		})
		n := startPlugin(t, r.Config())
		_, err := n.Send(ctx(t), sdk.Message{IdempotencyKey: "k", Channel: "webhook", Subject: "s",
			Settings: map[string]string{"url": r.URL, "headers": `{"Authorization": "Bearer ` + token + `"}`}})
		if err == nil {
			t.Fatal("a 400 was taken for a delivery")
		}
		if strings.Contains(err.Error(), token[:10]) {
			t.Errorf("the error shows the token: %v", err)
		}
	}
}
