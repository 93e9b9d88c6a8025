package notify

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/gateway/store"
)

// Template renders one event type's messages (for one channel type, or
// for all when ChannelType is empty). Subject and Text are text/template;
// HTML is html/template, so event values are escaped in it. The data is
// the event (.Type, .Summary, .Cluster, .Data.<field>, …).
type Template struct {
	EventType   string    `json:"event_type"`
	ChannelType string    `json:"channel_type,omitempty"`
	Subject     string    `json:"subject"`
	Text        string    `json:"text"`
	HTML        string    `json:"html,omitempty"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
	// Builtin marks the template Berth ships (not stored).
	Builtin bool `json:"builtin,omitempty"`
}

var templates = store.NewTable[Template]("notify_templates")

func templateID(eventType, channelType string) string { return eventType + "|" + channelType }

// maxRendered bounds what one template may produce.
const maxRendered = 64 << 10

// builtin is the template every event type starts with.
var builtin = Template{
	Subject: `[Berth] {{.Summary}}`,
	Text: `{{.Summary}}

Event:    {{.Type}} ({{.Severity}})
Time:     {{.Time.Format "2006-01-02 15:04:05 MST"}}
{{- if .Cluster}}
Cluster:  {{.Cluster}}{{end}}
Actor:    {{.Actor}}
{{- range $k, $v := .Data}}
{{$k}}: {{$v}}{{end}}

Event id: {{.ID}}
`,
	HTML: `<p>{{.Summary}}</p>
<table>
<tr><th align="left">Event</th><td>{{.Type}} ({{.Severity}})</td></tr>
<tr><th align="left">Time</th><td>{{.Time.Format "2006-01-02 15:04:05 MST"}}</td></tr>
{{- if .Cluster}}
<tr><th align="left">Cluster</th><td>{{.Cluster}}</td></tr>{{end}}
<tr><th align="left">Actor</th><td>{{.Actor}}</td></tr>
{{- range $k, $v := .Data}}
<tr><th align="left">{{$k}}</th><td>{{$v}}</td></tr>{{end}}
</table>
<p><small>Event id {{.ID}}</small></p>
`,
	Builtin: true,
}

// rendered is a message ready to send.
type rendered struct {
	Subject, Text, HTML string
}

// render runs t on e.
func (t *Template) render(e *events.Event) (rendered, error) {
	var out rendered
	var err error
	if out.Subject, err = runText("subject", t.Subject, e); err != nil {
		return out, err
	}
	// A subject is one line.
	out.Subject = strings.Join(strings.Fields(out.Subject), " ")
	if out.Text, err = runText("text", t.Text, e); err != nil {
		return out, err
	}
	if t.HTML != "" {
		tpl, err := htmltemplate.New("html").Option("missingkey=zero").Parse(t.HTML)
		if err != nil {
			return out, err
		}
		var buf limitedBuffer
		if err := tpl.Execute(&buf, e); err != nil {
			return out, err
		}
		out.HTML = buf.String()
	}
	return out, nil
}

func runText(name, src string, e *events.Event) (string, error) {
	tpl, err := template.New(name).Option("missingkey=zero").Parse(src)
	if err != nil {
		return "", err
	}
	var buf limitedBuffer
	if err := tpl.Execute(&buf, e); err != nil {
		return "", err
	}
	return buf.String(), nil
}

var errTooLong = errors.New("the template's output is longer than 64 KiB")

// limitedBuffer refuses output past maxRendered, so a template cannot make
// a message of any size.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxRendered {
		return 0, errTooLong
	}
	return b.Buffer.Write(p)
}

// Sample is an event of type typ with every field filled in, for test
// sends and for checking templates.
func Sample(typ string, now time.Time) events.Event {
	t, _ := events.Lookup(typ)
	e := events.Event{ID: "evt_sample", Type: typ, Version: t.Version, Time: now.UTC(), Severity: t.Severity,
		Actor: "usr_sample", Cluster: "sample-cluster", Summary: "Sample " + typ + " event from Berth.", Data: map[string]string{}}
	for _, f := range t.Fields {
		e.Data[f] = "sample-" + f
	}
	return e
}

// templateFor returns the template for e on channelType: the override for
// the channel type, else the event type's, else the built-in one.
func templateFor(tx *store.Tx, eventType, channelType string) (*Template, error) {
	for _, id := range []string{templateID(eventType, channelType), templateID(eventType, "")} {
		t, err := templates.Get(tx, id)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	t := builtin
	t.EventType, t.ChannelType = eventType, channelType
	return &t, nil
}

// Templates returns every event type's template for channelType (empty:
// the ones for all channel types), overrides where set.
func (s *Service) Templates(channelType string) ([]Template, error) {
	var out []Template
	err := s.db.View(func(tx *store.Tx) error {
		for _, et := range events.Types() {
			t, err := templateFor(tx, et.Name, channelType)
			if err != nil {
				return err
			}
			out = append(out, *t)
		}
		return nil
	})
	return out, err
}

// SaveTemplate stores an override after rendering it on a sample event:
// a template that does not parse or fails on the sample is a 400.
func (s *Service) SaveTemplate(t Template) (*Template, error) {
	if _, ok := events.Lookup(t.EventType); !ok {
		return nil, fault.New(fault.Invalid, "event type %q is not in the catalog", t.EventType)
	}
	if t.ChannelType != "" && !channelName.MatchString(t.ChannelType) {
		return nil, fault.New(fault.Invalid, "channel_type must be a channel type such as email or slack")
	}
	if t.Subject == "" || t.Text == "" {
		return nil, fault.New(fault.Invalid, "subject and text are required")
	}
	if len(t.Subject)+len(t.Text)+len(t.HTML) > maxRendered {
		return nil, fault.New(fault.Invalid, "templates are limited to 64 KiB")
	}
	for _, src := range []string{t.Subject, t.Text, t.HTML} {
		if err := checkBounded(src); err != nil {
			return nil, fault.New(fault.Invalid, "%v", err)
		}
	}
	sample := Sample(t.EventType, s.now())
	if _, err := t.render(&sample); err != nil {
		return nil, fault.Wrap(fault.Invalid, err, "the template does not render: %s", templateError(err))
	}
	t.Builtin, t.UpdatedAt = false, s.now()
	err := s.db.Update(func(tx *store.Tx) error { return templates.Put(tx, templateID(t.EventType, t.ChannelType), &t) })
	return &t, err
}

// DeleteTemplate removes an override; the built-in template applies again.
func (s *Service) DeleteTemplate(eventType, channelType string) error {
	return s.db.Update(func(tx *store.Tx) error {
		err := templates.Delete(tx, templateID(eventType, channelType))
		if errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "no template override for %q", eventType)
		}
		return err
	})
}

// maxRangeDepth bounds how deep ranges nest: each is over the event's few
// fields.
const maxRangeDepth = 2

// checkBounded refuses a template whose run could take any time: it runs
// in the leader's one dispatcher, on every event, and nothing can stop it
// once started. Ranges may go over .Data alone (a number, or a method's
// result, loops that many times), at most two deep, and templates may not
// define or call others (recursion). What is left costs at most the
// template's size times a few fields squared.
func checkBounded(src string) error {
	tpl, err := template.New("t").Parse(src)
	if err != nil {
		return fmt.Errorf("the template does not parse: %s", templateError(err))
	}
	if len(tpl.Templates()) > 1 {
		return errors.New("templates may not define others (define, block)")
	}
	if tpl.Tree == nil {
		return nil
	}
	return checkNodes(tpl.Tree.Root, 0)
}

func checkNodes(n parse.Node, depth int) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkNodes(c, depth); err != nil {
				return err
			}
		}
	case *parse.TemplateNode:
		return errors.New("templates may not call others (template)")
	case *parse.IfNode:
		return checkBranches(n.List, n.ElseList, depth)
	case *parse.WithNode:
		return checkBranches(n.List, n.ElseList, depth)
	case *parse.RangeNode:
		if !overData(n.Pipe) {
			return errors.New("range may only go over .Data")
		}
		if depth+1 > maxRangeDepth {
			return fmt.Errorf("ranges may nest at most %d deep", maxRangeDepth)
		}
		return checkBranches(n.List, n.ElseList, depth+1)
	}
	return nil
}

func checkBranches(list, elseList *parse.ListNode, depth int) error {
	if err := checkNodes(list, depth); err != nil {
		return err
	}
	return checkNodes(elseList, depth)
}

// overData reports whether a range's pipeline is .Data or $.Data.
func overData(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	switch a := p.Cmds[0].Args[0].(type) {
	case *parse.FieldNode:
		return slices.Equal(a.Ident, []string{"Data"})
	case *parse.VariableNode:
		return slices.Equal(a.Ident, []string{"$", "Data"})
	}
	return false
}

// templateError is the parser's message without Go's internals.
func templateError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "template: ")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}
