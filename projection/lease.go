package projection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/backoff"
)

// partitionSet runs the partitions of one partitioned build that this
// runner owns: it renews its leases and balances them over the live
// runners every third of the lease TTL, and runs one worker per partition
// it holds. A worker applies its partition's events in order, in units of
// work fenced by its lease.
type partitionSet struct {
	pl *pipeline
	ps PartitionStore
	b  Build
	n  int
	// feeds, when set, delivers each partition on its own (a
	// PartitionSource that supports n partitions): a worker reads the
	// set's reader only to catch up, then its own feed (partfeed.go).
	feeds PartitionSource

	mu      sync.Mutex
	workers map[int]*partWorker
	// run counts the reader's starts; rerun is closed to ask for another.
	run   uint64
	rerun chan struct{}
	// stopping are workers of lost leases, cancelled and not waited for.
	stopping []*partWorker
}

// partWorker applies one partition under one lease.
type partWorker struct {
	lease  Lease
	prog   *progress
	cancel context.CancelFunc
	done   chan struct{}
	// in receives the reader's batches.
	in chan feedBatch
	// detached (under the set's mu) takes the worker off the reader's
	// list: it reads its own feed.
	detached bool

	mu sync.Mutex
	cp eventstore.Position // what the worker has applied, for the reader
}

// runPartitioned runs build b's partitions until ctx ends or a restart,
// or, with a tick, until the tick (called after each rebalance) reports
// done. With publish, WaitFor and Status read the set's workers.
// The leases it holds stay its own until they expire or it releases them
// in a rebalance: a runner that stops (or dies) leaves them to expire, and
// a runner started again under the same member name finds them still held.
// A rebuild-only run (an Admin outside Run) releases them when it ends.
func (pl *pipeline) runPartitioned(ctx context.Context, b Build, publish bool, tick func(context.Context) (bool, error)) error {
	e, p := pl.e, pl.pr.p
	s := &partitionSet{pl: pl, ps: e.store.(PartitionStore), b: b, n: p.Partitions, workers: map[int]*partWorker{}, rerun: make(chan struct{})}
	if publish {
		pl.prog.update(func(pr *progress) { pr.parts = s })
		s.feeds = pl.partitionFeeds()
	}
	rctx, stopReader := context.WithCancel(ctx)
	reading := make(chan struct{})
	go func() {
		defer close(reading)
		s.read(rctx)
	}()
	defer func() {
		stopReader()
		<-reading
		s.stopAll()
		if publish {
			pl.prog.update(func(pr *progress) {
				if pr.parts == s {
					pr.parts = nil
				}
			})
		}
		if pl.rebuildOnly {
			s.leave(ctx)
		}
	}()
	every := e.opts.leaseTTL / 3
	first := true
	for {
		if err := s.balance(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The leases run out if this goes on; the workers' commits
			// then fail on their fence, so nothing is applied twice.
			e.log.Warn("renew partition leases", "projection", p.Name, "build", b.String(), "err", err)
			pl.prog.update(func(pr *progress) { pr.lastErr = err })
		} else if first && publish {
			first = false
			pl.prog.update(func(pr *progress) {
				if pr.build == b { // not when kept live beside a rebuild
					pr.state, pr.lastErr = Running, nil
				}
			})
		}
		// A tick (the end of a rebuild) is checked every tickEvery between
		// two rebalances, so that a rebuild ends when its partitions are
		// done, not up to a renewal period later.
		next := time.Now().Add(every)
		for {
			if tick != nil {
				if done, err := tick(ctx); err != nil || done {
					return err
				}
			}
			wait := time.Until(next)
			if wait <= 0 {
				break
			}
			if tick != nil {
				wait = min(wait, tickEvery)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-pl.restart:
				return errRestart
			case <-time.After(wait):
			}
			if tick == nil {
				break
			}
		}
	}
}

// tickEvery is how often runPartitioned checks whether a rebuild is done.
const tickEvery = 100 * time.Millisecond

