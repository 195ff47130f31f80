package projection

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/backoff"
)

// maxUnitTime bounds how long a unit of work applies events: once it has
// been open this long, it commits after the event at hand and the next one
// begins. A unit of work that has written holds a transaction ID, and with
// it every reader of a PostgreSQL event log (ADR 0008).
const maxUnitTime = 50 * time.Millisecond

// applier applies deliveries to one build: in units of work bounded by
// count and time, retrying a failing event in place (an outage of the store
// without counting attempts, a failing event up to MaxAttempts), then
// setting it aside as a dead letter by the projection's policy. It settles
// each delivery with its source and reports to a progress.
type applier struct {
	e    *engine
	pr   *proj
	b    Build
	prog *progress
	// pending holds the IDs of the build's dead letters the build has not
	// passed yet (it halted on them): applying one of them removes its dead
	// letter in the same unit of work, so that a later retry cannot apply
	// it a second time.
	pending map[uuid.UUID]bool
	// known is the checkpoint this applier last read or wrote; finding
	// another one in a unit of work means another runner shares the build.
	known eventstore.Position
	// lease, when set, makes this the applier of one partition: units of
	// work are fenced by the lease, and records of other partitions only
	// move the partition's checkpoint.
	lease *Lease
	// passed is how far a partition's applier has passed other
	// partitions' records without writing its checkpoint (see pass).
	passed eventstore.Position
}

// pass writes the checkpoint of a partition's applier up to the records of
// other partitions it passed without writing it, if any.
func (a *applier) pass(ctx context.Context) error {
	if !a.known.Before(a.passed) {
		return nil
	}
	name := a.pr.p.Name
	u, err := a.begin(ctx)
	if err != nil {
		return fmt.Errorf("projection %q: begin unit of work on %s: %w", name, a.b, err)
	}
	defer u.Rollback(context.WithoutCancel(ctx))
	if cp := u.Checkpoint(); cp.Before(a.passed) {
		if err := u.SetCheckpoint(ctx, a.passed, 0); err != nil {
			return fmt.Errorf("projection %q: store checkpoint %s: %w", name, a.passed, err)
		}
		if err := u.Commit(ctx); err != nil {
			return fmt.Errorf("projection %q: commit checkpoint %s: %w", name, a.passed, err)
		}
	}
	a.known = a.passed
	return nil
}

// begin opens a unit of work on the applier's build, or on its partition.
func (a *applier) begin(ctx context.Context) (UnitOfWork, error) {
	if a.lease != nil {
		return a.e.store.(PartitionStore).BeginPartition(ctx, *a.lease)
	}
	return a.e.store.Begin(ctx, a.b)
}

// mine reports whether rec belongs to the applier's partition (always, for
// an applier of a whole build).
func (a *applier) mine(rec eventstore.Record) bool {
	return a.lease == nil || PartitionOf(rec.StreamID, a.pr.p.Partitions) == a.lease.Partition
}

// newApplier returns an applier of b, loading the build's dead letters
// after its checkpoint cp.
func (e *engine) newApplier(ctx context.Context, pr *proj, b Build, cp eventstore.Position, prog *progress) (*applier, error) {
	dls, err := e.store.DeadLetters(ctx, pr.p.Name)
	if err != nil {
		return nil, fmt.Errorf("projection %q: list dead letters of %s: %w", pr.p.Name, b, err)
	}
	a := &applier{e: e, pr: pr, b: b, prog: prog, pending: map[uuid.UUID]bool{}, known: cp}
	for _, dl := range dls {
		if dl.Build == b && cp.Before(dl.Position) {
			a.pending[dl.EventID] = true
		}
	}
	return a, nil
}

