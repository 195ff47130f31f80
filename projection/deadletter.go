package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
)

// DeadLetters lists a projection's dead letters in log order.
func (a *Admin) DeadLetters(ctx context.Context, name string) ([]DeadLetter, error) {
	if _, err := a.e.proj(name); err != nil {
		return nil, err
	}
	dls, err := a.e.store.DeadLetters(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("projection %q: list dead letters: %w", name, err)
	}
	return dls, nil
}

func (a *Admin) findDeadLetter(ctx context.Context, name string, eventID uuid.UUID) (*proj, DeadLetter, Build, error) {
	pr, err := a.e.proj(name)
	if err != nil {
		return nil, DeadLetter{}, Build{}, err
	}
	dls, err := a.DeadLetters(ctx, name)
	if err != nil {
		return nil, DeadLetter{}, Build{}, err
	}
	for _, dl := range dls {
		if dl.EventID == eventID {
			reg, err := a.e.store.Registration(ctx, name)
			if err != nil {
				return nil, dl, Build{}, fmt.Errorf("projection %q: read registration: %w", name, err)
			}
			b := reg.Target
			if b.IsZero() {
				b = dl.Build
			}
			return pr, dl, b, nil
		}
	}
	return nil, DeadLetter{}, Build{}, fmt.Errorf("%w: projection %q, event %s", ErrDeadLetterNotFound, name, eventID)
}

// blockedOn reports whether the first event p wants after cp (in partition
// part when part >= 0) is the one with id: the projection (the partition)
// is halted on it.
func (a *Admin) blockedOn(ctx context.Context, pr *proj, cp eventstore.Position, id uuid.UUID, part int) (bool, error) {
	limit := 1
	if part >= 0 {
		limit = 0
	}
	for rec, err := range a.e.events.ReadAll(ctx, pr.readOpts(cp, limit, 256)) {
		if err != nil {
			return false, err
		}
		if part >= 0 && PartitionOf(rec.StreamID, pr.p.Partitions) != part {
			continue
		}
		return rec.ID == id, nil
	}
	return false, nil
}

// begin opens the unit of work in which a dead letter of stream streamID
// is retried or discarded: on build b, or for a partitioned projection on
// the stream's partition, fenced by its lease as it stands (its owner is
// halted on the dead letter, or the partition is free), so that an owner
// taking it over meanwhile makes the commit fail rather than race. It
// returns the partition, -1 for none.
func (a *Admin) begin(ctx context.Context, pr *proj, b Build, streamID string) (UnitOfWork, int, error) {
	if !pr.p.partitioned() {
		u, err := a.e.store.Begin(ctx, b)
		return u, -1, err
	}
	ps := a.e.store.(PartitionStore)
	states, err := ps.Partitions(ctx, b)
	if err != nil {
		return nil, -1, err
	}
	part := PartitionOf(streamID, pr.p.Partitions)
	if part >= len(states) {
		return nil, -1, fmt.Errorf("projection %q: build %s has no partition %d", pr.p.Name, b, part)
	}
	u, err := ps.BeginPartition(ctx, states[part].Lease)
	return u, part, err
}

