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
	// LagCapped is set), plus HeldBack: events committed but held back
	// from every reader by an old open transaction are not applied either
	// (they are counted whatever their stream or type).
	Lag       int
	LagCapped bool
	// LagTime is how long ago the oldest event not applied yet was
	// recorded; zero when there is none. While events are held back, it is
	// at least OldestOpen: they committed after that transaction began,
	// and no reader sees them.
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
	// Partitions holds each partition of a partitioned projection's
	// target build, by partition; nil for a projection in one partition.
	// Checkpoint is then the lowest of theirs and Lag their sum.
	Partitions []PartitionStatus
}

// PartitionStatus is the status of one partition of a partitioned
// projection.
type PartitionStatus struct {
	// Partition is the partition's number.
	Partition int
	// Owner is the runner holding its lease ("" when none); Alive says
	// whether the lease was unexpired when read.
	Owner string
	Alive bool
	// Epoch is the lease's fencing epoch; Expires its end.
	Epoch   int64
	Expires time.Time
	// State is what this runner's worker of the partition does, when it
	// owns it; empty otherwise.
	State State
	// LastError is that worker's last error, if any.
	LastError string
	// Checkpoint is the position up to which it has applied every event
	// of its streams; Applied counts its handler calls.
	Checkpoint eventstore.Position
	Applied    int64
	// Lag counts the events of its streams after its checkpoint, capped
	// at MaxLagCount events read in all.
	Lag       int
	LagCapped bool
}

// LogStatusFunc reports how far readers of the event log are held back by
// an old open transaction: the number of committed events not yet
// visible, and how long the oldest open transaction has been open.
type LogStatusFunc func(ctx context.Context) (heldBack int64, oldestOpen time.Duration, err error)

// HeldBackReporter is implemented by an event store that can say how far
// an old open transaction holds readers of its log back: the committed
// events not yet visible and how long the oldest open transaction has been
// open. When the runner's event store is one and no [WithLogStatus] is
// given, Status uses it.
type HeldBackReporter interface {
	HeldBack(ctx context.Context) (events int64, oldestOpen time.Duration, err error)
}

// WithLogStatus lets Status report how far an old open transaction holds
// readers back (and count those events as lag); projection/postgres adapts
// the PostgreSQL event store's Status to it (projpg.LogStatus). An event
// store that is a [HeldBackReporter] needs none.
func WithLogStatus(f LogStatusFunc) Option { return func(o *options) { o.logStatus = f } }

// Status returns a snapshot of every projection, in the order given.
func (a *Admin) Status(ctx context.Context) ([]Status, error) {
	e := a.e
	head, err := e.events.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("projection: status: read head of the log: %w", err)
	}
	var held int64
	var oldest time.Duration
	if e.opts.logStatus != nil {
		if held, oldest, err = e.opts.logStatus(ctx); err != nil {
			return nil, fmt.Errorf("projection: status: read log status: %w", err)
		}
	}
	out := make([]Status, 0, len(e.order))
	for _, name := range e.order {
		st, err := a.status(ctx, e.projs[name], head)
		if err != nil {
			return nil, err
		}
		st.HeldBack, st.OldestOpen = held, oldest
		if held > 0 {
			st.Lag += int(held)
			st.LagTime = max(st.LagTime, oldest)
		}
		out = append(out, st)
	}
	return out, nil
}

func (a *Admin) status(ctx context.Context, pr *proj, head eventstore.Position) (Status, error) {
	e, name := a.e, pr.p.Name
	reg, err := e.store.Registration(ctx, name)
	if err != nil {
		return Status{}, fmt.Errorf("projection %q: status: %w", name, err)
	}
	st := Status{Name: name, Version: pr.p.version(), Current: reg.Current, Target: reg.Target, State: Stopped, Head: head}
	if a.local != nil {
		snap := a.local.sups[name].prog.snapshot()
		st.State = snap.state
		if snap.lastErr != nil {
			st.LastError = snap.lastErr.Error()
		}
	}
	if !reg.Target.IsZero() {
		if st.Checkpoint, err = e.store.Checkpoint(ctx, reg.Target); err != nil {
			return Status{}, fmt.Errorf("projection %q: status: %w", name, err)
		}
	}
	if hs, ok := e.store.(HeartbeatStore); ok {
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
	if pr.p.partitioned() && !reg.Target.IsZero() {
		if err := a.partitionStatus(ctx, pr, reg.Target, &st); err != nil {
			return Status{}, fmt.Errorf("projection %q: status of partitions: %w", name, err)
		}
	}
	for rec, err := range e.events.ReadAll(ctx, pr.readOpts(st.Checkpoint, MaxLagCount+1, 1000)) {
		if st.Partitions != nil {
			break // counted by partition
		}
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
	dls, err := e.store.DeadLetters(ctx, name)
	if err != nil {
		return Status{}, fmt.Errorf("projection %q: status: list dead letters: %w", name, err)
	}
	st.DeadLetters = len(dls)
	return st, nil
}

// partitionStatus fills st.Partitions for partitioned build b, and st.Lag
// as the sum of the partitions' lags, from one read of the log after the
// lowest checkpoint.
func (a *Admin) partitionStatus(ctx context.Context, pr *proj, b Build, st *Status) error {
	states, err := a.e.store.(PartitionStore).Partitions(ctx, b)
	if err != nil {
		return err
	}
	now := time.Now()
	var set *partitionSet
	if a.local != nil {
		if s := a.local.sups[pr.p.Name]; s != nil {
			s.prog.mu.Lock()
			set = s.prog.parts
			s.prog.mu.Unlock()
		}
	}
	st.Partitions = make([]PartitionStatus, len(states))
	for i, ps := range states {
		l := ps.Lease
		pst := PartitionStatus{Partition: l.Partition, Owner: l.Owner, Epoch: l.Epoch, Expires: l.Expires,
			Alive: l.Owner != "" && l.Expires.After(now), Checkpoint: ps.Checkpoint, Applied: ps.Applied}
		if set != nil && set.b == b {
			if wp := set.local(l.Partition); wp != nil {
				snap := wp.snapshot()
				pst.State = snap.state
				if snap.lastErr != nil {
					pst.LastError = snap.lastErr.Error()
				}
				if pst.Checkpoint.Before(snap.applied) {
					pst.Checkpoint = snap.applied
				}
			}
		}
		st.Partitions[i] = pst
	}
	low := minCheckpoint(states, nil)
	st.Lag, st.LagTime = 0, 0
	read := 0
	for rec, err := range a.e.events.ReadAll(ctx, pr.readOpts(low, MaxLagCount+1, 1000)) {
		if err != nil {
			return fmt.Errorf("count lag: %w", err)
		}
		read++
		if read > MaxLagCount {
			st.LagCapped = true
			for i := range st.Partitions {
				st.Partitions[i].LagCapped = true
			}
			break
		}
		p := PartitionOf(rec.StreamID, pr.p.Partitions)
		if p >= len(st.Partitions) || !st.Partitions[p].Checkpoint.Before(rec.Position) {
			continue
		}
		if st.Lag == 0 && !rec.RecordedAt.IsZero() {
			st.LagTime = max(time.Since(rec.RecordedAt), 0)
		}
		st.Partitions[p].Lag++
		st.Lag++
	}
	return nil
}
