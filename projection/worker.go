package projection

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
)

// State is what a projection is doing.
type State string

// States of a projection.
const (
	// Stopped: not running in this runner.
	Stopped State = "stopped"
	// Starting: setting up or catching up its current build.
	Starting State = "starting"
	// Running: applying live records.
	Running State = "running"
	// Rebuilding: building a new build beside the current one.
	Rebuilding State = "rebuilding"
	// Halted: stopped on a dead letter, by its Halt policy.
	Halted State = "halted"
	// Failing: its last attempt to run failed on an infrastructure error;
	// it retries with backoff.
	Failing State = "failing"
	// Idle: the store's registration is ahead of this runner's version of
	// the projection (newer code runs elsewhere), so it does nothing.
	Idle State = "idle"
)

var (
	errRestart = errors.New("projection: restart requested")
	errFatal   = errors.New("projection: fatal")
)

type worker struct {
	r *Runner
	p Projection
	// readTypes is the type filter of the worker's reads: p.Types, or nil
	// when the decoder upcasts, since an event stored under an old name of
	// a wanted type must be read to be upcast and matched.
	readTypes []string

	restart chan struct{}

	mu        sync.Mutex
	state     State
	build     Build
	current   bool // build is the current one
	applied   eventstore.Position
	changed   chan struct{}
	haltedOn  uuid.UUID
	lastErr   error
	runningIn bool
	retired   map[Build]bool // builds released from the source
	// follower marks a worker that only keeps the current build live
	// beside a rebuild (see keepCurrentLive): it reports no progress.
	follower bool
	// parent is the worker a follower runs beside; its waiters (WaitFor)
	// are woken when the follower applies events.
	parent *worker
	// pendingDL holds the IDs of the build's dead letters the build has
	// not passed yet (it halted on them): applying one of them removes its
	// dead letter in the same unit of work, so that a later retry cannot
	// apply it a second time.
	pendingDL map[uuid.UUID]bool
}

func newWorker(r *Runner, p Projection) *worker {
	w := &worker{r: r, p: p, readTypes: p.Types, restart: make(chan struct{}, 1), state: Stopped, changed: make(chan struct{}), retired: map[Build]bool{}}
	if _, ok := r.opts.decoder.(UpcastingDecoder); ok {
		w.readTypes = nil
	}
	return w
}

// update changes the worker's state under its lock and wakes waiters.
func (w *worker) update(f func()) {
	w.mu.Lock()
	f()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

func (w *worker) setState(s State) { w.update(func() { w.state = s }) }

func (w *worker) setApplied(pos eventstore.Position) {
	w.update(func() {
		if w.applied.Before(pos) {
			w.applied = pos
		}
	})
	if w.parent != nil {
		w.parent.update(func() {})
	}
}

func (w *worker) signal() {
	select {
	case w.restart <- struct{}{}:
	default:
	}
}

func (w *worker) loop(ctx context.Context) error {
	w.update(func() { w.runningIn = true })
	defer w.update(func() { w.runningIn = false; w.state = Stopped })
	failures := 0
	for {
		err := w.runOnce(ctx, false)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, errRestart):
			failures = 0
			continue
		case errors.Is(err, ErrHalted):
			failures = 0
			w.setState(Halted)
			w.r.log.Error("projection halted on a dead letter", "projection", w.p.Name, "err", err)
			if err := w.waitResume(ctx); err != nil {
				return nil
			}
			continue
		case errors.Is(err, errFatal):
			return err
		case err == nil:
			continue
		}
		failures++
		w.update(func() { w.state = Failing; w.lastErr = err })
		d := backoff(w.r.opts.backoffMin*4, w.r.opts.backoffMax*6, failures)
		w.r.log.Warn("projection failed; restarting", "projection", w.p.Name, "err", err, "in", d)
		if sleep(ctx, d, w.restart) != nil {
			return nil
		}
	}
}

