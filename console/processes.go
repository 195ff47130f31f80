package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/chronicle-go/chronicle/process"
)

// WithProcesses shows the process types of admin with their counts by
// state, timers and outbox in the overview, lists a type's processes by
// state, and shows one process with its history and its timers (pending,
// overdue, fired, cancelled).
func WithProcesses(admin *process.Admin) Option { return func(h *Handler) { h.processes = admin } }

var errNoProcesses = errors.New("console: processes are not shown (WithProcesses)")

// MaxProcessesListed caps the processes one listing returns.
const MaxProcessesListed = 200

// ProcessTypeOverview is one process type's counts.
type ProcessTypeOverview struct {
	Type string `json:"type"`
	// Counts is the number of processes in each state (running,
	// completed, failed, compensating, compensated, compensation_failed).
	Counts          map[string]int64 `json:"counts"`
	PendingTimers   int64            `json:"pending_timers"`
	OldestTimer     *time.Time       `json:"oldest_timer,omitempty"`
	StuckTimers     int64            `json:"stuck_timers"`
	PendingCommands int64            `json:"pending_commands"`
	FailedCommands  int64            `json:"failed_commands"`
}

// ProcessView is one process, with its history when shown alone.
type ProcessView struct {
	Type      string       `json:"type"`
	ID        string       `json:"id"`
	StreamID  string       `json:"stream_id"`
	Status    string       `json:"status"`
	Reason    string       `json:"reason,omitempty"`
	Version   int64        `json:"version"`
	StartedAt time.Time    `json:"started_at"`
	UpdatedAt time.Time    `json:"updated_at"`
	EndedAt   *time.Time   `json:"ended_at,omitempty"`
	History   []*EventView `json:"history,omitempty"`
	// Timers are the process's timers, read from its history, in the
	// order they were scheduled (when shown alone): the pending ones and
	// those that fired, were cancelled or were scheduled again.
	Timers []process.Timer `json:"timers,omitempty"`
}

func processTypes(ctx context.Context, a *process.Admin) ([]ProcessTypeOverview, error) {
	sts, err := a.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ProcessTypeOverview, 0, len(sts))
	for _, st := range sts {
		o := ProcessTypeOverview{Type: st.Type, Counts: map[string]int64{}, PendingTimers: st.PendingTimers,
			StuckTimers: st.Stuck, PendingCommands: st.PendingCommands, FailedCommands: st.FailedCommands}
		for s, n := range st.Counts {
			o.Counts[string(s)] = n
		}
		if !st.OldestTimer.IsZero() {
			t := st.OldestTimer
			o.OldestTimer = &t
		}
		out = append(out, o)
	}
	return out, nil
}

func processView(i process.Instance) ProcessView {
	return ProcessView{Type: i.Type, ID: i.ID, StreamID: i.StreamID, Status: string(i.Status), Reason: i.Reason, Version: i.Version,
		StartedAt: i.StartedAt, UpdatedAt: i.UpdatedAt, EndedAt: i.EndedAt}
}

// Processes lists up to [MaxProcessesListed] processes of typ ("" for
// every type) in status ("" for every state), oldest first.
func (h *Handler) Processes(ctx context.Context, typ, status string) ([]ProcessView, error) {
	if h.processes == nil {
		return nil, errNoProcesses
	}
	is, err := h.processes.List(ctx, typ, process.Status(status), MaxProcessesListed)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	out := make([]ProcessView, 0, len(is))
	for _, i := range is {
		out = append(out, processView(i))
	}
	return out, nil
}

// Process returns one process with its history (triggers, commands and
// their outcomes, timers, state changes, its own events) and its timers.
func (h *Handler) Process(ctx context.Context, typ, id string) (ProcessView, error) {
	if h.processes == nil {
		return ProcessView{}, errNoProcesses
	}
	i, err := h.processes.Get(ctx, typ, id)
	if err != nil {
		return ProcessView{}, fmt.Errorf("console: %w", err)
	}
	recs, err := h.processes.History(ctx, typ, id)
	if err != nil {
		return ProcessView{}, fmt.Errorf("console: %w", err)
	}
	v := processView(i)
	v.History = make([]*EventView, 0, len(recs))
	for _, rec := range recs {
		v.History = append(v.History, h.view(rec))
	}
	v.Timers = process.TimersOf(recs, time.Now())
	return v, nil
}

func (h *Handler) listProcesses(w http.ResponseWriter, r *http.Request) {
	ps, err := h.Processes(r.Context(), r.URL.Query().Get("type"), r.URL.Query().Get("status"))
	writeJSON(w, ps, err)
}

func (h *Handler) showProcess(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("type") == "" || q.Get("id") == "" {
		http.Error(w, "console: bad request: a process needs a type and an id", http.StatusBadRequest)
		return
	}
	p, err := h.Process(r.Context(), q.Get("type"), q.Get("id"))
	writeJSON(w, p, err)
}