// apply applies deliveries in order: in units of work when the store is
// atomic, else (or when that fails) one by one with retries. It settles
// each delivery. It returns an error wrapping ErrHalted when the projection
// halts on a dead letter.
func (a *applier) apply(ctx context.Context, ds []Delivery) (err error) {
	ctx, op := a.e.tel.StartBatch(ctx, a.pr.p.Name, a.b.String(), len(ds), func(i int) eventstore.Metadata { return ds[i].Record.Metadata })
	defer func() { op.End(a.prog.snapshot().applied, err) }()
	if a.e.store.Atomic() && len(ds) > 1 {
		for len(ds) > 0 {
			var n int
			if n, err = a.tryTx(ctx, ds); err != nil {
				break
			}
			for _, d := range ds[:n] {
				ack(d)
			}
			ds = ds[n:]
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			nakAll(ds, 0)
			return ctx.Err()
		}
		if errors.Is(err, ErrLeaseLost) {
			nakAll(ds, 0)
			return err
		}
		a.e.log.Debug("batch failed; applying its events one by one", "projection", a.pr.p.Name, "err", err)
	}
	for i, d := range ds {
		if err := a.applyOne(ctx, d); err != nil {
			nakAll(ds[i+1:], a.e.opts.backoff.First)
			return err
		}
	}
	return nil
}

func ack(d Delivery) {
	if d.Acker != nil {
		_ = d.Acker.Ack()
	}
}

func nakAll(ds []Delivery, delay time.Duration) {
	for _, d := range ds {
		if d.Acker != nil {
			_ = d.Acker.Nak(delay)
		}
	}
}

// applyOne applies one delivery, retrying with backoff, and dead-letters it
// after MaxAttempts.
func (a *applier) applyOne(ctx context.Context, d Delivery) error {
	maxAttempts := a.pr.p.maxAttempts()
	outages := backoff.Attempts{Policy: a.e.opts.backoff}
	var err error
	for attempt := 1; ; attempt++ {
		if _, err = a.tryTx(ctx, []Delivery{d}); err == nil {
			ack(d)
			return nil
		}
		if ctx.Err() != nil {
			nakAll([]Delivery{d}, 0)
			return ctx.Err()
		}
		if errors.Is(err, ErrLeaseLost) {
			nakAll([]Delivery{d}, 0)
			return err
		}
		var wait time.Duration
		if a.e.transient(err) {
			// The store, not the event: retry in place without counting
			// an attempt against the event.
			attempt--
			a.prog.update(func(p *progress) { p.lastErr = err })
			a.e.log.Warn("store unavailable; retrying", "projection", a.pr.p.Name, "err", err)
			wait = outages.Next()
		} else {
			if attempt >= maxAttempts {
				break
			}
			a.e.log.Warn("event failed; retrying", "projection", a.pr.p.Name, "stream", d.Record.StreamID,
				"version", d.Record.StreamVersion, "type", d.Record.Type, "attempt", attempt, "err", err)
			wait = a.e.opts.backoff.Delay(attempt)
		}
		a.e.tel.Retried(a.pr.p.Name, a.e.transient(err))
		if d.Acker != nil {
			_ = d.Acker.InProgress()
		}
		if err := backoff.Sleep(ctx, wait, nil); err != nil {
			nakAll([]Delivery{d}, 0)
			return err
		}
	}
	return a.deadLetter(ctx, d, err, maxAttempts)
}

// deadLetter records d as a dead letter. With Skip the checkpoint moves past
// it in the same unit of work; with Halt it returns an error wrapping
// ErrHalted and a *DeadLetterError.
func (a *applier) deadLetter(ctx context.Context, d Delivery, cause error, attempts int) error {
	rec, name := d.Record, a.pr.p.Name
	dl := deadLetterOf(a.b, rec, cause, attempts, time.Now().UTC())
	u, err := a.begin(ctx)
	if err != nil {
		return fmt.Errorf("projection %q: begin dead letter of %s: %w", name, describe(rec), err)
	}
	defer u.Rollback(context.WithoutCancel(ctx))
	if err := u.AddDeadLetter(ctx, dl); err != nil {
		return fmt.Errorf("projection %q: record dead letter of %s: %w", name, describe(rec), err)
	}
	skip := a.pr.p.OnFailure == Skip
	if skip && u.Checkpoint().Before(rec.Position) {
		if err := u.SetCheckpoint(ctx, rec.Position, 0); err != nil {
			return fmt.Errorf("projection %q: checkpoint past dead letter %s: %w", name, describe(rec), err)
		}
	}
	if err := u.Commit(ctx); err != nil {
		return fmt.Errorf("projection %q: commit dead letter of %s: %w", name, describe(rec), err)
	}
	a.e.log.Error("event dead-lettered", "projection", name, "stream", rec.StreamID, "version", rec.StreamVersion,
		"type", rec.Type, "position", rec.Position.String(), "attempts", attempts, "policy", a.pr.p.OnFailure.String(), "err", cause)
	if pub := a.e.opts.publisher; pub != nil {
		if err := pub.PublishDeadLetter(dl); err != nil {
			a.e.log.Warn("publish dead letter", "projection", name, "err", err)
		}
	}
	a.prog.addDead(dl)
	a.e.tel.DeadLettered(name)
	if skip {
		if d.Acker != nil {
			_ = d.Acker.Term("dead-lettered: " + cause.Error())
		}
		if a.known.Before(rec.Position) {
			a.known = rec.Position
		}
		a.prog.setApplied(rec.Position)
		return nil
	}
	if d.Acker != nil {
		_ = d.Acker.Nak(a.e.opts.haltPoll)
	}
	return &DeadLetterError{DeadLetter: dl, Policy: Halt}
}

