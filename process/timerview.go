package process

import (
	"encoding/json"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// TimerState is the state of a process's timer, as [TimersOf] reads it
// from the process's history.
type TimerState string

// The states of a process's timer.
const (
	// TimerPending is a timer not fired yet (overdue once its due time
	// has passed: no runner has fired it).
	TimerPending TimerState = "pending"
	// TimerFired is a timer that fired.
	TimerFired TimerState = "fired"
	// TimerCancelled is a timer the process cancelled, or that its end
	// (completed, failed, compensating) cancelled.
	TimerCancelled TimerState = "cancelled"
	// TimerReplaced is a timer the process scheduled again under the
	// same name before it fired.
	TimerReplaced TimerState = "replaced"
)

// Timer is one timer of a process, read from the process's history.
type Timer struct {
	Name  string     `json:"name"`
	ID    string     `json:"id"`
	Due   time.Time  `json:"due"`
	State TimerState `json:"state"`
	// Overdue reports a pending timer whose due time has passed.
	Overdue bool `json:"overdue,omitempty"`
	// ScheduledAt is when the process scheduled it; EndedAt when it
	// fired, or was cancelled or replaced.
	ScheduledAt time.Time  `json:"scheduled_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
}

// TimersOf folds a process's history (what [Admin.History] returns) into
// its timers, in the order they were scheduled; a pending one is overdue
// when due before now. Records it cannot read are left out.
func TimersOf(history []eventstore.Record, now time.Time) []Timer {
	out := []Timer{}
	pending := map[string]int{} // by name: index in out
	end := func(i int, state TimerState, at time.Time) {
		out[i].State, out[i].EndedAt = state, &at
	}
	for _, rec := range history {
		var e struct {
			Name string    `json:"name"`
			ID   string    `json:"id"`
			Due  time.Time `json:"due"`
		}
		switch rec.Type {
		case typeTimerScheduled, typeTimerCancelled, typeTimerFired, typeTimerExpired:
			if json.Unmarshal(rec.Data, &e) != nil {
				continue // shown as it is in the history
			}
		}
		at := rec.RecordedAt
		switch rec.Type {
		case typeTimerScheduled:
			if i, ok := pending[e.Name]; ok {
				end(i, TimerReplaced, at)
			}
			pending[e.Name] = len(out)
			out = append(out, Timer{Name: e.Name, ID: e.ID, Due: e.Due, State: TimerPending, ScheduledAt: at})
		case typeTimerCancelled:
			if i, ok := pending[e.Name]; ok {
				end(i, TimerCancelled, at)
				delete(pending, e.Name)
			}
		case typeTimerFired, typeTimerExpired:
			// TimerFired is the trigger the runner appends, TimerExpired
			// the process's record of handling it: the first one counts.
			if i, ok := pending[e.Name]; ok && out[i].ID == e.ID {
				end(i, TimerFired, at)
				delete(pending, e.Name)
			}
		case typeCompensationStarted, typeCompleted, typeFailed, typeCompensated:
			for name, i := range pending {
				end(i, TimerCancelled, at)
				delete(pending, name)
			}
		}
	}
	for _, i := range pending {
		out[i].Overdue = out[i].Due.Before(now)
	}
	return out
}
