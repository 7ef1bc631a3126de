package daemon

import (
	"strings"

	"github.com/vigil-ha/vigil/core/api"
	"github.com/vigil-ha/vigil/core/journal"
)

// journalEvent is emit's hook: every event the daemon announces goes to
// the journal under its kind (the flight recorder and alerts see it too).
func (d *Daemon) journalEvent(ev api.Event) {
	if d.ops == nil {
		return
	}
	d.ops.flight.event(d, ev) // emit has stamped ev.Time
	e, ok := entryOf(ev)
	if ev.Kind == "config" && ev.Service != "" {
		e, ok = d.configEntry(ev)
	}
	if !ok {
		return
	}
	d.record(e)
}

// entryOf names an event's journal kind: a peer found is joined, a fence
// failure is fence_failed, an action is its verb.
func entryOf(ev api.Event) (journal.Entry, bool) {
	e := journal.Entry{Time: ev.Time, Kind: ev.Kind, Node: ev.Node, Service: ev.Service, Message: ev.Message}
	switch ev.Kind {
	case "peer":
		switch ev.Message {
		case "lost":
			e.Kind = "lost"
		case "found", "ready":
			e.Kind = "joined"
		default:
			return e, false
		}
	case "fence":
		if strings.HasPrefix(ev.Message, "failed") {
			e.Kind = "fence_failed"
		}
	case "action":
		verb, result, _ := strings.Cut(ev.Message, ": ")
		e.Kind, e.Message = verb, result
	}
	return e, true
}

// record appends an entry to the journal and runs the alerts that want
// it. It never blocks on an alert.
func (d *Daemon) record(e journal.Entry) {
	if d.ops == nil {
		return
	}
	e, err := d.ops.journal.Append(e)
	if err != nil {
		d.log.Error("journal append", "kind", e.Kind, "error", err)
	}
	d.metrics.journalEntry(e.Kind)
	d.alert(e)
}
