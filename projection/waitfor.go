package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// WaitFor returns nil once the projection's current build has applied every
// event it wants up to and including pos (the Position of an
// [eventstore.AppendResult], for read-your-writes), or with ctx's error. An
// event the projection does not want counts as applied once every wanted
// event before it is. The current build is the one the store says readers
// see: when this runner does not run it (another process does, or newer
// code elsewhere has switched builds), WaitFor follows the checkpoint the
// store keeps for it.
//
// A caller waiting for its own write learns promptly when the write did not
// reach the read model: when an event of pos's transaction (the append
// that returned pos) went to the dead letters, WaitFor returns a
// *[DeadLetterError] (matching [ErrDeadLettered], and [ErrHalted] too when
// the projection halted on it); when the projection halted on an earlier
// event, it returns an error wrapping [ErrHalted].
//
// For a partitioned projection WaitFor waits for every partition (one
// halted makes it return ErrHalted); [Runner.WaitForStream] waits only for
// the written stream's partition.
func (r *Runner) WaitFor(ctx context.Context, name string, pos eventstore.Position) (err error) {
	s, ok := r.sups[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownProjection, name)
	}
	ctx, op := r.e.tel.StartWaitFor(ctx, name, pos)
	defer op.End(&err)
	pr := s.pr
	if pr.p.partitioned() {
		return r.waitPartitions(ctx, s, nil, pos)
	}
	delay := time.Millisecond
	// pause waits before the next look: until the projection's progress
	// changes, the delay passes (doubling up to 100 ms), or ctx ends.
	pause := func(changed <-chan struct{}, applied eventstore.Position) error {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("projection %q: wait for %s (applied %s): %w", name, pos, applied, ctx.Err())
		case <-changed:
		case <-t.C:
			delay = min(delay*2, 100*time.Millisecond)
		}
		return nil
	}
	// passing reports whether a failed read of a store is worth another
	// look: a lost connection or a server restarting is not the caller's
	// answer (the projection itself retries such failures in place).
	passing := func(err error) bool { return ctx.Err() == nil && r.e.transient(err) }
	for {
		snap := s.prog.snapshot()
		local := snap.running && snap.current && !snap.build.IsZero()
		applied, build, dead, halted := snap.applied, snap.build, snap.dead, snap.halted
		if snap.state != Halted {
			halted = nil
		}
		if local && !applied.Before(pos) {
			// Readers see the store's current build: make sure it is still
			// this runner's (newer code elsewhere may have switched).
			reg, err := r.e.store.Registration(ctx, name)
			if err != nil {
				if passing(err) {
					if err := pause(nil, applied); err != nil {
						return err
					}
					continue
				}
				return fmt.Errorf("projection %q: wait for %s: %w", name, pos, err)
			}
			if reg.Current != snap.build {
				local = false
				s.signal() // run on what the store says now
			}
		}
		if !local {
			var err error
			if applied, build, dead, halted, err = r.stored(ctx, pr); err != nil {
				if passing(err) {
					if err := pause(nil, applied); err != nil {
						return err
					}
					continue
				}
				return fmt.Errorf("projection %q: wait for %s: %w", name, pos, err)
			}
			if snap.running {
				// Starting here: the store's dead letter may be applied
				// by this runner's (fixed) code in a moment.
				halted = nil
			}
		}
		if !applied.Before(pos) {
			if local && snap.shared && deadLetterOfWrite(dead, build, pos) == nil {
				// Another runner of the build may have set the write aside.
				var err error
				if dead, err = r.e.store.DeadLetters(ctx, name); err != nil {
					if passing(err) {
						if err := pause(nil, applied); err != nil {
							return err
						}
						continue
					}
					return fmt.Errorf("projection %q: wait for %s: %w", name, pos, err)
				}
			}
			if dl := deadLetterOfWrite(dead, build, pos); dl != nil && !applied.Before(dl.Position) {
				return &DeadLetterError{DeadLetter: *dl, Policy: Skip}
			}
			return nil
		}
		if halted != nil && !pos.Before(halted.Position) {
			if halted.Position.TxID == pos.TxID {
				return &DeadLetterError{DeadLetter: *halted, Policy: Halt}
			}
			return fmt.Errorf("projection %q: wait for %s: %w at %s (event %s, %s, stream %q version %d): %s",
				name, pos, ErrHalted, halted.Position, halted.EventID, halted.Type, halted.StreamID, halted.StreamVersion, halted.Error)
		}
		done, err := r.nothingWanted(ctx, pr, applied, pos)
		if err != nil && !passing(err) {
			return fmt.Errorf("projection %q: wait for %s: %w", name, pos, err)
		}
		if done {
			return nil
		}
		if err := pause(snap.changed, applied); err != nil {
			return err
		}
	}
}

// stored reads what the store says of the projection's current build: its
// checkpoint, its dead letters, and the one it is halted on (the first
// after the checkpoint, with policy Halt).
func (r *Runner) stored(ctx context.Context, pr *proj) (applied eventstore.Position, b Build, dead []DeadLetter, halted *DeadLetter, err error) {
	reg, err := r.e.store.Registration(ctx, pr.p.Name)
	if err != nil || reg.Current.IsZero() {
		return applied, b, nil, nil, err
	}
	b = reg.Current
	if applied, err = r.e.store.Checkpoint(ctx, b); err != nil {
		return applied, b, nil, nil, err
	}
	if dead, err = r.e.store.DeadLetters(ctx, pr.p.Name); err != nil {
		return applied, b, nil, nil, err
	}
	if pr.p.OnFailure == Halt {
		for i := range dead {
			if dead[i].Build == b && applied.Before(dead[i].Position) {
				halted = &dead[i]
				break
			}
		}
	}
	return applied, b, dead, halted, nil
}

// deadLetterOfWrite returns the dead letter of b of an event written by
// pos's transaction, at or before pos; nil when there is none.
func deadLetterOfWrite(dead []DeadLetter, b Build, pos eventstore.Position) *DeadLetter {
	for i := len(dead) - 1; i >= 0; i-- {
		dl := &dead[i]
		if dl.Build == b && dl.Position.TxID == pos.TxID && !pos.Before(dl.Position) {
			return dl
		}
	}
	return nil
}

// nothingWanted reports whether pos is visible in the log and no event p
// wants lies after applied and at or before pos.
func (r *Runner) nothingWanted(ctx context.Context, pr *proj, applied, pos eventstore.Position) (bool, error) {
	if len(pr.readTypes) == 0 && len(pr.p.Categories) == 0 {
		return false, nil
	}
	head, err := r.e.events.Head(ctx)
	if err != nil {
		return false, err
	}
	if head.Before(pos) {
		return false, nil
	}
	for rec, err := range r.e.events.ReadAll(ctx, pr.readOpts(applied, 1, 1)) {
		if err != nil {
			return false, err
		}
		return pos.Before(rec.Position), nil
	}
	return true, nil
}
