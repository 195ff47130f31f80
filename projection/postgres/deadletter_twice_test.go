package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
)

// flaky makes the counting projection fail on events of type "Flaky"
// while failing is set.
func flaky(failing *atomic.Bool, policy projection.Policy) func(*projection.Projection) {
	return func(p *projection.Projection) {
		p.OnFailure, p.MaxAttempts = policy, 2
		inner := p.Handler
		p.Handler = projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
			if ev.Record.Type == "Flaky" && failing.Load() {
				return fmt.Errorf("flaky handler")
			}
			return inner.Handle(ctx, tx, ev)
		})
	}
}

func waitDeadLetters(t *testing.T, r *projection.Runner, name string, n int) []projection.DeadLetter {
	t.Helper()
	ctx := testCtx(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		dls, err := r.DeadLetters(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) == n || time.Now().After(deadline) {
			if len(dls) != n {
				t.Fatalf("dead letters = %+v, want %d", dls, n)
			}
			return dls
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A projection halted on an event, restarted with a handler that now
// applies it, must not keep a dead letter whose retry applies the event a
// second time.
func TestHaltedEventAppliedAfterRestartIsNotRetriedTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	var failing atomic.Bool
	failing.Store(true)
	r := e.runner([]projection.Projection{counting("counts", 1, flaky(&failing, projection.Halt))})
	stop := run(t, r)
	if _, err := e.events.Append(ctx, "acct-1", eventstore.NoStream, eventstore.Event{Type: "Flaky"}); err != nil {
		t.Fatal(err)
	}
	dls := waitDeadLetters(t, r, "counts", 1)
	stop()

	// The fix is deployed: the process restarts and applies the event.
	failing.Store(false)
	r2 := e.runner([]projection.Projection{counting("counts", 1, flaky(&failing, projection.Halt))})
	run(t, r2)
	last, err := e.events.Append(ctx, "acct-2", eventstore.NoStream, eventstore.Event{Type: "Counted"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, r2, "counts", last.Position)
	e.checkCounts("counts", map[string]int64{"acct-1": 1, "acct-2": 1})

	// An operator retries the dead letter listed before the restart.
	err = r2.RetryDeadLetter(ctx, "counts", dls[0].EventID)
	if err != nil && !errors.Is(err, projection.ErrDeadLetterNotFound) {
		t.Fatal(err)
	}
	e.checkCounts("counts", map[string]int64{"acct-1": 1, "acct-2": 1})
	if left, err := r2.DeadLetters(ctx, "counts"); err != nil || len(left) != 0 {
		t.Fatalf("dead letters after the event was applied = %+v, %v; want none", left, err)
	}
}

// A dead letter of an old build, retried once a rebuild with a fixed
// handler applied the event and switched, must not apply it twice to the
// new build.
func TestDeadLetterOfOldBuildRetriedAfterRebuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	var failing atomic.Bool
	failing.Store(true)
	v1 := e.runner([]projection.Projection{counting("counts", 1, flaky(&failing, projection.Skip))})
	stop := run(t, v1)
	if _, err := e.events.Append(ctx, "acct-1", eventstore.NoStream, eventstore.Event{Type: "Flaky"}); err != nil {
		t.Fatal(err)
	}
	last, err := e.events.Append(ctx, "acct-2", eventstore.NoStream, eventstore.Event{Type: "Counted"})
	if err != nil {
		t.Fatal(err)
	}
	dls := waitDeadLetters(t, v1, "counts", 1)
	waitFor(t, v1, "counts", last.Position)
	stop()

	failing.Store(false)
	v2 := e.runner([]projection.Projection{counting("counts", 2, flaky(&failing, projection.Skip))})
	run(t, v2)
	deadline := time.Now().Add(20 * time.Second)
	for {
		reg, err := e.store.Registration(ctx, "counts")
		if err != nil {
			t.Fatal(err)
		}
		if reg.Current.Version == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("version 2 never became current: %+v", reg)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, v2, "counts", last.Position)
	e.checkCounts("counts", map[string]int64{"acct-1": 1, "acct-2": 1})

	if err := v2.RetryDeadLetter(ctx, "counts", dls[0].EventID); err != nil && !errors.Is(err, projection.ErrDeadLetterNotFound) {
		t.Fatal(err)
	}
	e.checkCounts("counts", map[string]int64{"acct-1": 1, "acct-2": 1})
}
