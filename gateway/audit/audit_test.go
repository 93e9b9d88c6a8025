package audit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestRecordAndFindNewestFirst(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	l := New(openDB(t), Options{Now: c.Now, Retention: 48 * time.Hour})
	ctx := context.Background()
	for i := 0; i < 7; i++ {
		action := "login"
		if i%2 == 1 {
			action = "logout"
		}
		l.Record(ctx, Event{Action: action, ResourceType: "session", ActorID: []string{"usr_a", "usr_b"}[i%2]})
		c.Advance(time.Minute)
	}
	l.Record(ctx, Event{Category: CategorySettings, Action: "update", ResourceType: "settings", ActorID: "usr_a"})

	all, next, err := l.Find(Query{Limit: 100})
	if err != nil || next != "" || len(all) != 8 {
		t.Fatalf("find all: %d events, next %q, err %v", len(all), next, err)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID <= all[i].ID || all[i-1].Time.Before(all[i].Time) {
			t.Fatalf("not newest first at %d", i)
		}
	}
	if all[0].Category != CategorySettings || all[1].Category != CategorySecurity || all[1].Result != ResultSuccess {
		t.Errorf("defaults not filled: %+v", all[1])
	}

	// Paging with a cursor returns every event exactly once.
	var seen []string
	cursor := ""
	for page := 0; page < 10; page++ {
		evs, next, err := l.Find(Query{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			seen = append(seen, e.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 8 {
		t.Fatalf("paging saw %d events", len(seen))
	}
	for i := range seen {
		if seen[i] != all[i].ID {
			t.Fatalf("paging order differs at %d", i)
		}
	}

	filters := []struct {
		q    Query
		want int
	}{
		{Query{Category: CategorySecurity}, 7},
		{Query{Category: "nope"}, 0},
		{Query{Action: "logout"}, 3},
		{Query{ResourceType: "settings"}, 1},
		{Query{ActorID: "usr_a"}, 5},
		{Query{ActorID: "usr_a", Action: "login"}, 4},
		{Query{Since: time.Date(2026, 3, 1, 0, 4, 0, 0, time.UTC)}, 4},
	}
	for _, f := range filters {
		f.q.Limit = 100
		evs, _, err := l.Find(f.q)
		if err != nil || len(evs) != f.want {
			t.Errorf("%+v: %d events (err %v), want %d", f.q, len(evs), err, f.want)
		}
	}
	for _, bad := range []int{0, -1, MaxLimit + 1} {
		if _, _, err := l.Find(Query{Limit: bad}); err == nil {
			t.Errorf("limit %d accepted", bad)
		}
	}
}

func TestPurgeKeepsRecentEvents(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	l := New(openDB(t), Options{Now: c.Now, Retention: 24 * time.Hour})
	for i := 0; i < 30; i++ {
		l.Record(context.Background(), Event{Action: "login", ResourceType: "session"})
		c.Advance(time.Hour)
	}
	// Now = start+30h: events at hours 0..5 are older than 24h.
	n, err := l.Purge()
	if err != nil || n != 6 {
		t.Fatalf("purged %d (err %v), want 6", n, err)
	}
	evs, _, _ := l.Find(Query{Limit: 100})
	if len(evs) != 24 {
		t.Errorf("%d events left, want 24", len(evs))
	}
	if n, _ := l.Purge(); n != 0 {
		t.Errorf("second purge removed %d", n)
	}
	forever := New(openDB(t), Options{Now: c.Now})
	forever.Record(context.Background(), Event{Action: "login", ResourceType: "session", Time: time.Unix(0, 0)})
	if n, _ := forever.Purge(); n != 0 {
		t.Error("zero retention must keep everything")
	}
}

func TestFieldsAreBounded(t *testing.T) {
	l := New(openDB(t), Options{})
	details := map[string]string{}
	for i := 0; i < 40; i++ {
		details[strings.Repeat("k", i+1)] = "v"
	}
	l.Record(context.Background(), Event{
		Action: "login", ResourceType: "session",
		UserAgent: "evil\r\nforged: line" + strings.Repeat("é", 1000),
		Details:   details,
	})
	evs, _, _ := l.Find(Query{Limit: 1})
	e := evs[0]
	if strings.ContainsAny(e.UserAgent, "\r\n") || len(e.UserAgent) > maxField {
		t.Errorf("user agent not cleaned: %q", e.UserAgent)
	}
	if len(e.Details) > maxDetails {
		t.Errorf("%d details kept", len(e.Details))
	}
	if err := l.Append(context.Background(), &Event{Action: "x"}); err == nil {
		t.Error("event without resource type accepted")
	}
}

// Purge bounds the log by age and by count; the count bound drops the
// oldest first, across several delete batches.
func TestPurgeBoundsAgeAndCount(t *testing.T) {
	tests := []struct {
		name      string
		retention time.Duration
		maxEvents int
		events    int
		removed   int
	}{
		{"age only", 24 * time.Hour, 0, 30, 6},
		{"count only", 0, 10, 30, 20},
		{"count under the bound", 0, 40, 30, 0},
		{"age then count", 24 * time.Hour, 10, 30, 20},
		{"count tighter than age", 24 * time.Hour, 20, 30, 10},
		{"count in several batches", 0, 50, 2*purgeBatch + 100, 2*purgeBatch + 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
			l := New(openDB(t), Options{Now: c.Now, Retention: tt.retention, MaxEvents: tt.maxEvents})
			for i := 0; i < tt.events; i++ {
				l.Record(context.Background(), Event{Action: "login", ResourceType: "session", ResourceID: fmt.Sprint(i)})
				c.Advance(time.Hour)
			}
			n, err := l.Purge()
			if err != nil || n != tt.removed {
				t.Fatalf("purged %d (err %v), want %d", n, err, tt.removed)
			}
			left, err := l.count()
			if err != nil || left != tt.events-tt.removed {
				t.Fatalf("%d left (err %v), want %d", left, err, tt.events-tt.removed)
			}
			// The newest are the ones kept.
			evs, _, _ := l.Find(Query{Limit: 1})
			if len(evs) != 1 || evs[0].ResourceID != fmt.Sprint(tt.events-1) {
				t.Errorf("newest left: %+v", evs)
			}
			if n, _ := l.Purge(); n != 0 {
				t.Errorf("second purge removed %d", n)
			}
		})
	}
}
