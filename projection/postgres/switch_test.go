package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/internal/runnertest"
	"github.com/chronicle-go/chronicle/projection"
)

// A rebuild's switch never exposes a build behind what readers already saw:
// under concurrent writes, each confirmed by WaitFor and read back from the
// view, and with a second runner (another process) still applying events to
// the old build, the view never loses a confirmed write.
func TestSwitchNeverMovesTheViewBackwards(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	_, last := e.write("hist", 4, 250)
	r1 := e.runner([]projection.Projection{counting("counts", 1)})
	r2 := e.runner([]projection.Projection{counting("counts", 1)})
	run(t, r1)
	run(t, r2)
	waitFor(t, r1, "counts", last)

	view := pgmigrate.Quote(e.schema) + `.counts`
	seen := func() int64 {
		var n int64
		if err := e.pool.QueryRow(ctx, `SELECT coalesce(sum(n), 0) FROM `+view+` WHERE stream_id LIKE 'live-%'`).Scan(&n); err != nil {
			t.Errorf("read the view: %v", err)
		}
		return n
	}
	var confirmed atomic.Int64
	var stopWriting atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stopWriting.Load(); i++ {
				res, err := e.events.Append(ctx, fmt.Sprintf("live-%d", w), eventstore.Any, eventstore.Event{Type: "Counted"})
				if err != nil {
					errs <- err
					return
				}
				wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				err = r1.WaitFor(wctx, "counts", res.Position)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				c := confirmed.Add(1)
				if n := seen(); n < c {
					errs <- fmt.Errorf("after WaitFor confirmed %d writes the view holds %d of them", c, n)
					return
				}
			}
		}()
	}
	for range 15 {
		if err := r1.Rebuild(ctx, "counts"); err != nil {
			t.Fatal(err)
		}
		c := confirmed.Load()
		if n := seen(); n < c {
			t.Errorf("right after the switch the view holds %d of %d confirmed writes", n, c)
		}
	}
	stopWriting.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if confirmed.Load() == 0 {
		t.Fatal("no write confirmed during the rebuilds")
	}
}

// A version bump never shows readers less than a runner of the old version
// confirmed with WaitFor, before, during or after the switch, while that
// runner still runs.
func TestVersionBumpNeverMovesTheViewBackwards(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	_, last := e.write("hist", 4, 250)
	v1 := e.runner([]projection.Projection{counting("counts", 1)})
	run(t, v1)
	waitFor(t, v1, "counts", last)

	view := pgmigrate.Quote(e.schema) + `.counts`
	seen := func() int64 {
		var n int64
		if err := e.pool.QueryRow(ctx, `SELECT coalesce(sum(n), 0) FROM `+view+` WHERE stream_id = 'live'`).Scan(&n); err != nil {
			t.Errorf("read the view: %v", err)
		}
		return n
	}
	var confirmed atomic.Int64
	var stopWriting atomic.Bool
	done := make(chan error, 1)
	go func() {
		for !stopWriting.Load() {
			res, err := e.events.Append(ctx, "live", eventstore.Any, eventstore.Event{Type: "Counted"})
			if err != nil {
				done <- err
				return
			}
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err = v1.WaitFor(wctx, "counts", res.Position)
			cancel()
			if err != nil {
				done <- err
				return
			}
			c := confirmed.Add(1)
			if n := seen(); n < c {
				done <- fmt.Errorf("after WaitFor confirmed %d writes the view holds %d of them", c, n)
				return
			}
		}
		done <- nil
	}()
	// until waits for n confirmed writes; it fails the test if the writer
	// stopped on an error.
	until := func(n int64) {
		t.Helper()
		for confirmed.Load() < n {
			select {
			case err := <-done:
				t.Fatalf("the writer stopped: %v", err)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	until(10)
	v2 := e.runner([]projection.Projection{counting("counts", 2)})
	run(t, v2)
	runnertest.Ready(t, v2) // caught up and switched
	until(confirmed.Load() + 20)
	stopWriting.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	reg, err := e.store.Registration(ctx, "counts")
	if err != nil {
		t.Fatal(err)
	}
	if reg.Current.Version != 2 {
		t.Fatalf("current build = %s, want version 2", reg.Current)
	}
}
