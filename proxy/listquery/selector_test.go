package listquery

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const testPod = `{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {
    "name": "web-7f9c-abcde", "namespace": "Shop",
    "labels": {"app.kubernetes.io/name": "web", "tier": "frontend", "app": "Web-Frontend"},
    "annotations": {"example.com/owner": "team-a", "kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"},
    "finalizers": ["example.com/guard", "other"],
    "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7f9c", "controller": true}]
  },
  "spec": {
    "nodeName": "node-1",
    "replicas": 3,
    "ratio": 0.5,
    "paused": true,
    "hostNetwork": false,
    "note": null,
    "escaped": "a\"b\u00e9",
    "containers": [
      {"name": "app", "image": "registry.local/NGINX:1.25", "ports": [{"containerPort": 8080}, {"containerPort": 9090}]},
      {"name": "sidecar", "image": "envoy:1.30"}
    ],
    "template": {"spec": {"containers": [{"image": "nginx:latest"}]}},
    "weird.key": "dotted",
    "*": "star", "@this": "at", "a\\b": "backslash",
    "Ünïcode": "ÄBC"
  },
  "status": {"phase": "Running", "podIP": "10.0.0.7"}
}`

func TestSelectorSemantics(t *testing.T) {
	tests := []struct {
		sel  string
		want bool
	}{
		// exact
		{"metadata.name=web-7f9c-abcde", true},
		{"metadata.name==web-7f9c-abcde", true},
		{"metadata.name=web", false},
		{"metadata.name=WEB-7F9C-ABCDE", false},
		{"status.phase=Running", true},
		{"status.phase=running", false},
		// fuzzy, case-insensitive
		{"metadata.name~7F9C", true},
		{"metadata.name~web", true},
		{"metadata.name~api", false},
		{"metadata.namespace~shop", true},
		{"metadata.labels.app~frontend", true},
		{"spec.Ünïcode~äb", true},
		{"spec.Ünïcode~xyz", false},
		// not equal
		{"status.phase!=Failed", true},
		{"status.phase!=Running", false},
		{"status.phase!=Failed|Running", false},
		{"status.phase!=Failed|Pending", true},
		// alternatives
		{"status.phase=Pending|Running", true},
		{"status.phase=Pending|Failed", false},
		{"metadata.name~api|WEB", true},
		// AND
		{"status.phase=Running,metadata.namespace=Shop", true},
		{"status.phase=Running,metadata.namespace=shop", false},
		{" status.phase = Running , metadata.namespace~SHOP ", true},
		// labels and annotations with dots and slashes
		{"metadata.labels.app.kubernetes.io/name=web", true},
		{"metadata.labels.app.kubernetes.io/name=api", false},
		{"metadata.labels.app.kubernetes.io/name!=api", true},
		{"metadata.labels.tier=frontend", true},
		{"metadata.annotations.example.com/owner=team-a", true},
		{"metadata.annotations.kubectl.kubernetes.io/restartedAt~2024-05", true},
		{"metadata.labels.app.kubernetes.io=web", false},
		// crossing arrays
		{"spec.containers.name=app", true},
		{"spec.containers.name=sidecar", true},
		{"spec.containers.name=db", false},
		{"spec.containers.name!=db", true},
		{"spec.containers.name!=app", false}, // != means no element equals
		{"spec.containers.image~nginx", true},
		{"spec.template.spec.containers.image~nginx", true},
		{"spec.containers.ports.containerPort=9090", true},
		{"spec.containers.0.name=app", true},
		{"spec.containers.1.name=app", false},
		{"spec.containers.5.name=app", false},
		{"metadata.ownerReferences.kind=ReplicaSet", true},
		{"metadata.ownerReferences.controller=true", true},
		{"metadata.finalizers=other", true},
		{"metadata.finalizers~GUARD", true},
		// numbers and booleans on their JSON text
		{"spec.replicas=3", true},
		{"spec.replicas=4", false},
		{"spec.replicas=3.0", false},
		{"spec.replicas!=4", true},
		{"spec.ratio=0.5", true},
		{"spec.paused=true", true},
		{"spec.paused=false", false},
		{"spec.hostNetwork=false", true},
		{"spec.replicas~3", true},
		// strings are compared decoded
		{`spec.escaped=a"bé`, true},
		// objects compare on their raw text
		{`status~"podIP"`, true},
		// missing fields: equal to nothing, != everything
		{"spec.missing=x", false},
		{"spec.missing!=x", true},
		{"spec.missing~x", false},
		{"spec.nodeName.deeper=x", false},
		{"spec.nodeName.deeper!=x", true},
		{"metadata.labels.absent=web", false},
		{"metadata.labels.absent!=web", true},
		// null is missing
		{"spec.note=null", false},
		{"spec.note!=null", true},
		{"spec.note=", true},
		// the empty value: missing or empty
		{"spec.missing=", true},
		{"spec.missing!=", false},
		{"spec.nodeName=", false},
		{"spec.nodeName!=", true},
		{"spec.missing=x|", true},
		{"metadata.name~", true},
		{"spec.missing~", true},
		// gjson path syntax in a key is taken literally
		{"spec.*=star", true},
		{"spec.?eplicas=3", false},
		{"spec.re*=3", false},
		{"spec.@this=at", true},
		{`spec.a\b=backslash`, true},
		{"spec.#=2", false},
		// a key with a dot outside labels/annotations is two segments
		{"spec.weird.key=dotted", false},
		// values may contain = and ~
		{"metadata.annotations.example.com/owner=team-a=b", false},
	}
	for _, tt := range tests {
		sel, err := ParseSelector(tt.sel)
		if err != nil {
			t.Errorf("ParseSelector(%q): %v", tt.sel, err)
			continue
		}
		if got := sel.Matches([]byte(testPod)); got != tt.want {
			t.Errorf("%q matches = %v, want %v", tt.sel, got, tt.want)
		}
	}
}

