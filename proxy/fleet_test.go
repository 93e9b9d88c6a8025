package proxy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

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
