package pluginhost

import (
	"errors"
	"testing"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/events/eventstest"
	"github.com/berthgw/berth/gateway/store"
)

// A plugin's health is reported on the transitions of the fleet's one
// stored word: two replicas (two hosts on one store) whose supervisors
// see the same plugin degrade report it once, and each recovery or
// relapse once.
func TestHealthTransitionsEmitOnce(t *testing.T) {
	db, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	replica := func() *instance {
		h, err := New(Options{DB: db, HealthInterval: time.Second, Clock: func() time.Time { return at },
			Plugins: []Plugin{{Name: "notify"}}})
		if err != nil {
			t.Fatal(err)
		}
		return h.instances[0]
	}
	a, b := replica(), replica()
	crash := errors.New("plugin process exited")
	steps := []struct {
		name string
		in   *instance
		to   State
		want string // "" for no event
	}{
		{"a starts", a, StateRunning, ""},
		{"a restarts", a, StateRestarting, ""},
		{"a degrades", a, StateDegraded, events.PluginDegraded},
		{"a fails another restart", a, StateDegraded, ""},
		{"b degrades too", b, StateDegraded, ""},
		{"a recovers", a, StateRunning, events.PluginRecovered},
		{"b still fails", b, StateDegraded, events.PluginDegraded},
		{"b recovers", b, StateRunning, events.PluginRecovered},
		{"a restarts", a, StateRestarting, ""},
		{"a runs again", a, StateRunning, ""},
		{"a stops", a, StateStopped, ""},
		{"b is refused", b, StateFailed, events.PluginDegraded},
	}
	for _, st := range steps {
		var cause error
		if st.to == StateDegraded || st.to == StateRestarting || st.to == StateFailed {
			cause = crash
		}
		st.in.setState(st.to, cause)
		got := eventstest.Take(t, db)
		if st.want == "" {
			if len(got) != 0 {
				t.Fatalf("%s: want no event, got %+v", st.name, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Type != st.want || got[0].Data["plugin"] != "notify" || got[0].Actor != events.SystemActor ||
			!got[0].Time.Equal(at) || got[0].Summary == "" {
			t.Fatalf("%s: want one %s, got %+v", st.name, st.want, got)
		}
		if st.want == events.PluginDegraded && got[0].Data["error"] != crash.Error() {
			t.Errorf("%s: error %q", st.name, got[0].Data["error"])
		}
	}
}
