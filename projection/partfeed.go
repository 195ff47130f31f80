package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// feedPassEvery is how long a partition's own feed stays silent before its
// worker looks in the log for how far it may move its checkpoint over the
// other partitions' records (see passIdle).
const feedPassEvery = 500 * time.Millisecond

// maxPassScan bounds the records one look at the log reads for passIdle
// and for WaitFor's check of idle partitions.
const maxPassScan = 5000

// partitionFeeds returns the runner's source as a [PartitionSource] when
// it can deliver this projection's partitions on their own, else nil (the
// set's reader feeds every worker, ADR 0019). Why not is logged.
func (pl *pipeline) partitionFeeds() PartitionSource {
	ps, ok := pl.e.opts.source.(PartitionSource)
	if !ok {
		return nil
	}
	if err := ps.SupportsPartitions(pl.pr.p.Partitions); err != nil {
		pl.e.log.Warn("the source cannot deliver this projection's partitions on their own; following the event store instead",
			"projection", pl.pr.p.Name, "partitions", pl.pr.p.Partitions, "err", err)
		return nil
	}
	return ps
}

// attach puts the worker on (or, detached, off) the set's reader's list,
// and starts the reader again with the workers it now feeds; it returns
// the reader's run whose batches the worker may take.
func (s *partitionSet) attach(w *partWorker, attached bool) uint64 {
	s.mu.Lock()
	w.detached = !attached
	s.mu.Unlock()
	return s.rereadFrom()
}

// runPartitionFeed runs one partition on its own feed (ADR 0020): it
// catches the partition up from the set's reader to the head of the log
// as it was when it started, then opens the source's feed of the partition
// after the checkpoint, checks the feed's first record against the log,
// and applies the feed's records. While the feed is silent, it moves the
// partition's checkpoint over the other partitions' records (passIdle). A
// feed that ends is an error: the worker starts again (work), catching up
// from the event store first.
func (s *partitionSet) runPartitionFeed(ctx context.Context, w *partWorker, a *applier) error {
	e, pr, part := s.pl.e, s.pl.pr, w.lease.Partition
	head, err := e.events.Head(ctx)
	if err != nil {
		return fmt.Errorf("projection %q: read head of the log: %w", pr.p.Name, err)
	}
	if a.at().Before(head) {
		err := s.fromReader(ctx, w, a, s.attach(w, true), func(idle bool) (bool, error) {
			at := a.at()
			if !at.Before(head) || !idle {
				return !at.Before(head), nil
			}
			// The reader paused: done when it has nothing wanted left up
			// to the head (the projection's filters may skip the head).
			for rec, err := range e.events.ReadAll(ctx, pr.readOpts(at, 1, 1)) {
				if err != nil {
					return false, fmt.Errorf("projection %q: read the log after %s: %w", pr.p.Name, at, err)
				}
				return head.Before(rec.Position), nil
			}
			return true, nil
		})
		s.attach(w, false)
		if err != nil {
			return err
		}
	}
	if err := s.fence(ctx, a); err != nil {
		return err
	}
	feed, err := s.feeds.Open(ctx, SourceRequest{Build: s.b, Types: pr.readTypes, Categories: pr.p.Categories,
		After: a.known, Partitions: s.n, Partition: part})
	if err != nil {
		return fmt.Errorf("projection %q: open source of %s partition %d: %w", pr.p.Name, s.b, part, err)
	}
	defer feed.Close()
	ch, bs := feed.Deliveries(), pr.p.batchSize()
	verified := false
	idle := time.NewTimer(feedPassEvery)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			if err := s.passIdle(ctx, a); err != nil {
				return err
			}
			idle.Reset(feedPassEvery)
		case d, ok := <-ch:
			if !ok {
				if err := feed.Err(); err != nil && ctx.Err() == nil {
					return fmt.Errorf("projection %q: source of %s partition %d ended: %w", pr.p.Name, s.b, part, err)
				}
				return ctx.Err()
			}
			batch := drain(ch, append(make([]Delivery, 0, bs), d), bs)
			if !verified {
				ok, err := s.verifyFirst(ctx, a, batch)
				if err != nil {
					nakAll(batch, 0)
					return err
				}
				verified = ok
			}
			if err := a.apply(ctx, batch); err != nil {
				return err
			}
			if a.known.Before(a.passed) {
				// The source delivered other partitions' records too.
				if err := a.pass(ctx); err != nil {
					return err
				}
			}
			idle.Reset(feedPassEvery)
		}
	}
}

