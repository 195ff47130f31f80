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

	mu      sync.Mutex
	workers map[int]*partWorker
	// run counts the reader's starts; rerun is closed to ask for another.
	run   uint64
	rerun chan struct{}
}

// partWorker applies one partition under one lease.
type partWorker struct {
	lease  Lease
	prog   *progress
	cancel context.CancelFunc
	done   chan struct{}
	// in receives the reader's batches.
	in chan feedBatch

	mu sync.Mutex
	cp eventstore.Position // what the worker has applied, for the reader
}

// runPartitioned runs build b's partitions until ctx ends or a restart.
// The leases it holds stay its own until they expire or it releases them
// in a rebalance: a runner that stops (or dies) leaves them to expire, and
// a runner started again under the same member name finds them still held.
func (pl *pipeline) runPartitioned(ctx context.Context, b Build) error {
	e, p := pl.e, pl.pr.p
	s := &partitionSet{pl: pl, ps: e.store.(PartitionStore), b: b, n: p.Partitions, workers: map[int]*partWorker{}, rerun: make(chan struct{})}
	pl.prog.update(func(pr *progress) { pr.parts = s })
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
		pl.prog.update(func(pr *progress) { pr.parts = nil })
	}()
	tick := e.opts.leaseTTL / 3
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
		} else if first {
			first = false
			pl.prog.update(func(pr *progress) { pr.state, pr.lastErr = Running, nil })
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pl.restart:
			return errRestart
		case <-time.After(tick):
		}
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
	for part, w := range s.workers {
		if l, ok := held[part]; !ok || l.Epoch != w.lease.Epoch {
			e.log.Warn("partition lease lost; stopping its worker", "projection", s.b.Name, "build", s.b.String(),
				"partition", part, "epoch", w.lease.Epoch)
			w.stop()
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
			if w := s.workers[part]; w != nil {
				w.stop() // drained: its unit of work is over before the release
				delete(s.workers, part)
			}
			s.mu.Unlock()
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
	w := &partWorker{lease: l, prog: newProgress(nil), cancel: cancel, done: make(chan struct{}), in: make(chan feedBatch, 4)}
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

func (s *partitionSet) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for part, w := range s.workers {
		w.stop()
		delete(s.workers, part)
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
	run := s.rereadFrom()
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
		case fb := <-w.in:
			if fb.run < run {
				continue // from before this worker (re)started
			}
			if err := a.apply(ctx, fb.ds); err != nil {
				return err
			}
			w.setFrom(a.known)
			idle.Reset(200 * time.Millisecond)
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
// the current build. A rebuild of a partitioned projection beside a
// current build is not supported yet (ADR 0019).
func (pl *pipeline) runPartitionedBuild(ctx context.Context, b Build, reg Registration, current bool) error {
	if !current {
		return fmt.Errorf("projection %q: rebuilding partitioned build %s beside %s: %w", pl.pr.p.Name, b, reg.Current, ErrPartitionedRebuild)
	}
	return pl.runPartitioned(ctx, b)
}