// leave releases the set's leases and membership, best effort, so that
// the runners that stay take the partitions over at once.
func (s *partitionSet) leave(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	m, err := s.ps.Renew(ctx, s.b, s.n, s.pl.e.member, s.pl.e.opts.leaseTTL)
	if err == nil {
		err = s.ps.Release(ctx, m.Held)
	}
	if err == nil {
		err = s.ps.Leave(ctx, s.b, s.pl.e.member)
	}
	if err != nil {
		s.pl.e.log.Warn("release partition leases", "projection", s.b.Name, "build", s.b.String(), "err", err)
	}
}

// share returns how many of n partitions member should hold among the
// sorted live members: n/len, one more for the first n%len members.
func share(live []string, member string, n int) int {
	i := slices.Index(live, member)
	if i < 0 || len(live) == 0 {
		return 0
	}
	k := n / len(live)
	if i < n%len(live) {
		k++
	}
	return k
}

// balance renews the leases, stops the workers of lost ones, releases the
// partitions above this runner's share (after draining their workers) or
// acquires free ones up to it, and starts workers for held partitions.
func (s *partitionSet) balance(ctx context.Context) error {
	e, member, ttl := s.pl.e, s.pl.e.member, s.pl.e.opts.leaseTTL
	m, err := s.ps.Renew(ctx, s.b, s.n, member, ttl)
	if err != nil {
		return fmt.Errorf("projection %q: renew leases of %s: %w", s.b.Name, s.b, err)
	}
	held := map[int]Lease{}
	for _, l := range m.Held {
		held[l.Partition] = l
	}
	s.mu.Lock()
	s.stopping = slices.DeleteFunc(s.stopping, func(w *partWorker) bool {
		select {
		case <-w.done:
			return true // gone
		default:
			return false
		}
	})
	for part, w := range s.workers {
		if l, ok := held[part]; !ok || l.Epoch != w.lease.Epoch {
			e.log.Warn("partition lease lost; stopping its worker", "projection", s.b.Name, "build", s.b.String(),
				"partition", part, "epoch", w.lease.Epoch)
			// Not waited for: a worker stuck in a handler must not stop
			// the renewal of the other leases; its fence keeps it from
			// committing anything.
			w.cancel()
			s.stopping = append(s.stopping, w)
			delete(s.workers, part)
		}
	}
	s.mu.Unlock()
	want := share(m.Live, member, s.n)
	switch {
	case len(held) > want:
		parts := make([]int, 0, len(held))
		for part := range held {
			parts = append(parts, part)
		}
		slices.Sort(parts)
		var rel []Lease
		for _, part := range parts[want:] {
			s.mu.Lock()
			w := s.workers[part]
			delete(s.workers, part)
			s.mu.Unlock()
			if w != nil {
				// Drained: its unit of work is over before the release.
				// Not under s.mu, which a starting worker takes.
				w.stop()
			}
			rel = append(rel, held[part])
			delete(held, part)
		}
		if err := s.ps.Release(ctx, rel); err != nil {
			return fmt.Errorf("projection %q: release %d partitions of %s: %w", s.b.Name, len(rel), s.b, err)
		}
		e.log.Info("released partitions to rebalance", "projection", s.b.Name, "build", s.b.String(), "count", len(rel), "live", len(m.Live))
	case len(held) < want:
		got, err := s.ps.Acquire(ctx, s.b, member, ttl, want-len(held))
		if err != nil {
			return fmt.Errorf("projection %q: acquire partitions of %s: %w", s.b.Name, s.b, err)
		}
		for _, l := range got {
			held[l.Partition] = l
		}
		if len(got) > 0 {
			e.log.Info("acquired partitions", "projection", s.b.Name, "build", s.b.String(), "count", len(got), "live", len(m.Live))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for part, l := range held {
		w := s.workers[part]
		if w != nil {
			select {
			case <-w.done: // gone (a lost lease found by its fence): start again
			default:
				continue
			}
		}
		s.workers[part] = s.start(ctx, l)
	}
	return nil
}

// start runs a worker for lease l.
func (s *partitionSet) start(ctx context.Context, l Lease) *partWorker {
	wctx, cancel := context.WithCancel(ctx)
	w := &partWorker{lease: l, prog: newProgress(nil), cancel: cancel, done: make(chan struct{}), in: make(chan feedBatch, 4),
		detached: s.feeds != nil}
	w.prog.wake = s.pl.prog
	w.prog.update(func(p *progress) { p.running, p.state, p.build, p.current = true, Starting, s.b, true })
	go func() {
		defer close(w.done)
		defer w.prog.update(func(p *progress) { p.running, p.state = false, Stopped })
		s.work(wctx, w)
	}()
	return w
}

// stop cancels the worker and waits for it.
func (w *partWorker) stop() {
	w.cancel()
	<-w.done
}

// stopAll stops every worker and waits for them, outside s.mu, which a
// starting worker takes.
func (s *partitionSet) stopAll() {
	s.mu.Lock()
	ws := s.stopping
	for part, w := range s.workers {
		ws = append(ws, w)
		delete(s.workers, part)
	}
	s.stopping = nil
	s.mu.Unlock()
	for _, w := range ws {
		w.stop()
	}
}

// local returns the progress of this runner's worker of partition part, or
// nil.
func (s *partitionSet) local(part int) *progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.workers[part]; w != nil {
		return w.prog
	}
	return nil
}

// work runs one partition until its context ends or its lease is lost:
// a failure is retried with backoff, a halt waits for its dead letter.
func (s *partitionSet) work(ctx context.Context, w *partWorker) {
	e, name, part := s.pl.e, s.b.Name, w.lease.Partition
	failures := backoff.Attempts{Policy: e.opts.restartPolicy()}
	for ctx.Err() == nil {
		err := s.runPartition(ctx, w)
		var dle *DeadLetterError
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrLeaseLost):
			e.log.Warn("partition taken over by another runner; its unit of work was rolled back", "projection", name,
				"build", s.b.String(), "partition", part, "epoch", w.lease.Epoch, "err", err)
			w.prog.update(func(p *progress) { p.lastErr = err })
			return
		case errors.As(err, &dle) && dle.Policy == Halt:
			failures.Reset()
			dl := dle.DeadLetter
			e.log.Error("partition halted on a dead letter", "projection", name, "partition", part, "err", err)
			w.prog.update(func(p *progress) { p.state, p.halted, p.lastErr = Halted, &dl, err })
			stop := w.discard()
			err := s.waitResume(ctx, dl)
			stop()
			if err != nil {
				return
			}
			w.prog.update(func(p *progress) { p.halted = nil })
		default:
			d := failures.Next()
			e.log.Error("partition failed; restarting", "projection", name, "partition", part, "err", err, "in", d)
			w.prog.update(func(p *progress) { p.state, p.lastErr = Failing, err })
			stop := w.discard()
			err := backoff.Sleep(ctx, d, nil)
			stop()
			if err != nil {
				return
			}
		}
	}
}

