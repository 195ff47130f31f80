package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// outcomeKind is how one run of a build pipeline ended.
type outcomeKind int

const (
	// outStopped: its context ended.
	outStopped outcomeKind = iota
	// outRestart: it was asked to start over (a build registered or
	// switched elsewhere, a dead letter retried or discarded).
	outRestart
	// outHalted: it halted on a dead letter (policy Halt).
	outHalted
	// outFailed: it failed; the supervisor retries with backoff.
	outFailed
	// outIdle: newer code runs the projection elsewhere.
	outIdle
	// outSwitched: a rebuild-only run switched to its build.
	outSwitched
)

// outcome is what a run of a build pipeline returns to its supervisor.
type outcome struct {
	kind outcomeKind
	err  error
	dl   *DeadLetterError // the dead letter it halted on
}

var (
	errRestart = errors.New("projection: restart requested")
	errIdle    = errors.New("projection: a newer version is registered")
)

// pipeline runs one projection's build: setup, catch-up from the event
// store, the switch when the build is not current yet, then live records
// from the source. One pipeline serves a supervisor (run after run), an
// explicit rebuild outside Run (rebuildOnly), or the follower that keeps
// the current build live beside a rebuild (follow).
type pipeline struct {
	e    *engine
	pr   *proj
	prog *progress
	// restart, when it receives, makes the run start over; nil for none.
	restart <-chan struct{}
	// rebuildOnly stops after the switch, with outSwitched.
	rebuildOnly bool
	// follower marks the pipeline of a follower: it reports no catch-up
	// progress.
	follower bool

	mu      sync.Mutex
	retired map[Build]bool // builds released from the source
}

func (e *engine) newPipeline(pr *proj, prog *progress, restart <-chan struct{}) *pipeline {
	return &pipeline{e: e, pr: pr, prog: prog, restart: restart, retired: map[Build]bool{}}
}

// run runs the pipeline once and says how it ended.
func (pl *pipeline) run(ctx context.Context) outcome {
	err := pl.runBuild(ctx)
	var dle *DeadLetterError
	switch {
	case ctx.Err() != nil:
		return outcome{kind: outStopped, err: ctx.Err()}
	case err == nil && pl.rebuildOnly:
		return outcome{kind: outSwitched}
	case errors.Is(err, errRestart):
		return outcome{kind: outRestart}
	case errors.Is(err, errIdle):
		return outcome{kind: outIdle, err: err}
	case errors.As(err, &dle) && dle.Policy == Halt:
		return outcome{kind: outHalted, err: err, dl: dle}
	case err == nil:
		return outcome{kind: outRestart}
	}
	return outcome{kind: outFailed, err: err}
}

// resolveBuild decides which build this runner works on; zero when newer
// code runs the projection elsewhere.
func (pl *pipeline) resolveBuild(ctx context.Context) (Build, Registration, error) {
	st, p := pl.e.store, pl.pr.p
	reg, err := st.Registration(ctx, p.Name)
	if err != nil {
		return Build{}, reg, fmt.Errorf("projection %q: read registration: %w", p.Name, err)
	}
	v := p.version()
	switch {
	case reg.Target.IsZero() || reg.Target.Version < v:
		b := Build{Name: p.Name, Version: v}
		if err := st.SetTarget(ctx, b); err != nil {
			return Build{}, reg, fmt.Errorf("projection %q: register build %s: %w", p.Name, b, err)
		}
		reg.Target = b
		return b, reg, nil
	case reg.Target.Version == v:
		return reg.Target, reg, nil
	case reg.Current.Version == v:
		// Newer code is rebuilding elsewhere; keep the current build fresh
		// until it switches.
		return reg.Current, reg, nil
	}
	return Build{}, reg, nil
}

func (pl *pipeline) runBuild(ctx context.Context) error {
	p := pl.pr.p
	b, reg, err := pl.resolveBuild(ctx)
	if err != nil {
		return err
	}
	if b.IsZero() {
		return fmt.Errorf("%w: projection %q version %d, registered %s", errIdle, p.Name, p.version(), reg.Target)
	}
	fresh := reg.Current.IsZero()
	current := reg.Current == b || fresh
	state := Starting
	if !current {
		state = Rebuilding
	}
	cp, err := pl.e.store.Checkpoint(ctx, b)
	if err != nil {
		return fmt.Errorf("projection %q: read checkpoint of %s: %w", p.Name, b, err)
	}
	a, err := pl.e.newApplier(ctx, pl.pr, b, cp, pl.prog)
	if err != nil {
		return err
	}
	pl.prog.update(func(pr *progress) {
		pr.build, pr.current, pr.state, pr.applied, pr.lastErr, pr.halted, pr.dead = b, current, state, cp, nil, nil, nil
	})
	if err := pl.setup(ctx, b, fresh); err != nil {
		return err
	}
	if p.partitioned() {
		return pl.runPartitionedBuild(ctx, b, reg, current)
	}
	stopFollower := func() {}
	if !current && !pl.rebuildOnly && reg.Current.Version == b.Version {
		// An explicit rebuild of this code's version: readers see the
		// current build until the switch, so keep it live meanwhile.
		stopFollower = pl.keepLive(ctx, reg.Current)
		defer stopFollower()
	}
	if cp, err = pl.catchUp(ctx, a, cp, !current); err != nil {
		return err
	}
	if !current {
		if cp, err = pl.switchTo(ctx, a, cp, reg.Current); err != nil {
			return err
		}
		// The switch is committed: b is the live build now, and the old
		// one must be left before live retires it from the source.
		stopFollower()
		pl.prog.update(func(pr *progress) {
			pr.current, pr.applied = true, cp
			if !pl.rebuildOnly {
				pr.state = Running
			}
		})
		pl.e.log.Info("projection build switched", "projection", p.Name, "build", b.String())
	}
	if pl.rebuildOnly {
		return nil
	}
	return pl.live(ctx, a, cp, retiredBuild(reg, b))
}

// setup runs the projection's Setup in its own unit of work (a panic in it
// is an error) and, for the first build of a projection, makes it current.
func (pl *pipeline) setup(ctx context.Context, b Build, activate bool) (err error) {
	p := pl.pr.p
	if p.Setup == nil && !activate {
		return nil
	}
	u, err := pl.e.store.Begin(ctx, b)
	if err != nil {
		return fmt.Errorf("projection %q: begin setup of %s: %w", p.Name, b, err)
	}
	defer u.Rollback(context.WithoutCancel(ctx))
	if p.Setup != nil {
		if err := callSetup(ctx, p, u.Handlers()); err != nil {
			return fmt.Errorf("projection %q: setup of %s: %w", p.Name, b, err)
		}
	}
	if activate {
		if err := u.Activate(ctx, p.Tables); err != nil {
			return fmt.Errorf("projection %q: activate %s: %w", p.Name, b, err)
		}
	}
	if err := u.Commit(ctx); err != nil {
		return fmt.Errorf("projection %q: commit setup of %s: %w", p.Name, b, err)
	}
	return nil
}

func callSetup(ctx context.Context, p Projection, tx Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("Setup panicked: %v", v)
		}
	}()
	return p.Setup(ctx, tx)
}
