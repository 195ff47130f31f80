package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/chronicle-go/chronicle/internal/backoff"
)

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