// discard drops the reader's batches while the worker does not apply
// them (halted, or waiting to start again), so that the reader and the
// other partitions go on; the worker reads again from its checkpoint when
// it starts again. The returned function stops it.
func (w *partWorker) discard() (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-w.in:
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// waitResume waits until dl is no longer a dead letter.
func (s *partitionSet) waitResume(ctx context.Context, dl DeadLetter) error {
	for {
		dls, err := s.pl.e.store.DeadLetters(ctx, s.b.Name)
		if err == nil && !containsDL(dls, dl.EventID) {
			return nil
		}
		if err := backoff.Sleep(ctx, s.pl.e.opts.haltPoll, nil); err != nil {
			return err
		}
	}
}

// feedBatch is a batch of records the set's reader hands every worker,
// from one run of the reader.
type feedBatch struct {
	run uint64
	ds  []Delivery
}

// read follows the event store for the whole set, one reader per build and
// process (so that N partitions take one connection to read, not N), and
// hands each batch to every worker; a worker keeps the records of its
// partition and passes the others. It starts again, from the lowest
// checkpoint of the workers, whenever a worker asks (a new worker, a worker
// that failed and must see its records again).
func (s *partitionSet) read(ctx context.Context) {
	e, pr := s.pl.e, s.pl.pr
	for ctx.Err() == nil {
		s.mu.Lock()
		run := s.run
		var from eventstore.Position
		first := true
		var ws []*partWorker
		for _, w := range s.workers {
			if w.detached {
				continue
			}
			ws = append(ws, w)
			if cp := w.from(); first || cp.Before(from) {
				from, first = cp, false
			}
		}
		wake := s.rerun
		s.mu.Unlock()
		if len(ws) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-wake:
				continue
			}
		}
		rctx, cancel := context.WithCancel(ctx)
		feed, err := NewStoreSource(e.events).Open(rctx, SourceRequest{Build: s.b, Types: pr.readTypes, Categories: pr.p.Categories, After: from})
		if err != nil {
			cancel()
			e.log.Warn("follow the event store for partitions", "projection", pr.p.Name, "build", s.b.String(), "err", err)
			_ = backoff.Sleep(ctx, e.opts.backoff.First, nil)
			continue
		}
		s.pump(rctx, feed, run, ws, wake)
		cancel()
		_ = feed.Close()
		if err := feed.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			e.log.Warn("follow the event store for partitions", "projection", pr.p.Name, "build", s.b.String(), "err", err)
			_ = backoff.Sleep(ctx, e.opts.backoff.First, nil)
		}
	}
}

