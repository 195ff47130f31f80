package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/backoff"
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
	pl.prog.update(func(pr *progress) { pr.state = Running })
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
	if cp.Before(last) {
		cp = last
	}
	return cp, nil
}

// keepLive starts a follower that applies live records to cur, the build
// readers see, while this pipeline builds a new generation of the same
// version beside it; it returns a function, safe to call more than once,
// that stops the follower and waits for it. The follower commits cur's
// checkpoint with its writes like any runner of cur, so each event is
// still applied once per build. It retries failures with backoff and stops
// for good when cur halts on a dead letter (the rebuild goes on; cur then
// stays as it was until the switch).
func (pl *pipeline) keepLive(ctx context.Context, cur Build) (stop func()) {
	fprog := newProgress(nil)
	fprog.wake = pl.prog // WaitFor waiters of the projection follow cur
	f := &pipeline{e: pl.e, pr: pl.pr, prog: fprog, follower: true, retired: map[Build]bool{}}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.follow(fctx, cur, pl.prog)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

// follow keeps cur live until ctx ends; parent learns when it is.
func (pl *pipeline) follow(ctx context.Context, cur Build, parent *progress) {
	p := pl.pr.p
	pl.e.log.Info("keeping the current build live during the rebuild", "projection", p.Name, "build", cur.String())
	restarts := backoff.Attempts{Policy: pl.e.opts.restartPolicy()}
	for {
		err := pl.followOnce(ctx, cur, parent)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrHalted) {
			pl.e.log.Error("current build halted on a dead letter during a rebuild; it is not updated until the switch",
				"projection", p.Name, "build", cur.String(), "err", err)
			parent.markStarted()
			<-ctx.Done()
			return
		}
		d := restarts.Next()
		pl.e.log.Warn("keeping the current build live failed; restarting", "projection", p.Name,
			"build", cur.String(), "err", err, "in", d)
		if backoff.Sleep(ctx, d, nil) != nil {
			return
		}
	}
}

func (pl *pipeline) followOnce(ctx context.Context, cur Build, parent *progress) error {
	cp, err := pl.e.store.Checkpoint(ctx, cur)
	if err != nil {
		return fmt.Errorf("projection %q: read checkpoint of %s: %w", pl.pr.p.Name, cur, err)
	}
	a, err := pl.e.newApplier(ctx, pl.pr, cur, cp, pl.prog)
	if err != nil {
		return err
	}
	pl.prog.update(func(pr *progress) { pr.build, pr.current, pr.state, pr.applied = cur, true, Running, cp })
	if cp, err = pl.catchUp(ctx, a, cp, false); err != nil {
		return err
	}
	parent.markStarted()
	return pl.live(ctx, a, cp, Build{})
}

// retiredBuild returns the build whose source resources may be released
// once b is live: the build this run switched from, or the one that was
// current before b when another process made the switch; zero when none.
// reg is the registration as read before any switch of this run.
func retiredBuild(reg Registration, b Build) Build {
	if !reg.Current.IsZero() && reg.Current != b {
		return reg.Current // this run switched from it
	}
	if reg.Current == b && !reg.Previous.IsZero() && reg.Previous != b && reg.Previous != reg.Target {
		return reg.Previous
	}
	return Build{}
}

// retire releases what the source keeps for old, once; best effort.
func (pl *pipeline) retire(ctx context.Context, old Build) {
	rt, ok := pl.e.opts.source.(Retirer)
	if !ok || old.IsZero() {
		return
	}
	pl.mu.Lock()
	done := pl.retired[old]
	pl.mu.Unlock()
	if done {
		return
	}
	p := pl.pr.p
	if err := rt.Retire(ctx, old); err != nil {
		if ctx.Err() == nil {
			pl.e.log.Warn("could not release the source of an old build; it is tried again at the next start",
				"projection", p.Name, "build", old.String(), "err", err)
		}
		return
	}
	pl.mu.Lock()
	pl.retired[old] = true
	pl.mu.Unlock()
	pl.e.log.Info("released the source of an old build", "projection", p.Name, "build", old.String())
}

// catchUp applies the history after cp straight from the event store, in
// batches, until a pass finds little left. It reports progress.
func (pl *pipeline) catchUp(ctx context.Context, a *applier, cp eventstore.Position, rebuild bool) (eventstore.Position, error) {
	e, p := pl.e, pl.pr.p
	bs := max(e.opts.catchUpBatch, p.batchSize())
	head, err := e.events.Head(ctx)
	if err != nil {
		return cp, fmt.Errorf("projection %q: read head of the log: %w", p.Name, err)
	}
	start, began := cp, time.Now()
	var applied int64
	lastReport := time.Time{}
	report := func(pos eventstore.Position, finished bool) {
		if e.opts.progress == nil || pl.follower || (!finished && time.Since(lastReport) < 200*time.Millisecond) {
			return
		}
		lastReport = time.Now()
		total := int64(head.Seq) - int64(start.Seq)
		done := int64(pos.Seq) - int64(start.Seq)
		total = max(total, done, 0)
		done = max(done, 0)
		el := time.Since(began).Seconds()
		pr := Progress{Build: a.b, Rebuild: rebuild, Done: done, Total: total, Applied: applied, Finished: finished}
		if el > 0 {
			pr.Rate = float64(applied) / el
			if done > 0 {
				pr.ETA = time.Duration(float64(total-done) * el / float64(done) * float64(time.Second))
			}
		}
		e.opts.progress(pr)
	}
	for pass := 0; ; pass++ {
		n, err := pl.catchUpPass(ctx, a, &cp, bs, func(k int) {
			applied += int64(k)
			report(cp, false)
		})
		if err != nil {
			return cp, err
		}
		if n < bs || pass >= 20 {
			break
		}
		if h, err := e.events.Head(ctx); err == nil && head.Before(h) {
			head = h
		}
	}
	report(cp, true)
	return cp, nil
}

