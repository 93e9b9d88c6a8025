package clusters

import (
	"context"
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/audit"
	"github.com/berthgw/berth/gateway/fault"
)

// TestFleetSelectionTellsNothingOfOthers: what a member gives in clusters=
// and clusterSelector= selects among the clusters they reach and tells
// nothing of the rest. A cluster that exists but is not theirs and one
// that does not exist are refused with the same words; names in another
// case, with spaces or given twice select no more than their own; a
// selector on labels only another's cluster carries selects nothing and
// says nothing about it; and no refusal names a cluster.
func TestFleetSelectionTellsNothingOfOthers(t *testing.T) {
	a := newActAsEnv(t) // prod: bob is a view member
	ctx := context.Background()
	for _, sp := range []Spec{a.upstream.spec("secret", "t"), a.upstream.spec("dev", "t")} {
		sp.Labels = map[string]string{"env": "prod", "team": sp.Name}
		if _, err := a.svc.Register(ctx, admin, sp, audit.Event{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.svc.AddMember(ctx, "dev", "user", a.users["bob"].ID, "view", audit.Event{}); err != nil {
		t.Fatal(err)
	}
	bob, err := a.IDs.VerifyAccessToken(a.tokens["bob"])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		clusters, selector string
		want               string // the clusters selected, or "!" and the refusal's kind
	}{
		{"", "", "dev prod"},
		{"prod", "", "prod"},
		{" prod , prod,dev ", "", "dev prod"},
		{"Prod", "", "!Invalid"},
		{"prod,", "", "!Invalid"},
		{"secret", "", "!Forbidden"},
		{"nosuch", "", "!Forbidden"},
		{"prod,secret", "", "!Forbidden"},
		{"", "team=secret", ""},
		{"", "team in (secret,dev)", "dev"},
		{"", "env=prod", "dev"},
		{"", "!team", "prod"},
		{"", "team=(", "!Invalid"},
	}
	refusals := map[string]string{}
	for _, tt := range tests {
		got, err := a.svc.FleetSelection(bob, tt.clusters, tt.selector, false)
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, "secret") && !strings.Contains(tt.clusters, "secret") && !strings.Contains(tt.selector, "secret") {
				t.Errorf("%q %q: refusal names another's cluster: %s", tt.clusters, tt.selector, msg)
			}
			if want := map[string]fault.Kind{"!Invalid": fault.Invalid, "!Forbidden": fault.Forbidden}[tt.want]; want == 0 || !fault.Is(err, want) {
				t.Errorf("%q %q: %v, want %s", tt.clusters, tt.selector, err, tt.want)
			}
			refusals[tt.clusters] = msg
			continue
		}
		if s := strings.Join(got, " "); s != tt.want {
			t.Errorf("%q %q: selected %q, want %q", tt.clusters, tt.selector, s, tt.want)
		}
	}
	if refusals["secret"] != refusals["nosuch"] {
		t.Errorf("another's cluster and none are refused differently:\n%s\n%s", refusals["secret"], refusals["nosuch"])
	}
	if _, err := a.svc.FleetSelection(bob, "prod", "", true); !fault.Is(err, fault.Invalid) {
		t.Errorf("a repeated parameter: %v", err)
	}
	var many []string
	for i := range maxFleetNames + 1 {
		many = append(many, "c"+strings.Repeat("x", i%10)+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	if _, err := a.svc.FleetSelection(bob, strings.Join(many, ","), "", false); !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "more than") {
		t.Errorf("%d names: %v", len(many), err)
	}
}
