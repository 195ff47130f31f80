package projection

import (
	"context"
	"fmt"
	"time"
)

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