// catchUpPass reads the log after *cp to its end, in batches of bs, on a
// goroutine that reads the next batch while this one applies the last.
func (pl *pipeline) catchUpPass(ctx context.Context, a *applier, cp *eventstore.Position, bs int, done func(int)) (int, error) {
	rctx, cancel := context.WithCancel(ctx)
	type batch struct {
		ds  []Delivery
		err error
	}
	ch := make(chan batch, 2)
	defer func() {
		// Stop the reader and wait for it, so that no read of the log
		// outlives the pass (nor Run).
		cancel()
		for range ch {
		}
	}()
	go func() {
		defer close(ch)
		send := func(bt batch) bool {
			select {
			case ch <- bt:
				return true
			case <-rctx.Done():
				return false
			}
		}
		cur := make([]Delivery, 0, bs)
		for rec, err := range pl.e.events.ReadAll(rctx, pl.pr.readOpts(*cp, 0, bs)) {
			if err != nil {
				send(batch{err: err})
				return
			}
			cur = append(cur, Delivery{Record: rec})
			if len(cur) == bs {
				if !send(batch{ds: cur}) {
					return
				}
				cur = make([]Delivery, 0, bs)
			}
		}
		if len(cur) > 0 {
			send(batch{ds: cur})
		}
	}()
	n := 0
	for bt := range ch {
		if bt.err != nil {
			return n, fmt.Errorf("projection %q: read the log after %s: %w", pl.pr.p.Name, *cp, bt.err)
		}
		if err := a.apply(ctx, bt.ds); err != nil {
			return n, err
		}
		n += len(bt.ds)
		*cp = bt.ds[len(bt.ds)-1].Record.Position
		done(len(bt.ds))
		select {
		case <-pl.restart:
			return n, errRestart
		default:
		}
	}
	return n, nil
}

// live applies records from the source until ctx ends or a restart.
// Once the feed is open, it retires the old build from the source.
func (pl *pipeline) live(ctx context.Context, a *applier, cp eventstore.Position, old Build) error {
	p := pl.pr.p
	feed, err := pl.e.opts.source.Open(ctx, SourceRequest{Build: a.b, Types: pl.pr.readTypes, Categories: p.Categories, After: cp})
	if err != nil {
		return fmt.Errorf("projection %q: open source: %w", p.Name, err)
	}
	defer feed.Close()
	pl.retire(ctx, old)
	ch := feed.Deliveries()
	bs := p.batchSize()
	batch := make([]Delivery, 0, bs)
	verified := false
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pl.restart:
			return errRestart
		case d, ok := <-ch:
			if !ok {
				if err := feed.Err(); err != nil && ctx.Err() == nil {
					return fmt.Errorf("projection %q: source ended: %w", p.Name, err)
				}
				return ctx.Err()
			}
			batch = append(batch, d)
		}
	drain:
		for len(batch) < bs {
			select {
			case d, ok := <-ch:
				if !ok {
					break drain
				}
				batch = append(batch, d)
			default:
				break drain
			}
		}
		if !verified {
			ok, err := pl.verifyFirst(ctx, a.b, &cp, batch)
			if err != nil {
				nakAll(batch, 0)
				return err
			}
			verified = ok
		}
		if err := a.apply(ctx, batch); err != nil {
			return err
		}
	}
}

// verifyFirst checks, once per feed, that the feed's first delivery after
// the checkpoint is the next record the projection wants from the log.
// Within a feed the source guarantees that nothing is skipped (the
// JetStream feed stops on a gap in its consumer sequence), but not before
// its first delivery: another process sharing the durable consumer may hold
// an earlier record it has not applied yet, and applying a later one first
// would move the checkpoint past it for good. It reports whether the check
// was made (false when every delivery was at or before the checkpoint), and
// an error, to catch up from the event store again, when the log holds a
// wanted record between the checkpoint and that delivery.
func (pl *pipeline) verifyFirst(ctx context.Context, b Build, cp *eventstore.Position, batch []Delivery) (bool, error) {
	p := pl.pr.p
	var first *eventstore.Record
	for i := range batch {
		if cp.Before(batch[i].Record.Position) {
			first = &batch[i].Record
			break
		}
	}
	if first == nil {
		return false, nil
	}
	stored, err := pl.e.store.Checkpoint(ctx, b)
	if err != nil {
		return false, fmt.Errorf("projection %q: read checkpoint of %s: %w", p.Name, b, err)
	}
	if cp.Before(stored) {
		*cp = stored
	}
	if !cp.Before(first.Position) {
		return true, nil // another runner of the build applied it
	}
	for rec, err := range pl.e.events.ReadAll(ctx, pl.pr.readOpts(*cp, 1, 1)) {
		if err != nil {
			return false, fmt.Errorf("projection %q: check the source's first record against the log: %w", p.Name, err)
		}
		if rec.Position.Before(first.Position) {
			return false, fmt.Errorf("projection %q: the source's first record %s skips %s after checkpoint %s (held by another consumer?); catching up from the event store",
				p.Name, describe(*first), describe(rec), *cp)
		}
	}
	return true, nil
}