// tryTx applies deliveries in one unit of work, skipping those at or before
// the checkpoint, and commits with the new checkpoint, written last. It
// stops early, after the first delivery that finds the unit of work open
// for maxUnitTime, and returns how many deliveries it committed. The
// failure of a partition's unit of work wraps ErrLeaseLost when the lease
// moved meanwhile (see fenced).
func (a *applier) tryTx(ctx context.Context, ds []Delivery) (int, error) {
	n, err := a.tryUnit(ctx, ds)
	return n, a.fenced(ctx, err)
}

// fenced returns err, the failure of a unit of work, wrapping ErrLeaseLost
// as well when the applier works on a partition whose lease another
// runner now holds. A unit of work that lost its lease can fail before its
// fence is checked: its handler's writes may clash with the new owner's
// (a unique key of the read model, the same events applied), and that
// failure must stop the worker as the fence would, not be retried or
// dead-lettered under a lease the runner no longer holds.
func (a *applier) fenced(ctx context.Context, err error) error {
	if a.lease == nil || err == nil || ctx.Err() != nil || errors.Is(err, ErrLeaseLost) {
		return err
	}
	states, serr := a.e.store.(PartitionStore).Partitions(ctx, a.b)
	if serr != nil || a.lease.Partition >= len(states) {
		return err // the failure stands; the next unit's fence decides
	}
	if l := states[a.lease.Partition].Lease; l.Owner != a.lease.Owner || l.Epoch != a.lease.Epoch {
		return fmt.Errorf("projection %q: %s partition %d: %w: held by %q at epoch %d, not by %q at epoch %d; the unit of work failed first: %w",
			a.pr.p.Name, a.b, a.lease.Partition, ErrLeaseLost, l.Owner, l.Epoch, a.lease.Owner, a.lease.Epoch, err)
	}
	return err
}

