package projection

import (
	"context"
	"fmt"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

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