// resolveBuild decides which build this runner works on.
func (w *worker) resolveBuild(ctx context.Context) (Build, Registration, error) {
	st := w.r.store
	reg, err := st.Registration(ctx, w.p.Name)
	if err != nil {
		return Build{}, reg, fmt.Errorf("projection %q: read registration: %w", w.p.Name, err)
	}
	v := w.p.version()
	switch {
	case reg.Target.IsZero() || reg.Target.Version < v:
		b := Build{Name: w.p.Name, Version: v}
		if err := st.SetTarget(ctx, b); err != nil {
			return Build{}, reg, fmt.Errorf("projection %q: register build %s: %w", w.p.Name, b, err)
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

// runOnce runs the projection's build: setup, catch-up from the event
// store, switch when it is a rebuild, then live records from the source
// (unless rebuildOnly). It returns errRestart when asked to start over.
func (w *worker) runOnce(ctx context.Context, rebuildOnly bool) error {
	b, reg, err := w.resolveBuild(ctx)
	if err != nil {
		return err
	}
	if b.IsZero() {
		w.update(func() { w.state = Idle })
		w.r.log.Warn("projection version is older than the registered one; idling",
			"projection", w.p.Name, "version", w.p.version(), "target", reg.Target.String())
		_ = sleep(ctx, w.r.opts.haltPoll*10, w.restart)
		return ctx.Err()
	}
	fresh := reg.Current.IsZero()
	current := reg.Current == b || fresh
	st := Starting
	if !current {
		st = Rebuilding
	}
	cp, err := w.r.store.Checkpoint(ctx, b)
	if err != nil {
		return fmt.Errorf("projection %q: read checkpoint of %s: %w", w.p.Name, b, err)
	}
	dls, err := w.r.store.DeadLetters(ctx, w.p.Name)
	if err != nil {
		return fmt.Errorf("projection %q: list dead letters of %s: %w", w.p.Name, b, err)
	}
	pending := map[uuid.UUID]bool{}
	for _, dl := range dls {
		if dl.Build == b && cp.Before(dl.Position) {
			pending[dl.EventID] = true
		}
	}
	w.update(func() {
		w.build, w.current, w.state, w.applied, w.lastErr, w.pendingDL = b, current, st, cp, nil, pending
	})
	if err := w.setup(ctx, b, fresh); err != nil {
		return err
	}
	stopFollower := func() {}
	if !current && !rebuildOnly && reg.Current.Version == b.Version {
		// An explicit rebuild of this code's version: readers see the
		// current build until the switch, so keep it live meanwhile.
		stopFollower = w.keepCurrentLive(ctx, reg.Current)
		defer stopFollower()
	}
	cp, err = w.catchUp(ctx, b, cp, !current)
	if err != nil {
		return err
	}
	if !current {
		if err := w.activate(ctx, b); err != nil {
			return err
		}
		// The switch is committed: b is the live build now, and the old
		// one must be left before live retires it from the source.
		stopFollower()
		w.update(func() {
			w.current = true
			if !rebuildOnly {
				w.state = Running
			}
		})
		w.r.log.Info("projection build switched", "projection", w.p.Name, "build", b.String())
	}
	if rebuildOnly {
		return nil
	}
	w.setState(Running)
	return w.live(ctx, b, cp, retiredBuild(reg, b))
}

// keepCurrentLive starts a second worker of the projection that applies
// live records to cur, the build readers see, while w builds a new
// generation of the same version beside it; it returns a function, safe to
// call more than once, that stops that worker and waits for it. The
// follower commits cur's checkpoint with its writes like any runner of
// cur, so each event is still applied once per build. It retries failures
// with backoff and stops for good when cur halts on a dead letter (the
// rebuild goes on; cur then stays as it was until the switch).
func (w *worker) keepCurrentLive(ctx context.Context, cur Build) (stop func()) {
	f := newWorker(w.r, w.p)
	f.follower, f.parent = true, w
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.follow(fctx, cur)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

// follow keeps cur live (see keepCurrentLive) until ctx ends.
func (w *worker) follow(ctx context.Context, cur Build) {
	w.r.log.Info("keeping the current build live during the rebuild", "projection", w.p.Name, "build", cur.String())
	failures := 0
	for {
		err := w.followOnce(ctx, cur)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrHalted) {
			w.r.log.Error("current build halted on a dead letter during a rebuild; it is not updated until the switch",
				"projection", w.p.Name, "build", cur.String(), "err", err)
			<-ctx.Done()
			return
		}
		failures++
		d := backoff(w.r.opts.backoffMin*4, w.r.opts.backoffMax*6, failures)
		w.r.log.Warn("keeping the current build live failed; restarting", "projection", w.p.Name,
			"build", cur.String(), "err", err, "in", d)
		if sleep(ctx, d, nil) != nil {
			return
		}
	}
}

// followOnce catches cur up from the event store, then applies live
// records from the source, until ctx ends or an error.
func (w *worker) followOnce(ctx context.Context, cur Build) error {
	cp, err := w.r.store.Checkpoint(ctx, cur)
	if err != nil {
		return fmt.Errorf("projection %q: read checkpoint of %s: %w", w.p.Name, cur, err)
	}
	dls, err := w.r.store.DeadLetters(ctx, w.p.Name)
	if err != nil {
		return fmt.Errorf("projection %q: list dead letters of %s: %w", w.p.Name, cur, err)
	}
	pending := map[uuid.UUID]bool{}
	for _, dl := range dls {
		if dl.Build == cur && cp.Before(dl.Position) {
			pending[dl.EventID] = true
		}
	}
	w.update(func() {
		w.build, w.current, w.state, w.applied, w.pendingDL = cur, true, Running, cp, pending
	})
	if cp, err = w.catchUp(ctx, cur, cp, false); err != nil {
		return err
	}
	return w.live(ctx, cur, cp, Build{})
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
func (w *worker) retire(ctx context.Context, old Build) {
	rt, ok := w.r.opts.source.(Retirer)
	if !ok || old.IsZero() {
		return
	}
	w.mu.Lock()
	done := w.retired[old]
	w.mu.Unlock()
	if done {
		return
	}
	if err := rt.Retire(ctx, old); err != nil {
		if ctx.Err() == nil {
			w.r.log.Warn("could not release the source of an old build; it is tried again at the next start",
				"projection", w.p.Name, "build", old.String(), "err", err)
		}
		return
	}
	w.mu.Lock()
	w.retired[old] = true
	w.mu.Unlock()
	w.r.log.Info("released the source of an old build", "projection", w.p.Name, "build", old.String())
}

func (w *worker) setup(ctx context.Context, b Build, activate bool) error {
	if w.p.Setup == nil && !activate {
		return nil
	}
	tx, err := w.r.store.Begin(ctx, b)
	if err != nil {
		return fmt.Errorf("projection %q: begin setup of %s: %w", w.p.Name, b, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if w.p.Setup != nil {
		if err := w.p.Setup(ctx, tx); err != nil {
			if ctx.Err() != nil || w.transient(err) {
				return fmt.Errorf("projection %q: setup of %s: %w", w.p.Name, b, err)
			}
			return fmt.Errorf("%w: projection %q: setup of %s: %w", errFatal, w.p.Name, b, err)
		}
	}
	if activate {
		if err := tx.Activate(ctx, w.p.Tables); err != nil {
			return fmt.Errorf("projection %q: activate %s: %w", w.p.Name, b, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		if w.p.Setup != nil && ctx.Err() == nil && !w.transient(err) {
			return fmt.Errorf("%w: projection %q: commit setup of %s: %w", errFatal, w.p.Name, b, err)
		}
		return fmt.Errorf("projection %q: commit setup of %s: %w", w.p.Name, b, err)
	}
	return nil
}

func (w *worker) activate(ctx context.Context, b Build) error {
	tx, err := w.r.store.Begin(ctx, b)
	if err != nil {
		return fmt.Errorf("projection %q: begin switch to %s: %w", w.p.Name, b, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := tx.Activate(ctx, w.p.Tables); err != nil {
		return fmt.Errorf("projection %q: switch to %s: %w", w.p.Name, b, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("projection %q: commit switch to %s: %w", w.p.Name, b, err)
	}
	return nil
}

// catchUp applies the history after cp straight from the event store, in
// batches, until a pass finds little left. It reports progress.
func (w *worker) catchUp(ctx context.Context, b Build, cp eventstore.Position, rebuild bool) (eventstore.Position, error) {
	bs := max(w.r.opts.catchUpBatch, w.p.batchSize())
	head, err := w.r.events.Head(ctx)
	if err != nil {
		return cp, fmt.Errorf("projection %q: read head of the log: %w", w.p.Name, err)
	}
	start, began := cp, time.Now()
	var applied int64
	lastReport := time.Time{}
	report := func(pos eventstore.Position, finished bool) {
		if w.r.opts.progress == nil || w.follower || (!finished && time.Since(lastReport) < 200*time.Millisecond) {
			return
		}
		lastReport = time.Now()
		total := int64(head.Seq) - int64(start.Seq)
		done := int64(pos.Seq) - int64(start.Seq)
		total = max(total, done, 0)
		done = max(done, 0)
		el := time.Since(began).Seconds()
		pr := Progress{Build: b, Rebuild: rebuild, Done: done, Total: total, Applied: applied, Finished: finished}
		if el > 0 {
			pr.Rate = float64(applied) / el
			if done > 0 {
				pr.ETA = time.Duration(float64(total-done) * el / float64(done) * float64(time.Second))
			}
		}
		w.r.opts.progress(pr)
	}
	for pass := 0; ; pass++ {
		n, err := w.catchUpPass(ctx, b, &cp, bs, func(k int) {
			applied += int64(k)
			report(cp, false)
		})
		if err != nil {
			return cp, err
		}
		if n < bs || pass >= 20 {
			break
		}
		if h, err := w.r.events.Head(ctx); err == nil && head.Before(h) {
			head = h
		}
	}
	report(cp, true)
	return cp, nil
}

// catchUpPass reads the log after *cp to its end, in batches of bs, on a
// goroutine that reads the next batch while this one applies the last.
func (w *worker) catchUpPass(ctx context.Context, b Build, cp *eventstore.Position, bs int, done func(int)) (int, error) {
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
		opts := eventstore.ReadAllOptions{After: *cp, Types: w.readTypes, Categories: w.p.Categories, BatchSize: bs}
		for rec, err := range w.r.events.ReadAll(rctx, opts) {
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
			return n, fmt.Errorf("projection %q: read the log after %s: %w", w.p.Name, *cp, bt.err)
		}
		if err := w.apply(ctx, b, bt.ds); err != nil {
			return n, err
		}
		n += len(bt.ds)
		*cp = bt.ds[len(bt.ds)-1].Record.Position
		done(len(bt.ds))
		select {
		case <-w.restart:
			return n, errRestart
		default:
		}
	}
	return n, nil
}

// live applies records from the source until ctx ends or a restart.
// Once the feed is open, it retires the old build from the source.
func (w *worker) live(ctx context.Context, b Build, cp eventstore.Position, old Build) error {
	feed, err := w.r.opts.source.Open(ctx, SourceRequest{Build: b, Types: w.readTypes, Categories: w.p.Categories, After: cp})
	if err != nil {
		return fmt.Errorf("projection %q: open source: %w", w.p.Name, err)
	}
	defer feed.Close()
	w.retire(ctx, old)
	ch := feed.Deliveries()
	bs := w.p.batchSize()
	batch := make([]Delivery, 0, bs)
	verified := false
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.restart:
			return errRestart
		case d, ok := <-ch:
			if !ok {
				if err := feed.Err(); err != nil && ctx.Err() == nil {
					return fmt.Errorf("projection %q: source ended: %w", w.p.Name, err)
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
			ok, err := w.verifyFirst(ctx, b, &cp, batch)
			if err != nil {
				nakAll(batch, 0)
				return err
			}
			verified = ok
		}
		if err := w.apply(ctx, b, batch); err != nil {
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
func (w *worker) verifyFirst(ctx context.Context, b Build, cp *eventstore.Position, batch []Delivery) (bool, error) {
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
	stored, err := w.r.store.Checkpoint(ctx, b)
	if err != nil {
		return false, fmt.Errorf("projection %q: read checkpoint of %s: %w", w.p.Name, b, err)
	}
	if cp.Before(stored) {
		*cp = stored
	}
	if !cp.Before(first.Position) {
		return true, nil // another runner of the build applied it
	}
	opts := eventstore.ReadAllOptions{After: *cp, Types: w.readTypes, Categories: w.p.Categories, Limit: 1, BatchSize: 1}
	for rec, err := range w.r.events.ReadAll(ctx, opts) {
		if err != nil {
			return false, fmt.Errorf("projection %q: check the source's first record against the log: %w", w.p.Name, err)
		}
		if rec.Position.Before(first.Position) {
			return false, fmt.Errorf("projection %q: the source's first record %s skips %s after checkpoint %s (held by another consumer?); catching up from the event store",
				w.p.Name, describe(*first), describe(rec), *cp)
		}
	}
	return true, nil
}

// apply applies deliveries in order: as one unit of work when the store is
// atomic, else (or when that fails) one by one with retries. It settles each
// delivery.
func (w *worker) apply(ctx context.Context, b Build, ds []Delivery) error {
	if w.r.store.Atomic() && len(ds) > 1 {
		var err error
		for len(ds) > 0 {
			var n int
			n, err = w.tryTx(ctx, b, ds)
			if err != nil {
				break
			}
			for _, d := range ds[:n] {
				ack(d)
			}
			ds = ds[n:]
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			nakAll(ds, 0)
			return ctx.Err()
		}
		w.r.log.Debug("batch failed; applying its events one by one", "projection", w.p.Name, "err", err)
	}
	for i, d := range ds {
		if err := w.applyOne(ctx, b, d); err != nil {
			nakAll(ds[i+1:], w.r.opts.backoffMin)
			return err
		}
	}
	return nil
}

func ack(d Delivery) {
	if d.Acker != nil {
		_ = d.Acker.Ack()
	}
}

func nakAll(ds []Delivery, delay time.Duration) {
	for _, d := range ds {
		if d.Acker != nil {
			_ = d.Acker.Nak(delay)
		}
	}
}

// applyOne applies one delivery, retrying with backoff, and dead-letters it
// after MaxAttempts.
func (w *worker) applyOne(ctx context.Context, b Build, d Delivery) error {
	maxAttempts := w.p.maxAttempts()
	var err error
	outages := 0
	for attempt := 1; ; attempt++ {
		_, err = w.tryTx(ctx, b, []Delivery{d})
		if err == nil {
			ack(d)
			return nil
		}
		if ctx.Err() != nil {
			nakAll([]Delivery{d}, 0)
			return ctx.Err()
		}
		if w.transient(err) {
			// The store, not the event: retry in place without counting
			// an attempt against the event.
			attempt--
			outages++
			w.update(func() { w.lastErr = err })
			w.r.log.Warn("store unavailable; retrying", "projection", w.p.Name, "err", err)
			if d.Acker != nil {
				_ = d.Acker.InProgress()
			}
			if err := sleep(ctx, backoff(w.r.opts.backoffMin, w.r.opts.backoffMax, outages), nil); err != nil {
				nakAll([]Delivery{d}, 0)
				return err
			}
			continue
		}
		if attempt >= maxAttempts {
			break
		}
		w.r.log.Warn("event failed; retrying", "projection", w.p.Name, "stream", d.Record.StreamID,
			"version", d.Record.StreamVersion, "type", d.Record.Type, "attempt", attempt, "err", err)
		if d.Acker != nil {
			_ = d.Acker.InProgress()
		}
		if err := sleep(ctx, backoff(w.r.opts.backoffMin, w.r.opts.backoffMax, attempt), nil); err != nil {
			nakAll([]Delivery{d}, 0)
			return err
		}
	}
	return w.deadLetter(ctx, b, d, err, maxAttempts)
}

func (w *worker) deadLetter(ctx context.Context, b Build, d Delivery, cause error, attempts int) error {
	rec := d.Record
	dl := deadLetterOf(b, rec, cause, attempts, time.Now().UTC())
	tx, err := w.r.store.Begin(ctx, b)
	if err != nil {
		return fmt.Errorf("projection %q: begin dead letter of %s: %w", w.p.Name, describe(rec), err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := tx.AddDeadLetter(ctx, dl); err != nil {
		return fmt.Errorf("projection %q: record dead letter of %s: %w", w.p.Name, describe(rec), err)
	}
	skip := w.p.OnFailure == Skip
	if skip && tx.Checkpoint().Before(rec.Position) {
		if err := tx.SetCheckpoint(ctx, rec.Position, 0); err != nil {
			return fmt.Errorf("projection %q: checkpoint past dead letter %s: %w", w.p.Name, describe(rec), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("projection %q: commit dead letter of %s: %w", w.p.Name, describe(rec), err)
	}
	w.r.log.Error("event dead-lettered", "projection", w.p.Name, "stream", rec.StreamID, "version", rec.StreamVersion,
		"type", rec.Type, "position", rec.Position.String(), "attempts", attempts, "policy", w.p.OnFailure.String(), "err", cause)
	if pub := w.r.opts.publisher; pub != nil {
		if err := pub.PublishDeadLetter(dl); err != nil {
			w.r.log.Warn("publish dead letter", "projection", w.p.Name, "err", err)
		}
	}
	if skip {
		if d.Acker != nil {
			_ = d.Acker.Term("dead-lettered: " + cause.Error())
		}
		w.setApplied(rec.Position)
		return nil
	}
	if d.Acker != nil {
		_ = d.Acker.Nak(w.r.opts.haltPoll)
	}
	w.update(func() { w.haltedOn = rec.ID; w.lastErr = cause })
	return fmt.Errorf("%w: projection %q at %s after %d attempts: %w", ErrHalted, w.p.Name, describe(rec), attempts, cause)
}

// waitResume waits until the dead letter the projection halted on is gone.
func (w *worker) waitResume(ctx context.Context) error {
	w.mu.Lock()
	id := w.haltedOn
	w.mu.Unlock()
	for {
		dls, err := w.r.store.DeadLetters(ctx, w.p.Name)
		if err == nil && !containsDL(dls, id) {
			w.update(func() { w.haltedOn = uuid.Nil })
			return nil
		}
		t := time.NewTimer(w.r.opts.haltPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-w.restart:
			// A rebuild or a resolved dead letter: run again (a rebuild
			// starts its new build; an unresolved poison halts again).
			t.Stop()
			w.update(func() { w.haltedOn = uuid.Nil })
			return nil
		case <-t.C:
		}
	}
}

func containsDL(dls []DeadLetter, id uuid.UUID) bool {
	for _, dl := range dls {
		if dl.EventID == id {
			return true
		}
	}
	return false
}

// maxUnitTime bounds how long a unit of work applies events: once it has
// been open this long, it commits after the event at hand and the next one
// begins. A unit of work that has written holds a transaction ID, and with
// it every reader of a PostgreSQL event log (ADR 0008).
const maxUnitTime = 50 * time.Millisecond

// tryTx applies deliveries in one unit of work, skipping those at or before
// the checkpoint, and commits with the new checkpoint. It stops early, after
// the first delivery that finds the unit of work open for maxUnitTime, and
// returns how many deliveries it committed.
func (w *worker) tryTx(ctx context.Context, b Build, ds []Delivery) (int, error) {
	tx, err := w.r.store.Begin(ctx, b)
	if err != nil {
		return 0, &infraError{fmt.Errorf("projection %q: begin unit of work on %s: %w", w.p.Name, b, err)}
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	began := time.Now()
	cp := tx.Checkpoint()
	last, applied, taken := cp, 0, 0
	var resolved []uuid.UUID
	for _, d := range ds {
		if taken > 0 && time.Since(began) >= maxUnitTime {
			break
		}
		taken++
		rec := d.Record
		if !last.Before(rec.Position) {
			continue // applied already: a redelivery
		}
		n, err := w.handle(ctx, tx, rec)
		if err != nil {
			return 0, err
		}
		applied += n
		last = rec.Position
		w.mu.Lock()
		pending := w.pendingDL[rec.ID]
		w.mu.Unlock()
		if pending {
			if err := tx.DeleteDeadLetter(ctx, w.p.Name, rec.ID); err != nil {
				return 0, fmt.Errorf("projection %q: remove the dead letter of %s, now applied: %w", w.p.Name, describe(rec), err)
			}
			resolved = append(resolved, rec.ID)
		}
	}
	if last == cp {
		w.setApplied(cp) // another runner of the build may have moved it
		return taken, nil
	}
	if err := tx.SetCheckpoint(ctx, last, applied); err != nil {
		return 0, fmt.Errorf("projection %q: store checkpoint %s: %w", w.p.Name, last, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("projection %q: commit %d events up to %s: %w", w.p.Name, applied, last, err)
	}
	if len(resolved) > 0 {
		w.mu.Lock()
		for _, id := range resolved {
			delete(w.pendingDL, id)
		}
		w.mu.Unlock()
	}
	w.setApplied(last)
	return taken, nil
}

// handle brings rec to the current schema, keeps what the projection
// wants, decodes it and runs the handler on each resulting event, turning a
// panic into an error. It returns the number of handler calls.
func (w *worker) handle(ctx context.Context, tx Tx, rec eventstore.Record) (n int, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("projection %q: handler panicked on %s: %v\n%s", w.p.Name, describe(rec), v, debug.Stack())
		}
	}()
	if !w.p.wantsCategory(rec) {
		return 0, nil
	}
	dec := w.r.opts.decoder
	if ud, ok := dec.(UpcastingDecoder); ok {
		if !ud.NeedsUpcast(rec) {
			if !w.p.wantsType(rec.Type) {
				return 0, nil
			}
			return w.decodeAndHandle(ctx, tx, dec, rec)
		}
		recs, err := ud.Upcast(rec)
		if err != nil {
			return 0, fmt.Errorf("projection %q: upcast %s: %w", w.p.Name, describe(rec), err)
		}
		for _, up := range recs {
			if !w.p.wantsType(up.Type) {
				continue
			}
			k, err := w.decodeAndHandle(ctx, tx, dec, up)
			n += k
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}
	if !w.p.wantsType(rec.Type) {
		return 0, nil
	}
	if dec == nil {
		if err := w.p.Handler.Handle(ctx, tx, Event{Record: rec}); err != nil {
			return 0, fmt.Errorf("projection %q: handle %s: %w", w.p.Name, describe(rec), err)
		}
		return 1, nil
	}
	return w.decodeAndHandle(ctx, tx, dec, rec)
}

// decodeAndHandle decodes rec and runs the handler on each value, with rec
// as the event's record.
func (w *worker) decodeAndHandle(ctx context.Context, tx Tx, dec Decoder, rec eventstore.Record) (int, error) {
	vals, err := dec.Decode(rec)
	if err != nil {
		return 0, fmt.Errorf("projection %q: decode %s: %w", w.p.Name, describe(rec), err)
	}
	for i, v := range vals {
		if err := w.p.Handler.Handle(ctx, tx, Event{Data: v, Record: rec}); err != nil {
			return i, fmt.Errorf("projection %q: handle %s: %w", w.p.Name, describe(rec), err)
		}
	}
	return len(vals), nil
}

// infraError marks a failure of the store itself (beginning a unit of
// work), never the event's fault.
type infraError struct{ err error }

func (e *infraError) Error() string { return e.err.Error() }
func (e *infraError) Unwrap() error { return e.err }

// transient reports whether err is a passing failure of the store rather
// than one caused by the event.
func (w *worker) transient(err error) bool {
	var ie *infraError
	if errors.As(err, &ie) {
		return true
	}
	if tc, ok := w.r.store.(TransientChecker); ok {
		return tc.Transient(err)
	}
	return false
}

func describe(rec eventstore.Record) string {
	return fmt.Sprintf("event %s (%s, stream %q version %d, position %s)", rec.ID, rec.Type, rec.StreamID, rec.StreamVersion, rec.Position)
}

func backoff(first, longest time.Duration, attempt int) time.Duration {
	d := first
	for i := 1; i < attempt && d < longest; i++ {
		d *= 2
	}
	return min(d, longest)
}

// sleep waits d, or until ctx ends (returning its error), or until wake
// receives (returning nil early).
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case <-wake:
		return nil
	}
}