// pump hands the feed's batches to the workers until the feed ends or a
// rerun is asked for.
func (s *partitionSet) pump(ctx context.Context, feed Feed, run uint64, ws []*partWorker, wake <-chan struct{}) {
	ch, bs := feed.Deliveries(), max(s.pl.pr.p.batchSize(), s.pl.e.opts.catchUpBatch)
	for {
		var batch []Delivery
		select {
		case <-ctx.Done():
			return
		case <-wake:
			return
		case d, ok := <-ch:
			if !ok {
				return
			}
			batch = append(make([]Delivery, 0, 64), d)
		}
		batch = drain(ch, batch, bs)
		for _, w := range ws {
			select {
			case w.in <- feedBatch{run: run, ds: batch}:
			case <-w.done:
			case <-ctx.Done():
				return
			case <-wake:
				return
			}
		}
	}
}

// rereadFrom asks the reader to start again from the workers' lowest
// checkpoint and returns the run whose batches the caller may take.
func (s *partitionSet) rereadFrom() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.run++
	close(s.rerun)
	s.rerun = make(chan struct{})
	return s.run
}

// from is the position after which the worker needs records.
func (w *partWorker) from() eventstore.Position {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cp
}

func (w *partWorker) setFrom(cp eventstore.Position) {
	w.mu.Lock()
	w.cp = cp
	w.mu.Unlock()
}

// runPartition applies the partition's records from the set's reader: each
// record moves the partition's checkpoint, and those of its streams go to
// the handler. A batch with none of its records is only remembered, and
// its checkpoint written when the feed pauses, so that N partitions do not
// write N checkpoints for every event.
func (s *partitionSet) runPartition(ctx context.Context, w *partWorker) error {
	e, pr, l := s.pl.e, s.pl.pr, w.lease
	u, err := s.ps.BeginPartition(ctx, l)
	if err != nil {
		return fmt.Errorf("projection %q: read checkpoint of %s partition %d: %w", pr.p.Name, s.b, l.Partition, err)
	}
	cp := u.Checkpoint()
	_ = u.Rollback(ctx)
	a, err := e.newApplier(ctx, pr, s.b, cp, w.prog)
	if err != nil {
		return err
	}
	a.lease = &w.lease
	w.setFrom(cp)
	w.prog.update(func(p *progress) { p.state, p.applied, p.lastErr, p.halted = Running, cp, nil, nil })
	if s.feeds != nil {
		return s.runPartitionFeed(ctx, w, a)
	}
	return s.fromReader(ctx, w, a, s.rereadFrom(), nil)
}

