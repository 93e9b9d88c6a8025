package pluginhost

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthgw/berth/gateway/events"
	"github.com/berthgw/berth/gateway/store"
)

// pluginHealth is a plugin's health as last reported to people: whether
// it is degraded (or refused), and since when.
//
// Every replica runs its own process of each plugin, so each sees its own
// transitions; reporting them all would say the same thing once per
// replica. Instead the record is the fleet's one word, and an event is
// emitted only by the transition that changes it, in the transaction
// that changes it: the first replica to see a plugin degrade reports it,
// the others find it reported. Where replicas disagree (one degraded, one
// healthy) the record follows whichever changed last, so a plugin can be
// reported recovered while a replica still fails it; that replica's next
// failed restart reports it degraded again.
type pluginHealth struct {
	Degraded bool      `json:"degraded"`
	Since    time.Time `json:"since"`
}

var healthTable = store.NewTable[pluginHealth]("plugin_health")

// maxEventError bounds the error an event carries: a plugin's start error
// may quote its output at length.
const maxEventError = 512

// reportHealth records in the store what the move from one state to
// another says of the plugin's health, and emits plugin.degraded or
// plugin.recovered when that changes the stored word. A degraded plugin's
// every failed restart asks again (from == to), so a replica that stays
// degraded after another recovered says so. A failure is logged: the
// plugin's supervision goes on regardless.
func (in *instance) reportHealth(from, to State, msg string) {
	var degraded bool
	switch {
	case to == StateDegraded, to == StateFailed && from != StateFailed:
		degraded = true
	case to == StateRunning && (from == StateStarting || from == StateDegraded || from == StateFailed):
		// A start that works after this process had not run the plugin
		// (Starting) is news too: the stored word may be an earlier
		// process's, or another replica's.
	default:
		return
	}
	now := in.h.now().UTC()
	err := in.h.db.Update(func(tx *store.Tx) error {
		rec, err := healthTable.Get(tx, in.name)
		if errors.Is(err, store.ErrNotFound) {
			rec, err = &pluginHealth{}, nil
		}
		if err != nil {
			return err
		}
		if rec.Degraded == degraded {
			return nil
		}
		if err := healthTable.Put(tx, in.name, &pluginHealth{Degraded: degraded, Since: now}); err != nil {
			return err
		}
		e := events.Event{Type: events.PluginRecovered, Time: now, Data: map[string]string{"plugin": in.name},
			Summary: fmt.Sprintf("Plugin %q is serving again.", in.name)}
		if degraded {
			if len(msg) > maxEventError {
				msg = strings.ToValidUTF8(msg[:maxEventError], "") + "…"
			}
			e.Type, e.Data["error"] = events.PluginDegraded, msg
			e.Summary = fmt.Sprintf("Plugin %q is degraded: it keeps failing, and calls to it fail at once while it is restarted.", in.name)
			if to == StateFailed {
				e.Summary = fmt.Sprintf("Plugin %q was refused and is not retried until its configuration is reloaded.", in.name)
			}
		}
		return events.Emit(tx, e)
	})
	if err != nil {
		in.log.Warn("plugin health not recorded", "state", string(to), "err", err)
	}
}
