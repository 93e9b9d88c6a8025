package proxy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/proxy/listquery"
)

func TestParseFleetTarget(t *testing.T) {
	for _, c := range []struct {
		uri  string
		path string
		err  error
	}{
		{"/proxy/fleet/api/v1/pods?selector=a%3Db", "/api/v1/pods", nil},
		{"/proxy/fleet/apis/apps/v1/namespaces/web/deployments", "/apis/apps/v1/namespaces/web/deployments", nil},
		{"/proxy/fleet/api", "/api", nil},
		{"/proxy/fleet/version", "", ErrNotFleetPath},
		{"/proxy/fleet/openapi/v3", "", ErrNotFleetPath},
		{"/proxy/fleet", "", ErrNotFleetPath},
		{"/proxy/fleet?x=1", "", ErrNotFleetPath},
		{"/proxy/fleet/api/../version", "", ErrBadPath},
		{"/proxy/fleet/api/v1/%2e%2e/x", "", ErrBadPath},
		{"/proxy/fleet//api/v1/pods", "", ErrBadPath},
		{"/proxy/fleetx/api", "", ErrNotProxy},
		{"/proxy/clusters/a/api", "", ErrNotProxy},
	} {
		got, err := ParseFleetTarget([]byte(c.uri))
		if !errors.Is(err, c.err) || (err == nil && got.Path != c.path) {
			t.Errorf("%s: %+v, %v; want %s, %v", c.uri, got, err, c.path, c.err)
		}
	}
}

func ev(typ, name, color string) []byte {
	return []byte(`{"type":"` + typ + `","object":{"metadata":{"name":"` + name + `","uid":"u-` + name + `"},"data":{"color":"` + color + `"}}}` + "\n")
}

func TestEventFilter(t *testing.T) {
	sel, err := listquery.ParseSelector("data.color=blue")
	if err != nil {
		t.Fatal(err)
	}
	f := &eventFilter{sel: sel}
	steps := []struct {
		in   []byte
		want string // the type passed, "" for none
	}{
		{ev("ADDED", "x", "red"), ""},
		{ev("MODIFIED", "x", "blue"), "ADDED"},
		{ev("MODIFIED", "x", "blue"), "MODIFIED"},
		{ev("MODIFIED", "x", "red"), "DELETED"},
		{ev("MODIFIED", "x", "red"), ""},
		{ev("DELETED", "x", "red"), ""},
		// Not seen since the watch began: matching is MODIFIED, not
		// matching is DELETED (the client may hold it from its list).
		{ev("MODIFIED", "y", "blue"), "MODIFIED"},
		{ev("MODIFIED", "z", "green"), "DELETED"},
		{ev("MODIFIED", "z", "green"), ""},
		{ev("DELETED", "y", "blue"), "DELETED"},
		{[]byte(`{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}` + "\n"), "BOOKMARK"},
		{[]byte(`{"type":"ERROR","object":{"kind":"Status","code":410}}` + "\n"), "ERROR"},
	}
	for i, s := range steps {
		out := f.event(s.in)
		got := ""
		if out != nil {
			got = strings.SplitN(strings.TrimPrefix(string(out), `{"type":"`), `"`, 2)[0]
			if !strings.HasSuffix(string(out), "}\n") {
				t.Errorf("step %d: not one line: %q", i, out)
			}
		}
		if got != s.want {
			t.Errorf("step %d (%s): passed %q, want %q", i, s.in, got, s.want)
		}
	}
	if len(f.state) != 1 { // z only: x and y were deleted
		t.Errorf("state kept for deleted objects: %v", f.state)
	}
	// A fleet watch tags objects, bookmarks included, and filters on the tag.
	sel, _ = listquery.ParseSelector("metadata.annotations.berth.dev/cluster=a")
	fa := &eventFilter{sel: sel, tag: listquery.NewTag(FleetAnnotation, "a")}
	if out := fa.event(ev("ADDED", "x", "red")); !strings.Contains(string(out), `"annotations":{"berth.dev/cluster":"a"}`) {
		t.Errorf("fleet event: %s", out)
	}
	fb := &eventFilter{sel: sel, tag: listquery.NewTag(FleetAnnotation, "b")}
	if out := fb.event(ev("ADDED", "x", "red")); out != nil {
		t.Errorf("b's event passed a=a: %s", out)
	}
}

