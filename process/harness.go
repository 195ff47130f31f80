package process

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
)

// Harness runs a process type's logic in memory, with no store and a clock
// of its own, one trigger at a time, and reports what each trigger
// decided. processtest builds its given-when-then scenarios on it; the
// runner runs exactly the same logic.
type Harness[S Applier] struct {
	k    *kind
	c    *core
	now  time.Time
	seq  int
	sent map[string][]uuid.UUID // outstanding commands by name, oldest first
	comp map[uuid.UUID]bool
}

// Effects is what one trigger decided.
type Effects struct {
	// Events are the events the handler recorded, as values.
	Events []any
	// Commands are the commands sent, compensations included.
	Commands []SentCommand
	// Scheduled are the timers set, and Cancelled the names of those
	// cancelled.
	Scheduled []ScheduledTimer
	Cancelled []string
	// Status is the process's status afterwards.
	Status Status
}

// SentCommand is a command decided by a trigger.
type SentCommand struct {
	Name         string
	Data         json.RawMessage
	Compensation bool
}

// ScheduledTimer is a timer set by a trigger.
type ScheduledTimer struct {
	Name string
	Due  time.Time
}

// NewHarness returns a harness of process id of type t, its clock at now.
func NewHarness[S Applier](t *Type[S], id string, now time.Time) (*Harness[S], error) {
	k, err := t.kind()
	if err != nil {
		return nil, err
	}
	return &Harness[S]{k: k, c: newCore(k, id), now: now, sent: map[string][]uuid.UUID{}, comp: map[uuid.UUID]bool{}}, nil
}

// State returns the process's state.
func (h *Harness[S]) State() S { return h.c.state.(S) }

// Status returns the process's status; before its start event it is
// "running" with no history.
func (h *Harness[S]) Status() Status { return h.c.meta.Status }

// Now returns the harness's clock.
func (h *Harness[S]) Now() time.Time { return h.now }

// Started reports whether a start event has reached the process.
func (h *Harness[S]) Started() bool { return h.c.version > 0 }

func (h *Harness[S]) nextRecord(stream, typ string, data []byte) eventstore.Record {
	h.seq++
	return eventstore.Record{
		ID: uuid.NewSHA1(namespace, fmt.Appendf(nil, "harness/%s/%d", h.c.id, h.seq)), StreamID: stream, StreamVersion: int64(h.seq),
		Position: eventstore.Position{TxID: uint64(h.seq), Seq: uint64(h.seq)}, Type: typ, Data: data, RecordedAt: h.now,
	}
}

// Event delivers an event of the log of type typ with the decoded value
// data (also encoded as JSON in the record).
func (h *Harness[S]) Event(ctx context.Context, typ string, data any) (Effects, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Effects{}, fmt.Errorf("process: harness: encode %s: %w", typ, err)
	}
	rec := h.nextRecord("harness-"+h.c.id, typ, raw)
	if h.c.version == 0 && !slices.Contains(h.k.starts, typ) {
		return Effects{Status: h.c.meta.Status}, nil
	}
	return h.run(ctx, rec, projection.Event{Data: data, Record: rec})
}

// Succeeded reports the oldest outstanding command named name delivered.
func (h *Harness[S]) Succeeded(ctx context.Context, name string) (Effects, error) {
	return h.outcome(ctx, name, typeCommandSucceeded, "", false)
}

// Failed reports the oldest outstanding command named name failed with
// reason; rejected says whether its handler refused it.
func (h *Harness[S]) Failed(ctx context.Context, name, reason string, rejected bool) (Effects, error) {
	return h.outcome(ctx, name, typeCommandFailed, reason, rejected)
}

func (h *Harness[S]) outcome(ctx context.Context, name, typ, reason string, rejected bool) (Effects, error) {
	ids := h.sent[name]
	if len(ids) == 0 {
		return Effects{}, fmt.Errorf("process: harness: no command %q outstanding", name)
	}
	id := ids[0]
	h.sent[name] = ids[1:]
	data, _ := json.Marshal(commandOutcome{ID: id, Name: name, Compensation: h.comp[id], Error: reason, Rejected: rejected})
	rec := h.nextRecord(h.c.stream, typ, data)
	return h.run(ctx, rec, projection.Event{Record: rec})
}

// Advance moves the clock by d and fires the timers then due, in the
// order they are due; the effects of every firing are joined.
func (h *Harness[S]) Advance(ctx context.Context, d time.Duration) (Effects, error) {
	h.now = h.now.Add(d)
	var all Effects
	for {
		type due struct {
			name string
			t    timerState
		}
		var ds []due
		for n, t := range h.c.meta.Timers {
			if !t.Due.After(h.now) {
				ds = append(ds, due{n, t})
			}
		}
		if len(ds) == 0 || h.c.meta.Status.Terminal() {
			all.Status = h.c.meta.Status
			return all, nil
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].t.Due.Before(ds[j].t.Due) })
		data, _ := json.Marshal(timerFired{Name: ds[0].name, ID: ds[0].t.ID, Due: ds[0].t.Due})
		rec := h.nextRecord(h.c.stream, typeTimerFired, data)
		eff, err := h.run(ctx, rec, projection.Event{Record: rec})
		if err != nil {
			return all, err
		}
		all.Events = append(all.Events, eff.Events...)
		all.Commands = append(all.Commands, eff.Commands...)
		all.Scheduled = append(all.Scheduled, eff.Scheduled...)
		all.Cancelled = append(all.Cancelled, eff.Cancelled...)
	}
}

// Retry records an operator's retry of a failed compensation.
func (h *Harness[S]) Retry(ctx context.Context) (Effects, error) {
	rec := h.nextRecord(h.c.stream, typeCompensationRetried, []byte(`{}`))
	return h.run(ctx, rec, projection.Event{Record: rec})
}

func (h *Harness[S]) run(ctx context.Context, rec eventstore.Record, ev projection.Event) (Effects, error) {
	if err := h.c.handle(ctx, rec, ev, h.now); err != nil {
		return Effects{}, err
	}
	h.c.version += int64(len(h.c.pending)) + 1
	eff := Effects{Events: h.c.recorded, Status: h.c.meta.Status}
	for _, cmd := range h.c.commands {
		eff.Commands = append(eff.Commands, SentCommand{Name: cmd.Name, Data: cmd.Data, Compensation: cmd.Compensation})
		h.sent[cmd.Name] = append(h.sent[cmd.Name], cmd.ID)
		h.comp[cmd.ID] = cmd.Compensation
	}
	for _, t := range h.c.timers {
		if t.Due.IsZero() {
			eff.Cancelled = append(eff.Cancelled, t.Name)
		} else {
			eff.Scheduled = append(eff.Scheduled, ScheduledTimer{Name: t.Name, Due: t.Due})
		}
	}
	return eff, nil
}
