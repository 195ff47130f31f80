package projection

import (
	"context"
	"fmt"

	"github.com/chronicle-go/chronicle/eventstore"
)

// switchTo makes a's build current. It first opens a unit of work on the
// current build, from, which holds from's checkpoint lock until the switch
// has committed (so from's runners, here or elsewhere, cannot move it
// meanwhile) and reads from's checkpoint; then, in the switch's unit of
// work, it applies to the new build the events up to that checkpoint it has
// not applied yet, and activates it: the switch never shows readers a build
// behind what they already saw. It returns the new build's checkpoint.
func (pl *pipeline) switchTo(ctx context.Context, a *applier, cp eventstore.Position, from Build) (eventstore.Position, error) {
	p, b := pl.pr.p, a.b
	var held eventstore.Position
	if !from.IsZero() && from != b {
		uf, err := pl.e.store.Begin(ctx, from)
		if err != nil {
			return cp, fmt.Errorf("projection %q: switch to %s: hold the checkpoint of %s: %w", p.Name, b, from, err)
		}
		defer uf.Rollback(context.WithoutCancel(ctx))
		held = uf.Checkpoint()
	}
	u, err := pl.e.store.Begin(ctx, b)
	if err != nil {
		return cp, fmt.Errorf("projection %q: begin switch to %s: %w", p.Name, b, err)
	}
	defer u.Rollback(context.WithoutCancel(ctx))
	start := u.Checkpoint()
	last, applied := start, 0
	if last.Before(held) {
		for rec, err := range pl.e.events.ReadAll(ctx, pl.pr.readOpts(last, 0, 256)) {
			if err != nil {
				return cp, fmt.Errorf("projection %q: switch to %s: read the log after %s: %w", p.Name, b, last, err)
			}
			if held.Before(rec.Position) {
				break
			}
			n, err := pl.e.handle(ctx, pl.pr, u.Handlers(), rec)
			if err != nil {
				return cp, fmt.Errorf("projection %q: switch to %s: catch up to %s (%s): %w", p.Name, b, from, held, err)
			}
			if a.pending[rec.ID] {
				if err := u.DeleteDeadLetter(ctx, rec.ID); err != nil {
					return cp, fmt.Errorf("projection %q: switch to %s: %w", p.Name, b, err)
				}
			}
			applied += n
		}
		last = held
	}
	if err := u.Activate(ctx, p.Tables); err != nil {
		return cp, fmt.Errorf("projection %q: switch to %s: %w", p.Name, b, err)
	}
	if last != start {
		if err := u.SetCheckpoint(ctx, last, applied); err != nil {
			return cp, fmt.Errorf("projection %q: switch to %s: store checkpoint %s: %w", p.Name, b, last, err)
		}
	}
	if err := u.Commit(ctx); err != nil {
		return cp, fmt.Errorf("projection %q: commit switch to %s: %w", p.Name, b, err)
	}
	a.known = last
	if cp.Before(last) {
		cp = last
	}
	return cp, nil
}