// tryUnit is tryTx without the lease check of its failure.
func (a *applier) tryUnit(ctx context.Context, ds []Delivery) (int, error) {
	name := a.pr.p.Name
	u, err := a.begin(ctx)
	if err != nil {
		return 0, &infraError{fmt.Errorf("projection %q: begin unit of work on %s: %w", name, a.b, err)}
	}
	defer u.Rollback(context.WithoutCancel(ctx))
	began := time.Now()
	cp := u.Checkpoint()
	if cp != a.known && !a.prog.snapshot().shared {
		a.prog.update(func(p *progress) { p.shared = true })
	}
	a.known = cp
	last, applied, taken := cp, 0, 0
	var resolved []uuid.UUID
	for _, d := range ds {
		if taken > 0 && time.Since(began) >= maxUnitTime {
			break
		}
		taken++
		rec := d.Record
		if !last.Before(rec.Position) {
			continue // applied already: a redelivery
		}
		if !a.mine(rec) {
			last = rec.Position // another partition's: passed
			continue
		}
		n, err := a.e.handle(ctx, a.pr, u.Handlers(), rec)
		if err != nil {
			return 0, err
		}
		applied += n
		last = rec.Position
		if a.pending[rec.ID] {
			if err := u.DeleteDeadLetter(ctx, rec.ID); err != nil {
				return 0, fmt.Errorf("projection %q: remove the dead letter of %s, now applied: %w", name, describe(rec), err)
			}
			resolved = append(resolved, rec.ID)
		}
	}
	if last == cp {
		a.e.tel.Applied(name, taken)
		a.prog.setApplied(cp) // another runner of the build may have moved it
		return taken, nil
	}
	if applied == 0 && a.lease != nil {
		// Only other partitions' records: remember how far, written by
		// pass when the feed pauses or with this partition's next event.
		a.passed = last
		a.e.tel.Applied(name, taken)
		a.prog.setApplied(last)
		return taken, nil
	}
	if err := u.SetCheckpoint(ctx, last, applied); err != nil {
		return 0, fmt.Errorf("projection %q: store checkpoint %s: %w", name, last, err)
	}
	if err := u.Commit(ctx); err != nil {
		return 0, fmt.Errorf("projection %q: commit %d events up to %s: %w", name, applied, last, err)
	}
	for _, id := range resolved {
		delete(a.pending, id)
	}
	a.known = last
	a.e.tel.Applied(name, taken)
	a.prog.setApplied(last)
	return taken, nil
}

// handle brings rec to the current schema, keeps what the projection
// wants, decodes it and runs the handler on each resulting event, turning a
// panic into an error. It returns the number of handler calls.
func (e *engine) handle(ctx context.Context, pr *proj, tx Tx, rec eventstore.Record) (n int, err error) {
	p := pr.p
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("projection %q: handler panicked on %s: %v\n%s", p.Name, describe(rec), v, debug.Stack())
		}
	}()
	if !p.wantsCategory(rec) {
		return 0, nil
	}
	dec := e.opts.decoder
	if ud, ok := dec.(UpcastingDecoder); ok {
		if !ud.NeedsUpcast(rec) {
			if !p.wantsType(rec.Type) {
				return 0, nil
			}
			return e.decodeAndHandle(ctx, p, tx, dec, rec)
		}
		recs, err := ud.Upcast(rec)
		if err != nil {
			return 0, fmt.Errorf("projection %q: upcast %s: %w", p.Name, describe(rec), err)
		}
		for _, up := range recs {
			if !p.wantsType(up.Type) {
				continue
			}
			k, err := e.decodeAndHandle(ctx, p, tx, dec, up)
			n += k
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}
	if !p.wantsType(rec.Type) {
		return 0, nil
	}
	if dec == nil {
		if err := p.Handler.Handle(ctx, tx, Event{Record: rec}); err != nil {
			return 0, fmt.Errorf("projection %q: handle %s: %w", p.Name, describe(rec), err)
		}
		return 1, nil
	}
	return e.decodeAndHandle(ctx, p, tx, dec, rec)
}

// decodeAndHandle decodes rec and runs the handler on each value, with rec
// as the event's record.
func (e *engine) decodeAndHandle(ctx context.Context, p Projection, tx Tx, dec Decoder, rec eventstore.Record) (int, error) {
	vals, err := dec.Decode(rec)
	if err != nil {
		return 0, fmt.Errorf("projection %q: decode %s: %w", p.Name, describe(rec), err)
	}
	for i, v := range vals {
		if err := p.Handler.Handle(ctx, tx, Event{Data: v, Record: rec}); err != nil {
			return i, fmt.Errorf("projection %q: handle %s: %w", p.Name, describe(rec), err)
		}
	}
	return len(vals), nil
}

// infraError marks a failure of the store itself (beginning a unit of
// work), never the event's fault.
type infraError struct{ err error }

func (e *infraError) Error() string { return e.err.Error() }
func (e *infraError) Unwrap() error { return e.err }

// transient reports whether err is a passing failure of the store rather
// than one caused by the event.
func (e *engine) transient(err error) bool {
	var ie *infraError
	if errors.As(err, &ie) {
		return true
	}
	if tc, ok := e.store.(TransientChecker); ok {
		return tc.Transient(err)
	}
	return false
}