func TestSelectorZeroMatchesAll(t *testing.T) {
	var s Selector
	if !s.Empty() || !s.Matches([]byte(testPod)) || !s.Matches([]byte(`{}`)) {
		t.Fatal("zero Selector must match everything")
	}
}

func TestSelectorString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a=b", "a=b"},
		{"a==b", "a=b"},
		{"a===b", "a===b"},
		{" a = b , c~ D | e ", "a=b,c~D|e"},
		{"a= =b", "a===b"},
		{"a!=b|c", "a!=b|c"},
		{"a!==b", "a!==b"},
		{"a=~b", "a=~b"},
		{"metadata.labels.app.kubernetes.io/name=web", "metadata.labels.app.kubernetes.io/name=web"},
		{"a=", "a="},
		{"a=|", "a=|"},
	}
	for _, tt := range tests {
		s, err := ParseSelector(tt.in)
		if err != nil {
			t.Fatalf("ParseSelector(%q): %v", tt.in, err)
		}
		if got := s.String(); got != tt.want {
			t.Errorf("ParseSelector(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseSelectorErrors(t *testing.T) {
	for _, in := range []string{"", " ", "a", "a=b,", ",a=b", "a=b,,c=d", "=b", " ~b", "!=b", "a..b=c", "a.=c", ".a=c", "a b=c", "a|b=c", "a!b=c", "metadata.labels.=x"} {
		_, err := ParseSelector(in)
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Param != ParamSelector {
			t.Errorf("ParseSelector(%q) error = %v; want *ParamError for selector", in, err)
		}
	}
}

func TestSplitPath(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"metadata.name", []string{"metadata", "name"}},
		{"metadata.labels.app.kubernetes.io/name", []string{"metadata", "labels", "app.kubernetes.io/name"}},
		{"spec.template.metadata.annotations.a.b.c", []string{"spec", "template", "metadata", "annotations", "a.b.c"}},
		{"metadata.labels", []string{"metadata", "labels"}},
		{"labels.x.y", []string{"labels", "x.y"}},
		{"spec.containers.0.image", []string{"spec", "containers", "0", "image"}},
	}
	for _, tt := range tests {
		got, err := splitPath(tt.in)
		if err != nil {
			t.Fatalf("splitPath(%q): %v", tt.in, err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("splitPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Fatalf("splitPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		}
		if joinPath(got) != tt.in {
			t.Errorf("joinPath(splitPath(%q)) = %q", tt.in, joinPath(got))
		}
	}
	for _, bad := range []string{"", ".", "a.", ".a", "a..b", "a b", "a\tb", "a,b", "a=b", "a~b", "a!b", "a|b", "\xff", "metadata.labels."} {
		if _, err := splitPath(bad); err == nil {
			t.Errorf("splitPath(%q) succeeded", bad)
		}
	}
}

// TestParseSelectorBounds: a selector within every bound parses; one past
// any bound is a 400 naming the bound, and the message never echoes the
// long value back.
func TestParseSelectorBounds(t *testing.T) {
	terms := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf("metadata.name~n%d", i)
		}
		return strings.Join(parts, ",")
	}
	values := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf("v%d", i)
		}
		return "metadata.name~" + strings.Join(parts, "|")
	}
	long := strings.Repeat("x", maxValueLen+1)
	for _, c := range []struct {
		name, in, wantMsg string
	}{
		{"terms at the bound", terms(maxTerms), ""},
		{"values at the bound", values(maxFuzzyValues), ""},
		{"exact values are not counted", strings.Replace(values(3*maxFuzzyValues), "~", "=", 1), ""},
		{"value at the bound", "metadata.name~" + long[1:], ""},
		{"too many terms", terms(maxTerms + 1), "terms"},
		{"too many values", values(maxFuzzyValues + 1), "values"},
		{"too many values across terms", values(maxFuzzyValues/2) + "," + values(maxFuzzyValues/2+1), "values"},
		{"value too long", "metadata.name~" + long, "longer than"},
		{"exact value too long", "metadata.name=" + long, "longer than"},
		{"alternative too long", "metadata.name~a|" + long, "longer than"},
		{"text too long", "metadata.name~" + strings.Repeat("a|", maxSelectorLen/2), "longer than"},
	} {
		_, err := ParseSelector(c.in)
		if c.wantMsg == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Param != ParamSelector || !strings.Contains(pe.Reason, c.wantMsg) {
			t.Errorf("%s: error %v; want a selector error about %q", c.name, err, c.wantMsg)
			continue
		}
		if strings.Contains(pe.Error(), long[:100]) {
			t.Errorf("%s: the message echoes the value: %.200s", c.name, pe.Error())
		}
	}
}