// fromReader applies the records of the worker's partition from the set's
// reader's batches of run (or later runs) until ctx ends, a failure, or,
// with until, until it reports done (asked after each batch, and with idle
// set when the reader paused).
func (s *partitionSet) fromReader(ctx context.Context, w *partWorker, a *applier, run uint64, until func(idle bool) (bool, error)) error {
	const passEvery = 50 * time.Millisecond
	lastPass := time.Now()
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			if err := a.pass(ctx); err != nil {
				return err
			}
			if until != nil {
				if done, err := until(true); err != nil || done {
					return err
				}
				idle.Reset(passEvery)
			}
		case fb := <-w.in:
			if fb.run < run {
				continue // from before this worker (re)started
			}
			if err := a.apply(ctx, fb.ds); err != nil {
				return err
			}
			if a.known.Before(a.passed) && time.Since(lastPass) >= passEvery {
				// Busy with other partitions' records: write how far
				// this one got now and then, for WaitFor and a switch.
				if err := a.pass(ctx); err != nil {
					return err
				}
				lastPass = time.Now()
			}
			w.setFrom(a.known)
			if until != nil {
				if done, err := until(false); err != nil || done {
					return err
				}
			}
			idle.Reset(passEvery)
		}
	}
}

// partitionsApplied returns, for partitioned build b, each partition's
// applied position as far as this process knows: the stored checkpoint, or
// this runner's worker's progress when it is further.
func (r *Runner) partitionsApplied(ctx context.Context, s *supervisor, b Build) ([]PartitionState, error) {
	states, err := r.e.store.(PartitionStore).Partitions(ctx, b)
	if err != nil {
		return nil, err
	}
	s.prog.mu.Lock()
	set := s.prog.parts
	s.prog.mu.Unlock()
	if set == nil || set.b != b {
		return states, nil
	}
	for i := range states {
		if wp := set.local(i); wp != nil {
			if a := wp.snapshot().applied; states[i].Checkpoint.Before(a) {
				states[i].Checkpoint = a
			}
		}
	}
	return states, nil
}

// minCheckpoint returns the lowest checkpoint of the given partitions (all
// when parts is nil).
func minCheckpoint(states []PartitionState, parts []int) eventstore.Position {
	var low eventstore.Position
	first := true
	for i, st := range states {
		if parts != nil && !slices.Contains(parts, i) {
			continue
		}
		if first || st.Checkpoint.Before(low) {
			low, first = st.Checkpoint, false
		}
	}
	return low
}

