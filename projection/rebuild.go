package projection

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Rebuild builds the projection again from the start of the log, beside the
// current build, and returns once the new build has caught up and become
// current (readers see the old build until then; when Run is running in
// this runner, it keeps applying live events to the old build meanwhile,
// so readers do not fall behind). The new build is a new
// generation of the projection's version, with its own tables (see
// [Build.Suffix]). When Run is running in this runner, Rebuild hands the
// work to it and waits; otherwise it does the work itself and returns after
// the switch. Progress goes to the [WithProgress] callback. If Rebuild is
// interrupted, the next Run or Rebuild resumes the build from its own
// checkpoint; the current build only receives live events until the
// switch.
func (r *Runner) Rebuild(ctx context.Context, name string) error {
	w, err := r.worker(name)
	if err != nil {
		return err
	}
	reg, err := r.store.Registration(ctx, name)
	if err != nil {
		return fmt.Errorf("projection %q: rebuild: read registration: %w", name, err)
	}
	v := w.p.version()
	b := Build{Name: name, Version: v}
	switch {
	case reg.Target.Version == v:
		b.Generation = reg.Target.Generation + 1
	case reg.Target.Version > v:
		return fmt.Errorf("projection %q: rebuild: registered version %d is newer than this code's version %d", name, reg.Target.Version, v)
	}
	if err := r.store.SetTarget(ctx, b); err != nil {
		return fmt.Errorf("projection %q: rebuild: register build %s: %w", name, b, err)
	}
	r.log.Info("projection rebuild requested", "projection", name, "build", b.String())
	w.mu.Lock()
	running := w.runningIn
	w.mu.Unlock()
	if !running {
		defer w.setState(Stopped)
		if err := w.runOnce(ctx, true); err != nil {
			if errors.Is(err, errFatal) {
				return err
			}
			return fmt.Errorf("projection %q: rebuild %s: %w", name, b, err)
		}
		return nil
	}
	w.signal()
	for {
		reg, err := r.store.Registration(ctx, name)
		if err != nil {
			return fmt.Errorf("projection %q: rebuild: read registration: %w", name, err)
		}
		w.mu.Lock()
		changed := w.changed
		// The switch is committed, but the worker may not have left the
		// old build yet: wait until it runs b as current (or runs no
		// longer b), so that status and WaitFor agree once this returns.
		switching := w.runningIn && w.build == b && !w.current
		w.mu.Unlock()
		if reg.Current == b && !switching {
			return nil
		}
		if reg.Target != b {
			return fmt.Errorf("projection %q: rebuild %s superseded by %s", name, b, reg.Target)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("projection %q: rebuild %s: %w", name, b, ctx.Err())
		case <-changed:
		case <-time.After(200 * time.Millisecond):
		}
	}
}
