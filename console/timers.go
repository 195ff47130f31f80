package console

import (
	"encoding/json"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// The states of a process's timer, as [TimerView.State] reports them.
const (
	// TimerPending is a timer not fired yet (overdue once its due time
	// has passed: no runner has fired it).
	TimerPending = "pending"
	// TimerFired is a timer that fired.
	TimerFired = "fired"
	// TimerCancelled is a timer the process cancelled, or that its end
	// (completed, failed, compensating) cancelled.
	TimerCancelled = "cancelled"
	// TimerReplaced is a timer the process scheduled again under the
	// same name before it fired.
	TimerReplaced = "replaced"
)

// TimerView is one timer of a process, read from the process's history.
type TimerView struct {
	Name string    `json:"name"`
	ID   string    `json:"id"`
	Due  time.Time `json:"due"`
	// State is [TimerPending], [TimerFired], [TimerCancelled] or
	// [TimerReplaced].
	State string `json:"state"`
	// Overdue reports a pending timer whose due time has passed.
	Overdue bool `json:"overdue,omitempty"`
	// ScheduledAt is when the process scheduled it; EndedAt when it
	// fired, or was cancelled or replaced.
	ScheduledAt time.Time  `json:"scheduled_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
}

// The process package's records of a process's stream that the timers
// are read from: their types and data are the stream's stored format.
const (
	recTimerScheduled      = "process.TimerScheduled"
	recTimerCancelled      = "process.TimerCancelled"
	recTimerFired          = "process.TimerFired"
	recTimerExpired        = "process.TimerExpired"
	recCompensationStarted = "process.CompensationStarted"
	recCompleted           = "process.Completed"
	recFailed              = "process.Failed"
	recCompensated         = "process.Compensated"
)

// processTimers folds a process's history into its timers, in the order
// they were scheduled; a pending one is overdue when due before now.
func processTimers(history []eventstore.Record, now time.Time) []TimerView {
	out := []TimerView{}
	pending := map[string]int{} // by name: index in out
	end := func(i int, state string, at time.Time) {
		out[i].State, out[i].EndedAt = state, &at
	}
	for _, rec := range history {
		var e struct {
			Name string    `json:"name"`
			ID   string    `json:"id"`
			Due  time.Time `json:"due"`
		}
		switch rec.Type {
		case recTimerScheduled, recTimerCancelled, recTimerFired, recTimerExpired:
			if json.Unmarshal(rec.Data, &e) != nil {
				continue // shown as it is in the history
			}
		}
		at := rec.RecordedAt
		switch rec.Type {
		case recTimerScheduled:
			if i, ok := pending[e.Name]; ok {
				end(i, TimerReplaced, at)
			}
			pending[e.Name] = len(out)
			out = append(out, TimerView{Name: e.Name, ID: e.ID, Due: e.Due, State: TimerPending, ScheduledAt: at})
		case recTimerCancelled:
			if i, ok := pending[e.Name]; ok {
				end(i, TimerCancelled, at)
				delete(pending, e.Name)
			}
		case recTimerFired, recTimerExpired:
			// TimerFired is the trigger the runner appends, TimerExpired
			// the process's record of handling it: the first one counts.
			if i, ok := pending[e.Name]; ok && out[i].ID == e.ID {
				end(i, TimerFired, at)
				delete(pending, e.Name)
			}
		case recCompensationStarted, recCompleted, recFailed, recCompensated:
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
