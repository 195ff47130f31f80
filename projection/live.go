package projection

import (
	"context"
	"fmt"

	"github.com/chronicle-go/chronicle/eventstore"
)

// retiredBuild returns the build whose source resources may be released
// once b is live: the build this run switched from, or the one that was
// current before b when another process made the switch; zero when none.
// reg is the registration as read before any switch of this run.
func retiredBuild(reg Registration, b Build) Build {
	if !reg.Current.IsZero() && reg.Current != b {
		return reg.Current // this run switched from it
	}
	if reg.Current == b && !reg.Previous.IsZero() && reg.Previous != b && reg.Previous != reg.Target {
		return reg.Previous
	}
	return Build{}
}

// retire releases what the source keeps for old, once; best effort.
func (pl *pipeline) retire(ctx context.Context, old Build) {
	rt, ok := pl.e.opts.source.(Retirer)
	if !ok || old.IsZero() {
		return
	}
	pl.mu.Lock()
	done := pl.retired[old]
	pl.mu.Unlock()
	if done {
		return
	}
	p := pl.pr.p
	if err := rt.Retire(ctx, old); err != nil {
		if ctx.Err() == nil {
			pl.e.log.Warn("could not release the source of an old build; it is tried again at the next start",
				"projection", p.Name, "build", old.String(), "err", err)
		}
		return
	}
	pl.mu.Lock()
	pl.retired[old] = true
	pl.mu.Unlock()
	pl.e.log.Info("released the source of an old build", "projection", p.Name, "build", old.String())
}

// live applies records from the source until ctx ends or a restart.
// Once the feed is open, it retires the old build from the source.
func (pl *pipeline) live(ctx context.Context, a *applier, cp eventstore.Position, old Build) error {
	p := pl.pr.p
	feed, err := pl.e.opts.source.Open(ctx, SourceRequest{Build: a.b, Types: pl.pr.readTypes, Categories: p.Categories, After: cp})
	if err != nil {
		return fmt.Errorf("projection %q: open source: %w", p.Name, err)
	}
	defer feed.Close()
	// Running (and, the first time, Ready) only once the feed is open: a
	// source that creates its consumer in Open (JetStream) has it by then.
	pl.prog.update(func(pr *progress) { pr.state = Running })
	pl.retire(ctx, old)
	ch := feed.Deliveries()
	bs := p.batchSize()
	batch := make([]Delivery, 0, bs)
	verified := false
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pl.restart:
			return errRestart
		case d, ok := <-ch:
			if !ok {
				if err := feed.Err(); err != nil && ctx.Err() == nil {
					return fmt.Errorf("projection %q: source ended: %w", p.Name, err)
				}
				return ctx.Err()
			}
			batch = append(batch, d)
		}
		batch = drain(ch, batch, bs)
		if !verified {
			ok, err := pl.verifyFirst(ctx, a.b, &cp, batch)
			if err != nil {
				nakAll(batch, 0)
				return err
			}
			verified = ok
		}
		if err := a.apply(ctx, batch); err != nil {
			return err
		}
	}
}

// verifyFirst checks, once per feed, that the feed's first delivery after
// the checkpoint is the next record the projection wants from the log.
// Within a feed the source guarantees that nothing is skipped (the
// JetStream feed stops on a gap in its consumer sequence), but not before
// its first delivery: another process sharing the durable consumer may hold
// an earlier record it has not applied yet, and applying a later one first
// would move the checkpoint past it for good. It reports whether the check
// was made (false when every delivery was at or before the checkpoint), and
// an error, to catch up from the event store again, when the log holds a
// wanted record between the checkpoint and that delivery.
func (pl *pipeline) verifyFirst(ctx context.Context, b Build, cp *eventstore.Position, batch []Delivery) (bool, error) {
	p := pl.pr.p
	var first *eventstore.Record
	for i := range batch {
		if cp.Before(batch[i].Record.Position) {
			first = &batch[i].Record
			break
		}
	}
	if first == nil {
		return false, nil
	}
	stored, err := pl.e.store.Checkpoint(ctx, b)
	if err != nil {
		return false, fmt.Errorf("projection %q: read checkpoint of %s: %w", p.Name, b, err)
	}
	if cp.Before(stored) {
		*cp = stored
	}
	if !cp.Before(first.Position) {
		return true, nil // another runner of the build applied it
	}
	for rec, err := range pl.e.events.ReadAll(ctx, pl.pr.readOpts(*cp, 1, 1)) {
		if err != nil {
			return false, fmt.Errorf("projection %q: check the source's first record against the log: %w", p.Name, err)
		}
		if rec.Position.Before(first.Position) {
			return false, fmt.Errorf("projection %q: the source's first record %s skips %s after checkpoint %s (held by another consumer?); catching up from the event store",
				p.Name, describe(*first), describe(rec), *cp)
		}
	}
	return true, nil
}

// drain appends to batch what ch holds now, without waiting, until batch
// has limit deliveries or ch is empty or closed.
func drain(ch <-chan Delivery, batch []Delivery, limit int) []Delivery {
	for len(batch) < limit {
		select {
		case d, ok := <-ch:
			if !ok {
				return batch
			}
			batch = append(batch, d)
		default:
			return batch
		}
	}
	return batch
}
