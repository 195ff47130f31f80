package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// WaitForStream is [Runner.WaitFor] for a write to stream streamID: for a
// partitioned projection it waits only for the stream's partition, so a
// write is confirmed as soon as its own partition has applied it whatever
// the others do (one halted, one moving to another runner). For a
// projection in one partition it is WaitFor.
func (r *Runner) WaitForStream(ctx context.Context, name, streamID string, pos eventstore.Position) error {
	s, ok := r.sups[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownProjection, name)
	}
	if !s.pr.p.partitioned() {
		return r.WaitFor(ctx, name, pos)
	}
	return r.waitPartitions(ctx, s, []int{PartitionOf(streamID, s.pr.p.Partitions)}, pos)
}

// waitPartitions waits until the given partitions (all when parts is nil)
// of the current build have applied pos, reading their checkpoints from
// the store and this runner's workers' progress.
func (r *Runner) waitPartitions(ctx context.Context, s *supervisor, parts []int, pos eventstore.Position) error {
	name, pr := s.pr.p.Name, s.pr
	delay := time.Millisecond
	for {
		changed := s.prog.snapshot().changed
		applied, err := r.partitionsReached(ctx, s, parts, pos)
		passing := err != nil && ctx.Err() == nil && r.e.transient(err)
		if err != nil && !passing {
			return fmt.Errorf("projection %q: wait for %s: %w", name, pos, err)
		}
		if err == nil && !applied.b.IsZero() {
			if !applied.low.Before(pos) {
				return r.deadLetterOfPartitions(ctx, pr, applied.b, parts, pos)
			}
			if err := r.haltedPartitions(ctx, pr, applied, parts, pos); err != nil {
				return err
			}
			done, err := r.partitionsIdle(ctx, pr, applied, parts, pos)
			if err != nil && (ctx.Err() != nil || !r.e.transient(err)) {
				return fmt.Errorf("projection %q: wait for %s: %w", name, pos, err)
			}
			if done {
				return nil
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("projection %q: wait for %s (applied %s): %w", name, pos, applied.low, ctx.Err())
		case <-changed:
			t.Stop()
		case <-t.C:
			delay = min(delay*2, 50*time.Millisecond)
		}
	}
}

// reached is how far the partitions waited on have come.
type reached struct {
	b      Build
	low    eventstore.Position
	states []PartitionState
}

func (r *Runner) partitionsReached(ctx context.Context, s *supervisor, parts []int, pos eventstore.Position) (reached, error) {
	reg, err := r.e.store.Registration(ctx, s.pr.p.Name)
	if err != nil || reg.Current.IsZero() {
		return reached{}, err
	}
	states, err := r.partitionsApplied(ctx, s, reg.Current)
	if err != nil {
		return reached{}, err
	}
	if len(states) == 0 {
		return reached{}, nil // not started anywhere yet
	}
	return reached{b: reg.Current, low: minCheckpoint(states, parts), states: states}, nil
}

// deadLetterOfPartitions returns a *DeadLetterError when the write at pos
// was dead-lettered (in the partitions waited on), else nil.
func (r *Runner) deadLetterOfPartitions(ctx context.Context, pr *proj, b Build, parts []int, pos eventstore.Position) error {
	dead, err := r.e.store.DeadLetters(ctx, pr.p.Name)
	if err != nil {
		return fmt.Errorf("projection %q: wait for %s: %w", pr.p.Name, pos, err)
	}
	for i := len(dead) - 1; i >= 0; i-- {
		dl := dead[i]
		if dl.Build == b && dl.Position.TxID == pos.TxID && !pos.Before(dl.Position) && inParts(pr, dl.StreamID, parts) {
			return &DeadLetterError{DeadLetter: dl, Policy: Skip}
		}
	}
	return nil
}

// haltedPartitions returns an error when a partition waited on is halted
// at or before pos.
func (r *Runner) haltedPartitions(ctx context.Context, pr *proj, at reached, parts []int, pos eventstore.Position) error {
	if pr.p.OnFailure != Halt {
		return nil
	}
	dead, err := r.e.store.DeadLetters(ctx, pr.p.Name)
	if err != nil {
		return fmt.Errorf("projection %q: wait for %s: %w", pr.p.Name, pos, err)
	}
	for _, dl := range dead {
		part := PartitionOf(dl.StreamID, pr.p.Partitions)
		if dl.Build != at.b || part >= len(at.states) || !inParts(pr, dl.StreamID, parts) ||
			!at.states[part].Checkpoint.Before(dl.Position) || pos.Before(dl.Position) {
			continue
		}
		if dl.Position.TxID == pos.TxID {
			return &DeadLetterError{DeadLetter: dl, Policy: Halt}
		}
		return fmt.Errorf("projection %q: wait for %s: partition %d %w at %s (event %s, %s, stream %q version %d): %s",
			pr.p.Name, pos, part, ErrHalted, dl.Position, dl.EventID, dl.Type, dl.StreamID, dl.StreamVersion, dl.Error)
	}
	return nil
}

func inParts(pr *proj, streamID string, parts []int) bool {
	if parts == nil {
		return true
	}
	p := PartitionOf(streamID, pr.p.Partitions)
	for _, q := range parts {
		if q == p {
			return true
		}
	}
	return false
}

// partitionsIdle reports whether pos is visible in the log and none of the
// partitions waited on (all when parts is nil) has a wanted event after its
// checkpoint and at or before pos: a partition that has nothing of its own
// to apply there has applied pos, however far behind its checkpoint is (a
// partition fed on its own, ADR 0020, moves its checkpoint over the other
// partitions' events only now and then). It reads at most maxPassScan
// records and then reports false, to look again.
func (r *Runner) partitionsIdle(ctx context.Context, pr *proj, at reached, parts []int, pos eventstore.Position) (bool, error) {
	head, err := r.e.events.Head(ctx)
	if err != nil {
		return false, err
	}
	if head.Before(pos) {
		return false, nil
	}
	n := 0
	for rec, err := range r.e.events.ReadAll(ctx, pr.readOpts(at.low, 0, 500)) {
		if err != nil {
			return false, err
		}
		if pos.Before(rec.Position) {
			return true, nil
		}
		part := PartitionOf(rec.StreamID, pr.p.Partitions)
		if inParts(pr, rec.StreamID, parts) && (part >= len(at.states) || at.states[part].Checkpoint.Before(rec.Position)) {
			return false, nil
		}
		if n++; n >= maxPassScan {
			return false, nil
		}
	}
	return true, nil
}
