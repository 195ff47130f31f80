package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// WaitFor returns once the projection's current build has applied every
// event it wants up to and including pos (the Position of an
// [eventstore.AppendResult], for read-your-writes), or with ctx's error. An
// event the projection does not want counts as applied once every wanted
// event before it is. When this runner is not running the projection,
// WaitFor follows the checkpoint another process stores.
func (r *Runner) WaitFor(ctx context.Context, name string, pos eventstore.Position) error {
	w, err := r.worker(name)
	if err != nil {
		return err
	}
	delay := time.Millisecond
	for {
		w.mu.Lock()
		changed := w.changed
		local := w.runningIn && w.current && !w.build.IsZero()
		applied := w.applied
		w.mu.Unlock()
		if !local {
			reg, err := r.store.Registration(ctx, name)
			if err != nil {
				return fmt.Errorf("projection %q: wait for %s: %w", name, pos, err)
			}
			applied = eventstore.Position{}
			if !reg.Current.IsZero() {
				if applied, err = r.store.Checkpoint(ctx, reg.Current); err != nil {
					return fmt.Errorf("projection %q: wait for %s: %w", name, pos, err)
				}
			}
		}
		if !applied.Before(pos) {
			return nil
		}
		done, err := r.nothingWanted(ctx, w, applied, pos)
		if err != nil {
			return fmt.Errorf("projection %q: wait for %s: %w", name, pos, err)
		}
		if done {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("projection %q: wait for %s (applied %s): %w", name, pos, applied, ctx.Err())
		case <-changed:
			t.Stop()
		case <-t.C:
			delay = min(delay*2, 100*time.Millisecond)
		}
	}
}

// nothingWanted reports whether pos is visible in the log and no event p
// wants lies after applied and at or before pos.
func (r *Runner) nothingWanted(ctx context.Context, w *worker, applied, pos eventstore.Position) (bool, error) {
	if len(w.readTypes) == 0 && len(w.p.Categories) == 0 {
		return false, nil
	}
	head, err := r.events.Head(ctx)
	if err != nil {
		return false, err
	}
	if head.Before(pos) {
		return false, nil
	}
	for rec, err := range r.events.ReadAll(ctx, eventstore.ReadAllOptions{After: applied, Types: w.readTypes, Categories: w.p.Categories, Limit: 1, BatchSize: 1}) {
		if err != nil {
			return false, err
		}
		return pos.Before(rec.Position), nil
	}
	return true, nil
}
