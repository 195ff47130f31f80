package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Admin administers projections without running them: their status,
// rebuilds and dead letters, from the projections' code, the event store
// and the projection store. The CLI builds one with [NewAdmin]; a [Runner]
// has its own ([Runner.Admin]) that also reaches the projections it runs.
type Admin struct {
	e     *engine
	local *Runner // the runner whose projections this Admin also reaches; nil for none
}

// NewAdmin returns the administration of projections over an event store
// and a projection store. It validates its arguments like [NewRunner] and
// has no side effects.
func NewAdmin(events eventstore.Store, store Store, projections []Projection, opts ...Option) (*Admin, error) {
	e, err := newEngine(events, store, projections, opts)
	if err != nil {
		return nil, err
	}
	return &Admin{e: e}, nil
}

// Projections returns the names of the projections, in the order given.
func (a *Admin) Projections() []string { return append([]string(nil), a.e.order...) }

// Migrate creates or upgrades the tables of the projection store when it
// keeps any (projection/postgres, component "projection"); with a store
// that has none, such as [MemoryStore], it does nothing. It is idempotent
// and safe to run from several processes at once.
func (a *Admin) Migrate(ctx context.Context) error {
	if m, ok := a.e.store.(interface{ Migrate(context.Context) error }); ok {
		if err := m.Migrate(ctx); err != nil {
			return fmt.Errorf("projection: migrate: %w", err)
		}
	}
	return nil
}

// supervisor returns the local runner's supervisor of a projection that
// runs now, or nil.
func (a *Admin) supervisor(name string) *supervisor {
	if a.local == nil {
		return nil
	}
	s := a.local.sups[name]
	if s == nil || !s.prog.snapshot().running {
		return nil
	}
	return s
}

// resume wakes the local supervisor of a projection, if it runs here,
// after its dead letter of eventID was retried or discarded: it no longer
// counts as halted on it.
func (a *Admin) resume(name string, eventID uuid.UUID) {
	s := a.supervisor(name)
	if s == nil {
		return
	}
	s.prog.update(func(p *progress) {
		if p.halted != nil && p.halted.EventID == eventID {
			p.halted = nil
			if p.state == Halted {
				p.state = Starting
			}
		}
	})
	s.signal()
}

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
	for rec, err := range e.events.ReadAll(ctx, pr.readOpts(st.Checkpoint, MaxLagCount+1, 1000)) {
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

// Rebuild builds the projection again from the start of the log, beside the
// current build, and returns once the new build has caught up and become
// current (readers see the old build until then). The new build is a new
// generation of the projection's version, with its own tables (see
// [Build.Suffix]). When this Admin's runner runs the projection, Rebuild
// hands the work to it and waits (the runner keeps applying live events
// to the old build meanwhile, so readers do not fall behind); otherwise it
// does the work itself and returns after the switch. Either way the switch
// first catches the new build up to the old one's checkpoint, so readers
// never see the view go back. Progress goes to the [WithProgress]
// callback. If Rebuild is interrupted, the next Run or Rebuild resumes the
// build from its own checkpoint.
func (a *Admin) Rebuild(ctx context.Context, name string) error {
	e := a.e
	pr, err := e.proj(name)
	if err != nil {
		return err
	}
	reg, err := e.store.Registration(ctx, name)
	if err != nil {
		return fmt.Errorf("projection %q: rebuild: read registration: %w", name, err)
	}
	v := pr.p.version()
	b := Build{Name: name, Version: v}
	switch {
	case reg.Target.Version == v:
		b.Generation = reg.Target.Generation + 1
	case reg.Target.Version > v:
		return fmt.Errorf("projection %q: rebuild: registered version %d is newer than this code's version %d", name, reg.Target.Version, v)
	}
	if err := e.store.SetTarget(ctx, b); err != nil {
		return fmt.Errorf("projection %q: rebuild: register build %s: %w", name, b, err)
	}
	e.log.Info("projection rebuild requested", "projection", name, "build", b.String())
	s := a.supervisor(name)
	if s == nil {
		pl := e.newPipeline(pr, newProgress(nil), nil)
		pl.rebuildOnly = true
		if out := pl.run(ctx); out.kind != outSwitched {
			return fmt.Errorf("projection %q: rebuild %s: %w", name, b, out.err)
		}
		return nil
	}
	s.signal()
	for {
		reg, err := e.store.Registration(ctx, name)
		if err != nil {
			return fmt.Errorf("projection %q: rebuild: read registration: %w", name, err)
		}
		snap := s.prog.snapshot()
		// The switch is committed, but the runner may not have left the
		// old build yet: wait until it runs b as current (or runs no
		// longer b), so that status and WaitFor agree once this returns.
		switching := snap.running && snap.build == b && !snap.current
		if reg.Current == b && !switching {
			return nil
		}
		if reg.Target != b {
			return fmt.Errorf("projection %q: rebuild %s superseded by %s", name, b, reg.Target)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("projection %q: rebuild %s: %w", name, b, ctx.Err())
		case <-snap.changed:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

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

// blockedOn reports whether the first event p wants after cp is the one
// with id: the projection is halted on it.
func (a *Admin) blockedOn(ctx context.Context, pr *proj, cp eventstore.Position, id uuid.UUID) (bool, error) {
	for rec, err := range a.e.events.ReadAll(ctx, pr.readOpts(cp, 1, 1)) {
		if err != nil {
			return false, err
		}
		return rec.ID == id, nil
	}
	return false, nil
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
		u, err := a.e.store.Begin(ctx, b)
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
			blocked, err := a.blockedOn(ctx, pr, cp, rec.ID)
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
			if u, err := a.e.store.Begin(ctx, b); err == nil {
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
	u, err := a.e.store.Begin(ctx, b)
	if err != nil {
		return fmt.Errorf("projection %q: discard dead letter %s: begin: %w", name, eventID, err)
	}
	defer u.Rollback(context.WithoutCancel(ctx))
	if err := u.DeleteDeadLetter(ctx, eventID); err != nil {
		return fmt.Errorf("projection %q: discard dead letter %s: %w", name, eventID, err)
	}
	if cp := u.Checkpoint(); cp.Before(dl.Position) {
		blocked, err := a.blockedOn(ctx, pr, cp, dl.EventID)
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