// runPartitionedBuild runs partitioned build b: its partitions when it is
// the current build; else (a rebuild) b's partitions beside the current
// build's, which this runner keeps live when it runs the same version,
// until b has caught up with the current build and a switch made it
// current.
func (pl *pipeline) runPartitionedBuild(ctx context.Context, b Build, reg Registration, current bool) error {
	if current && pl.rebuildOnly {
		// An Admin's rebuild of a build that became current at once (the
		// projection's first): catch it up to the head as it was, then
		// stop.
		head, err := pl.e.events.Head(ctx)
		if err != nil {
			return fmt.Errorf("projection %q: read head of the log: %w", pl.pr.p.Name, err)
		}
		return pl.runPartitioned(ctx, b, false, func(ctx context.Context) (bool, error) {
			return pl.partitionsReached(ctx, b, head)
		})
	}
	if current {
		// Once its partitions run (their consumers open, over a
		// PartitionSource), release what the source keeps for the build
		// switched from (ADR 0020).
		old := retiredBuild(reg, b)
		return pl.runPartitioned(ctx, b, true, func(ctx context.Context) (bool, error) {
			pl.retire(ctx, old)
			return false, nil
		})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	from := reg.Current
	live := make(chan error, 1)
	if !pl.rebuildOnly && from.Version == b.Version {
		go func() { live <- pl.runPartitioned(ctx, from, true, nil) }()
		pl.prog.markStarted()
	} else {
		live <- nil
	}
	defer func() {
		cancel()
		<-live
	}()
	err := pl.runPartitioned(ctx, b, false, func(ctx context.Context) (bool, error) {
		return pl.switchPartitioned(ctx, b, from)
	})
	if err == nil {
		pl.e.log.Info("projection build switched", "projection", pl.pr.p.Name, "build", b.String())
	}
	return err
}

// switchPartitioned makes partitioned build b current once every one of its
// partitions has applied what the current build from has. It first waits,
// holding nothing, up to a second for b's partitions to pass from's
// furthest checkpoint; then it holds from (a unit of work on it takes its
// checkpoint lock and, for a partitioned from, locks its partitions'
// checkpoints) so that from cannot move, checks again, waiting at most a
// quarter of a second (the hold takes a transaction ID, which holds every
// reader of the log back, ADR 0008), and activates b. It reports false, to
// try again at the next rebalance, when b is behind.
func (pl *pipeline) switchPartitioned(ctx context.Context, b, from Build) (bool, error) {
	p := pl.pr.p
	reached := func(held eventstore.Position, wait time.Duration) (bool, error) {
		deadline := time.Now().Add(wait)
		for {
			states, err := pl.e.store.(PartitionStore).Partitions(ctx, b)
			if err != nil {
				return false, fmt.Errorf("projection %q: switch to %s: %w", p.Name, b, err)
			}
			if len(states) == p.Partitions && !minCheckpoint(states, nil).Before(held) {
				return true, nil
			}
			if time.Now().After(deadline) {
				return false, nil
			}
			if err := backoff.Sleep(ctx, 10*time.Millisecond, nil); err != nil {
				return false, err
			}
		}
	}
	var held eventstore.Position
	if !from.IsZero() {
		ahead, err := pl.furthest(ctx, from)
		if err != nil {
			return false, err
		}
		if ok, err := reached(ahead, time.Second); !ok || err != nil {
			return false, err
		}
		uf, err := pl.e.store.Begin(ctx, from)
		if err != nil {
			return false, fmt.Errorf("projection %q: switch to %s: hold %s: %w", p.Name, b, from, err)
		}
		defer uf.Rollback(context.WithoutCancel(ctx))
		held = uf.Checkpoint()
	}
	if ok, err := reached(held, 250*time.Millisecond); !ok || err != nil {
		return false, err
	}
	u, err := pl.e.store.Begin(ctx, b)
	if err != nil {
		return false, fmt.Errorf("projection %q: begin switch to %s: %w", p.Name, b, err)
	}
	defer u.Rollback(context.WithoutCancel(ctx))
	if err := u.Activate(ctx, p.Tables); err != nil {
		return false, fmt.Errorf("projection %q: switch to %s: %w", p.Name, b, err)
	}
	if err := u.Commit(ctx); err != nil {
		return false, fmt.Errorf("projection %q: commit switch to %s: %w", p.Name, b, err)
	}
	return true, nil
}

// furthest returns how far build b has come, without holding it: its
// checkpoint, or its furthest partition's.
func (pl *pipeline) furthest(ctx context.Context, b Build) (eventstore.Position, error) {
	cp, err := pl.e.store.Checkpoint(ctx, b)
	if err != nil {
		return cp, fmt.Errorf("projection %q: read checkpoint of %s: %w", b.Name, b, err)
	}
	states, err := pl.e.store.(PartitionStore).Partitions(ctx, b)
	if err != nil {
		return cp, fmt.Errorf("projection %q: read partitions of %s: %w", b.Name, b, err)
	}
	for _, st := range states {
		if cp.Before(st.Checkpoint) {
			cp = st.Checkpoint
		}
	}
	return cp, nil
}

// partitionsReached reports whether every partition of b has applied every
// wanted event up to pos.
func (pl *pipeline) partitionsReached(ctx context.Context, b Build, pos eventstore.Position) (bool, error) {
	states, err := pl.e.store.(PartitionStore).Partitions(ctx, b)
	if err != nil || len(states) < pl.pr.p.Partitions {
		return false, err
	}
	low := minCheckpoint(states, nil)
	if !low.Before(pos) {
		return true, nil
	}
	for rec, err := range pl.e.events.ReadAll(ctx, pl.pr.readOpts(low, 1, 1)) {
		if err != nil {
			return false, err
		}
		return pos.Before(rec.Position), nil
	}
	return true, nil
}
