package events

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

// docs/notifications.md shows a JSON example of every type in the
// catalog, with the type's current version and every one of its fields.
func TestEveryTypeHasADocumentedExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/notifications.md")
	if err != nil {
		t.Fatal(err)
	}
	examples := map[string]Event{}
	for _, m := range regexp.MustCompile("(?s)```json\n(\\{\n  \"id\".*?)\n```").FindAllSubmatch(doc, -1) {
		var e Event
		if err := json.Unmarshal(m[1], &e); err != nil {
			t.Errorf("an example does not parse: %v\n%s", err, m[1])
			continue
		}
		examples[e.Type] = e
	}
	for _, ty := range Types() {
		e, ok := examples[ty.Name]
		if !ok {
			t.Errorf("%s has no JSON example", ty.Name)
			continue
		}
		if e.Version != ty.Version || e.Severity != ty.Severity || e.Summary == "" || e.ID == "" || e.Time.IsZero() {
			t.Errorf("%s's example is out of date: %+v", ty.Name, e)
		}
		for _, f := range ty.Fields {
			if _, ok := e.Data[f]; !ok {
				t.Errorf("%s's example lacks data field %q", ty.Name, f)
			}
		}
	}
}