// at is how far the applier has come: what it committed or passed.
func (a *applier) at() eventstore.Position {
	if a.known.Before(a.passed) {
		return a.passed
	}
	return a.known
}

// verifyFirst is the partition's [pipeline.verifyFirst]: the feed's first
// record of the partition after the checkpoint must be the partition's
// next record in the log, or the feed skipped one (a consumer started
// too late, a stream that lost messages): an error, to catch up from the
// event store again.
func (s *partitionSet) verifyFirst(ctx context.Context, a *applier, batch []Delivery) (bool, error) {
	var first *eventstore.Record
	for i := range batch {
		if a.at().Before(batch[i].Record.Position) && a.mine(batch[i].Record) {
			first = &batch[i].Record
			break
		}
	}
	if first == nil {
		return false, nil
	}
	rec, _, _, err := s.scan(ctx, a, a.at(), first.Position, false, 0)
	if err != nil {
		return false, err
	}
	if rec != nil {
		return false, fmt.Errorf("projection %q: the source's first record %s of %s partition %d skips %s after checkpoint %s; catching up from the event store",
			s.b.Name, describe(*first), s.b, a.lease.Partition, describe(*rec), a.at())
	}
	return true, nil
}

// passIdle moves the partition's checkpoint over the other partitions'
// records while its feed is silent, so that its checkpoint (and with it
// Status, WaitFor and a switch) does not stay at its own last record: up to
// the head of the log when the partition has nothing there, else up to the
// record before its next one. It reads at most maxPassScan records.
func (s *partitionSet) passIdle(ctx context.Context, a *applier) error {
	head, err := s.pl.e.events.Head(ctx)
	if err != nil {
		return fmt.Errorf("projection %q: read head of the log: %w", s.b.Name, err)
	}
	at := a.at()
	if !at.Before(head) {
		return nil
	}
	next, last, complete, err := s.scan(ctx, a, at, head, true, maxPassScan)
	if err != nil {
		return err
	}
	to := last
	if next == nil && complete {
		to = head
	}
	if at.Before(to) {
		a.passed = to
		a.prog.setApplied(to)
	}
	return a.pass(ctx)
}

// scan reads the log after from with the projection's filters, up to upTo
// (inclusive or not), and returns the first record of the applier's
// partition there (nil when none), the position of the last record read
// before it, and whether the read reached upTo (limit > 0 bounds the
// records read).
func (s *partitionSet) scan(ctx context.Context, a *applier, from, upTo eventstore.Position, inclusive bool, limit int) (*eventstore.Record, eventstore.Position, bool, error) {
	pr, last, n := s.pl.pr, from, 0
	for rec, err := range s.pl.e.events.ReadAll(ctx, pr.readOpts(from, 0, 500)) {
		if err != nil {
			return nil, last, false, fmt.Errorf("projection %q: read the log of %s partition %d after %s: %w", pr.p.Name, s.b, a.lease.Partition, from, err)
		}
		if upTo.Before(rec.Position) || (!inclusive && rec.Position == upTo) {
			return nil, last, true, nil
		}
		if a.mine(rec) {
			return &rec, last, true, nil
		}
		last = rec.Position
		if n++; limit > 0 && n >= limit {
			return nil, last, false, nil
		}
	}
	return nil, last, true, nil
}

// fence writes the partition's checkpoint (how far it has come) in a unit
// of work fenced by its lease, before its feed opens: a runner that lost
// the lease (paused past the TTL, and not told yet) fails here with
// ErrLeaseLost instead of re-creating the consumer the new owner reads.
func (s *partitionSet) fence(ctx context.Context, a *applier) error {
	name := s.b.Name
	u, err := a.begin(ctx)
	if err != nil {
		return fmt.Errorf("projection %q: begin unit of work on %s partition %d: %w", name, s.b, a.lease.Partition, err)
	}
	defer u.Rollback(context.WithoutCancel(ctx))
	to := u.Checkpoint()
	if to.Before(a.at()) {
		to = a.at()
	}
	if err := u.SetCheckpoint(ctx, to, 0); err != nil {
		return fmt.Errorf("projection %q: store checkpoint %s of %s partition %d: %w", name, to, s.b, a.lease.Partition, err)
	}
	if err := u.Commit(ctx); err != nil {
		return fmt.Errorf("projection %q: commit checkpoint %s of %s partition %d: %w", name, to, s.b, a.lease.Partition, err)
	}
	a.known, a.passed = to, to
	return nil
}
