package projection

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/internal/backoff"
)

// State is what a projection is doing.
type State string

// States of a projection. See the package documentation for how a
// projection moves between them.
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
	// Failing: its last attempt to run failed (its Setup, the store or
	// the source); it retries with backoff. LastError says why.
	Failing State = "failing"
	// Idle: the store's registration is ahead of this runner's version of
	// the projection (newer code runs elsewhere), so it does nothing.
	Idle State = "idle"
)

// supervisor runs one projection's build pipeline again and again: after
// a failure with backoff, after a halt once its dead letter is gone, after
// a restart request at once, while idle now and then. A failure is the
// projection's own state; it never ends its neighbours.
type supervisor struct {
	e       *engine
	pr      *proj
	prog    *progress
	restart chan struct{}
	pl      *pipeline
}

func (e *engine) newSupervisor(pr *proj, onStart func()) *supervisor {
	s := &supervisor{e: e, pr: pr, prog: newProgress(onStart), restart: make(chan struct{}, 1)}
	s.pl = e.newPipeline(pr, s.prog, s.restart)
	return s
}

// signal asks the projection to start over (or a halted or idle one to
// look again).
func (s *supervisor) signal() {
	select {
	case s.restart <- struct{}{}:
	default:
	}
}

// run supervises the projection until ctx ends.
func (s *supervisor) run(ctx context.Context) {
	name := s.pr.p.Name
	s.prog.update(func(p *progress) { p.running = true })
	defer s.prog.update(func(p *progress) { p.running, p.state = false, Stopped })
	failures := backoff.Attempts{Policy: s.e.opts.restartPolicy()}
	for {
		out := s.pl.run(ctx)
		switch out.kind {
		case outStopped:
			return
		case outRestart, outSwitched:
			failures.Reset()
		case outHalted:
			failures.Reset()
			dl := out.dl.DeadLetter
			s.e.log.Error("projection halted on a dead letter", "projection", name, "err", out.err)
			s.prog.update(func(p *progress) { p.state, p.halted, p.lastErr = Halted, &dl, out.err })
			if s.waitResume(ctx, dl.EventID) != nil {
				return
			}
			s.prog.update(func(p *progress) { p.halted = nil })
		case outIdle:
			failures.Reset()
			s.e.log.Warn("projection version is older than the registered one; idling", "projection", name, "err", out.err)
			// WaitFor follows the build the newer code writes, as stored.
			s.prog.update(func(p *progress) { p.state, p.current = Idle, false })
			if backoff.Sleep(ctx, s.e.opts.haltPoll*10, s.restart) != nil {
				return
			}
		case outFailed:
			d := failures.Next()
			s.e.log.Error("projection failed; restarting", "projection", name, "err", out.err, "in", d)
			s.prog.update(func(p *progress) { p.state, p.lastErr = Failing, out.err })
			if backoff.Sleep(ctx, d, s.restart) != nil {
				return
			}
		}
	}
}

// waitResume waits until the dead letter the projection halted on is gone
// (retried or discarded here or by another process), or a restart request.
func (s *supervisor) waitResume(ctx context.Context, id uuid.UUID) error {
	for {
		dls, err := s.e.store.DeadLetters(ctx, s.pr.p.Name)
		if err == nil && !containsDL(dls, id) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.restart:
			// A rebuild or a resolved dead letter: run again (a rebuild
			// starts its new build; an unresolved poison halts again).
			return nil
		case <-time.After(s.e.opts.haltPoll):
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
