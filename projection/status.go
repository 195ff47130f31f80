package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// MaxLagCount is the most events Status counts when it measures a
// projection's lag; a larger lag is reported as MaxLagCount with LagCapped.
const MaxLagCount = 10000

// Status is a snapshot of one projection, for operators.
type Status struct {
	// Name is the projection's name.
	Name string
	// Version is the version of the projection in this runner's code.
	Version int
	// Current is the build readers see; Target the build under way (equal
	// to Current unless rebuilding).
	Current, Target Build
	// State is what the projection is doing: in this runner when it runs
	// it; otherwise as the freshest alive heartbeat of another runner says
	// (see [Heartbeat.Alive]); otherwise Rebuilding while a build other
	// than the current one is registered, else Stopped.
	State State
	// Heartbeat is the heartbeat that speaks for the projection (the
	// freshest alive one, else the freshest one): the runner's Owner and
	// when it was last seen (SeenAt). It is zero when the store records
	// none.
	Heartbeat Heartbeat
	// Checkpoint is the position of the last event Target has applied.
	Checkpoint eventstore.Position
	// Head is the last position of the log readers can see.
	Head eventstore.Position
	// Lag is the number of events after Checkpoint that the projection
	// reads (those of its Categories, and of its Types unless its decoder
	// upcasts, see [Projection.Types]), counted up to MaxLagCount (then
	// LagCapped is set).
	Lag       int
	LagCapped bool
	// LagTime is how long ago the oldest event not applied yet was
	// recorded; zero when there is none.
	LagTime time.Duration
	// DeadLetters is the number of dead letters.
	DeadLetters int
	// HeldBack is the number of committed events that readers of the log
	// cannot see yet because an older transaction is still open, and
	// OldestOpen how long that transaction has been open, when the event
	// store reports it (see [WithLogStatus]).
	HeldBack   int64
	OldestOpen time.Duration
	// LastError is the last error that stopped or halted the projection.
	LastError string
}

// LogStatusFunc reports how far readers of the event log are held back by
// an old open transaction: the number of committed events not yet
// visible, and how long the oldest open transaction has been open.
type LogStatusFunc func(ctx context.Context) (heldBack int64, oldestOpen time.Duration, err error)

// WithLogStatus lets Status report how far an old open transaction holds
// readers back; projection/postgres adapts the PostgreSQL event store's
// Status to it.
func WithLogStatus(f LogStatusFunc) Option { return func(o *options) { o.logStatus = f } }

// Status returns a snapshot of every projection, in the order given to
// NewRunner.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	head, err := r.events.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("projection: status: read head of the log: %w", err)
	}
	var held int64
	var oldest time.Duration
	if r.opts.logStatus != nil {
		if held, oldest, err = r.opts.logStatus(ctx); err != nil {
			return nil, fmt.Errorf("projection: status: read log status: %w", err)
		}
	}
	out := make([]Status, 0, len(r.order))
	for _, name := range r.order {
		st, err := r.status(ctx, r.workers[name], head)
		if err != nil {
			return nil, err
		}
		st.HeldBack, st.OldestOpen = held, oldest
		out = append(out, st)
	}
	return out, nil
}

func (r *Runner) status(ctx context.Context, w *worker, head eventstore.Position) (Status, error) {
	name := w.p.Name
	reg, err := r.store.Registration(ctx, name)
	if err != nil {
		return Status{}, fmt.Errorf("projection %q: status: %w", name, err)
	}
	w.mu.Lock()
	st := Status{Name: name, Version: w.p.version(), Current: reg.Current, Target: reg.Target, State: w.state, Head: head}
	if w.lastErr != nil {
		st.LastError = w.lastErr.Error()
	}
	w.mu.Unlock()
	if !reg.Target.IsZero() {
		if st.Checkpoint, err = r.store.Checkpoint(ctx, reg.Target); err != nil {
			return Status{}, fmt.Errorf("projection %q: status: %w", name, err)
		}
	}
	if hs, ok := r.store.(HeartbeatStore); ok {
		hbs, err := hs.Heartbeats(ctx, name)
		if err != nil {
			return Status{}, fmt.Errorf("projection %q: status: read heartbeats: %w", name, err)
		}
		now := time.Now()
		st.Heartbeat = pickHeartbeat(hbs, now)
		if st.State == Stopped && st.Heartbeat.Alive(now) {
			st.State = st.Heartbeat.State
		}
	}
	if st.State == Stopped && reg.Rebuilding() {
		st.State = Rebuilding
	}
	opts := eventstore.ReadAllOptions{After: st.Checkpoint, Types: w.readTypes, Categories: w.p.Categories, Limit: MaxLagCount + 1, BatchSize: 1000}
	for rec, err := range r.events.ReadAll(ctx, opts) {
		if err != nil {
			return Status{}, fmt.Errorf("projection %q: status: count lag: %w", name, err)
		}
		if st.Lag == 0 && !rec.RecordedAt.IsZero() {
			st.LagTime = max(time.Since(rec.RecordedAt), 0)
		}
		st.Lag++
	}
	if st.Lag > MaxLagCount {
		st.Lag, st.LagCapped = MaxLagCount, true
	}
	dls, err := r.store.DeadLetters(ctx, name)
	if err != nil {
		return Status{}, fmt.Errorf("projection %q: status: list dead letters: %w", name, err)
	}
	st.DeadLetters = len(dls)
	return st, nil
}