// TestFleetEventForgery: a cluster's watch event is what a fleet watch's
// client decodes, so it must say what Berth read: the events a cluster
// sends with a second type or object member (gjson reads the first, Go and
// JSON.parse the last), with a null object, or of a type Berth does not
// know, must not carry another cluster's berth.dev/cluster to the client.
func TestFleetEventForgery(t *testing.T) {
	forgedObj := `{"metadata":{"name":"p","uid":"u","annotations":{"berth.dev/cluster":"b"}}}`
	lines := []string{
		`{"type":"FOO","object":` + forgedObj + `,"type":"ADDED"}`,
		`{"type":"ERROR","object":{"kind":"Status"},"type":"ADDED","object":` + forgedObj + `}`,
		`{"type":"ADDED","object":null,"object":` + forgedObj + `}`,
		`{"type":"ADDED","object":{"metadata":{"name":"p"}},"object":` + forgedObj + `}`,
		`{"type":"ADDED","object":{"metadata":{"name":"p"}},"Object":` + forgedObj + `}`,
		`{"type":"ADDED","object":{"metadata":{"name":"p"},"metadata":{"name":"p","annotations":{"berth.dev/cluster":"b"}}}}`,
	}
	for _, sel := range []string{"", "metadata.name=p"} {
		var s listquery.Selector
		if sel != "" {
			var err error
			if s, err = listquery.ParseSelector(sel); err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range lines {
			f := &eventFilter{sel: s, tag: listquery.NewTag(FleetAnnotation, "a")}
			out := f.event([]byte(l + "\n"))
			if out == nil {
				continue
			}
			var e struct {
				Type   string `json:"type"`
				Object struct {
					Metadata struct {
						Annotations map[string]string `json:"annotations"`
					} `json:"metadata"`
				} `json:"object"`
			}
			if err := json.Unmarshal(out, &e); err != nil {
				t.Errorf("selector %q, %s: passed %s, not JSON: %v", sel, l, out, err)
				continue
			}
			if c, ok := e.Object.Metadata.Annotations[FleetAnnotation]; ok && c != "a" {
				t.Errorf("selector %q, %s: passed %s, decoded as %s of cluster %q", sel, l, out, e.Type, c)
			}
		}
	}
}

// TestFleetWarnings: a cluster's error text (its Status message, its own to
// write) reaches the Warning header without breaking it: control
// characters, a message cut inside a UTF-8 character and a huge message
// still leave one well-formed warning naming the cluster, never a header
// line of the cluster's; and a fleet of failures is named in a bounded
// number of warnings (all of them stay in the List's metadata).
func TestFleetWarnings(t *testing.T) {
	long := strings.Repeat("é", fleetFailureMessageLength) // cut mid-rune by bytes
	failed := []FleetFailure{
		{Cluster: "crlf", Code: 403, Message: statusMessage(403, []byte(`{"message":"no\r\nSet-Cookie: x=1\u0000"}`))},
		{Cluster: "utf8", Code: 403, Message: statusMessage(403, []byte(`{"message":"`+long+`"}`))},
	}
	var ctx fasthttp.RequestCtx
	addFleetWarnings(&ctx, failed)
	var ws []string
	for _, v := range ctx.Response.Header.PeekAll("Warning") {
		ws = append(ws, string(v))
	}
	if len(ws) != 2 {
		t.Fatalf("warnings %q, want one per cluster", ws)
	}
	for i, w := range ws {
		if !strings.Contains(w, `cluster \"`+failed[i].Cluster+`\"`) || strings.ContainsAny(w, "\r\n\x00") || !utf8.ValidString(w) {
			t.Errorf("warning %q", w)
		}
	}
	if strings.Contains(ctx.Response.Header.String(), "Set-Cookie") && len(ctx.Response.Header.PeekAll("Set-Cookie")) > 0 {
		t.Errorf("a cluster's message set a header: %s", ctx.Response.Header.String())
	}

	var many []FleetFailure
	for i := range 500 {
		many = append(many, FleetFailure{Cluster: fmt.Sprintf("c%d", i), Code: 503, Message: strings.Repeat("x", fleetFailureMessageLength)})
	}
	var ctx2 fasthttp.RequestCtx
	addFleetWarnings(&ctx2, many)
	ws2 := ctx2.Response.Header.PeekAll("Warning")
	if len(ws2) > maxFleetWarnings+1 {
		t.Errorf("%d warnings for %d failed clusters, want at most %d", len(ws2), len(many), maxFleetWarnings+1)
	}
	if last := string(ws2[len(ws2)-1]); !strings.Contains(last, "484 more") {
		t.Errorf("last warning %q does not count the rest", last)
	}
}

// TestEventLinesKeepLittle: a filtered watch's cluster stream does not
// keep its largest event's buffer for the life of the watch (one member's
// fleet watches may hold thousands of streams), and an event past
// maxWatchEvent is refused rather than buffered.
func TestEventLinesKeepLittle(t *testing.T) {
	big := `{"type":"ADDED","object":{"data":"` + strings.Repeat("x", 1<<20) + `"}}` + "\n"
	small := `{"type":"ADDED","object":{}}` + "\n"
	l := &eventLines{r: bufio.NewReaderSize(strings.NewReader(big+small), watchReadBuffer)}
	if line, err := l.next(); err != nil || string(line) != big {
		t.Fatalf("big event: %d bytes, %v", len(line), err)
	}
	if line, err := l.next(); err != nil || string(line) != small {
		t.Fatalf("small event: %q, %v", line, err)
	}
	if c := cap(l.line); c > keptEventBuffer {
		t.Errorf("after a 1 MiB event, a small one is read into %d bytes kept", c)
	}
	huge := &eventLines{r: bufio.NewReaderSize(io.MultiReader(strings.NewReader(`{"type":"ADDED","object":"`), neverEnding('x')), watchReadBuffer)}
	if _, err := huge.next(); !errors.Is(err, errEventTooLarge) {
		t.Errorf("an endless event: %v, want errEventTooLarge", err)
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}
