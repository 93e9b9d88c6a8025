package notify

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/events"
)

// An event whose values are huge (a node's Ready reason comes from the
// cluster, an operation's error from a provisioner) must not stop every
// later event: before, its built-in rendering passed 64 KiB, planning it
// failed on every pass, and it stayed first in the outbox for good.
func TestOversizedEventDoesNotBlockTheOutbox(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, http.MethodPost, "/api/v1/notifications/channels", f.admin, map[string]any{"name": "hook", "type": "webhook", "url": "https://ops.example/"})
	f.do(t, http.MethodPost, "/api/v1/notifications/routes", f.admin, map[string]any{"name": "all", "events": []string{"*"}, "channel": "hook"})
	huge := strings.Repeat("x", 70<<10)
	f.emit(t, events.Event{Type: events.NodeNotReady, Cluster: "c1", Summary: "Node " + huge + " is not ready.", Data: map[string]string{"node": huge, "reason": huge}})
	f.emit(t, events.Event{Type: events.ClusterDeleted, Cluster: "c2", Summary: "c2 deleted"})
	f.pass(t)
	var node, c2 bool
	for _, m := range f.fake.messages() {
		if n := len(m.TextBody) + len(m.HTMLBody) + len(m.Subject) + len(m.Metadata["event"]); n > 64<<10 {
			t.Errorf("a message of %d bytes went out", n)
		}
		node = node || m.Metadata["event_type"] == events.NodeNotReady
		c2 = c2 || m.Subject == "[Berth] c2 deleted"
	}
	if !c2 {
		t.Error("the event after the oversized one was never sent: the outbox is blocked")
	}
	if !node {
		t.Error("the oversized event was not sent, cut to size")
	}
}