// RetryDeadLetter applies a dead letter again through the projection's
// handler and removes it on success. When the projection halted on it, the
// checkpoint moves past it and the projection resumes (also when it runs in
// another process, within its halt poll interval). When the projection has
// not reached the event yet (a rebuild), the dead letter is only removed:
// the event will be applied in turn. When a build other than the one that
// dead-lettered the event has already applied it (a rebuild with a fixed
// handler), the dead letter is only removed too, so the event is never
// applied twice. On failure the dead letter stays, with the new error and
// one more attempt.
func (a *Admin) RetryDeadLetter(ctx context.Context, name string, eventID uuid.UUID) error {
	pr, dl, b, err := a.findDeadLetter(ctx, name, eventID)
	if err != nil {
		return err
	}
	rec, err := a.readEvent(ctx, dl)
	if err != nil {
		return err
	}
	applyErr := func() error {
		u, part, err := a.begin(ctx, pr, b, dl.StreamID)
		if err != nil {
			return fmt.Errorf("projection %q: retry dead letter %s: begin: %w", name, describe(rec), err)
		}
		defer u.Rollback(context.WithoutCancel(ctx))
		cp := u.Checkpoint()
		switch {
		case !cp.Before(rec.Position) && dl.Build != b:
			// b passed the event without dead-lettering it (its own dead
			// letter would name it): b applied it, so only remove the
			// dead letter of the older build.
		case !cp.Before(rec.Position):
			if _, err := a.e.handle(ctx, pr, u.Handlers(), rec); err != nil {
				return err
			}
		default:
			blocked, err := a.blockedOn(ctx, pr, cp, rec.ID, part)
			if err != nil {
				return fmt.Errorf("projection %q: retry dead letter %s: %w", name, describe(rec), err)
			}
			if blocked {
				n, err := a.e.handle(ctx, pr, u.Handlers(), rec)
				if err != nil {
					return err
				}
				if err := u.DeleteDeadLetter(ctx, eventID); err != nil {
					return fmt.Errorf("projection %q: retry dead letter %s: delete: %w", name, describe(rec), err)
				}
				if err := u.SetCheckpoint(ctx, rec.Position, n); err != nil {
					return fmt.Errorf("projection %q: retry dead letter %s: checkpoint: %w", name, describe(rec), err)
				}
				if err := u.Commit(ctx); err != nil {
					return fmt.Errorf("projection %q: retry dead letter %s: commit: %w", name, describe(rec), err)
				}
				return nil
			}
		}
		if err := u.DeleteDeadLetter(ctx, eventID); err != nil {
			return fmt.Errorf("projection %q: retry dead letter %s: delete: %w", name, describe(rec), err)
		}
		if err := u.Commit(ctx); err != nil {
			return fmt.Errorf("projection %q: retry dead letter %s: commit: %w", name, describe(rec), err)
		}
		return nil
	}()
	if applyErr != nil {
		if ctx.Err() == nil {
			dl.Attempts++
			dl.Error = applyErr.Error()
			dl.FailedAt = time.Now().UTC()
			if u, _, err := a.begin(ctx, pr, b, dl.StreamID); err == nil {
				if u.AddDeadLetter(ctx, dl) == nil {
					_ = u.Commit(ctx)
				}
				_ = u.Rollback(ctx)
			}
		}
		return applyErr
	}
	a.resume(name, eventID)
	return nil
}

// DiscardDeadLetter removes a dead letter without applying it. When the
// projection halted on it, its checkpoint moves past it and it resumes.
func (a *Admin) DiscardDeadLetter(ctx context.Context, name string, eventID uuid.UUID) error {
	pr, dl, b, err := a.findDeadLetter(ctx, name, eventID)
	if err != nil {
		return err
	}
	u, part, err := a.begin(ctx, pr, b, dl.StreamID)
	if err != nil {
		return fmt.Errorf("projection %q: discard dead letter %s: begin: %w", name, eventID, err)
	}
	defer u.Rollback(context.WithoutCancel(ctx))
	if err := u.DeleteDeadLetter(ctx, eventID); err != nil {
		return fmt.Errorf("projection %q: discard dead letter %s: %w", name, eventID, err)
	}
	if cp := u.Checkpoint(); cp.Before(dl.Position) {
		blocked, err := a.blockedOn(ctx, pr, cp, dl.EventID, part)
		if err != nil {
			return fmt.Errorf("projection %q: discard dead letter %s: %w", name, eventID, err)
		}
		if blocked {
			if err := u.SetCheckpoint(ctx, dl.Position, 0); err != nil {
				return fmt.Errorf("projection %q: discard dead letter %s: checkpoint: %w", name, eventID, err)
			}
		}
	}
	if err := u.Commit(ctx); err != nil {
		return fmt.Errorf("projection %q: discard dead letter %s: commit: %w", name, eventID, err)
	}
	a.resume(name, eventID)
	return nil
}

func (a *Admin) readEvent(ctx context.Context, dl DeadLetter) (eventstore.Record, error) {
	for rec, err := range a.e.events.ReadStream(ctx, dl.StreamID, eventstore.ReadStreamOptions{From: dl.StreamVersion, Limit: 1}) {
		if err != nil {
			return rec, fmt.Errorf("projection %q: read dead-lettered event %s (stream %q version %d): %w",
				dl.Projection, dl.EventID, dl.StreamID, dl.StreamVersion, err)
		}
		if rec.ID != dl.EventID {
			break
		}
		return rec, nil
	}
	return eventstore.Record{}, fmt.Errorf("projection %q: dead-lettered event %s not found at stream %q version %d",
		dl.Projection, dl.EventID, dl.StreamID, dl.StreamVersion)
}
