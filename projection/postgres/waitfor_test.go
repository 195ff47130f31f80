package postgres_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
)

// With two runners of one build (two replicas of a service), a caller
// learns that its write went to the dead letters whichever runner set it
// aside.
func TestWaitForReportsADeadLetterOfAnotherRunner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	var failing atomic.Bool
	failing.Store(true)
	r1 := e.runner([]projection.Projection{counting("counts", 1, flaky(&failing, projection.Skip))})
	r2 := e.runner([]projection.Projection{counting("counts", 1, flaky(&failing, projection.Skip))})
	run(t, r1)
	run(t, r2)
	// A few writes first, so that each runner sees the other one's commits.
	for range 20 {
		res, err := e.events.Append(ctx, "acct-1", eventstore.Any, eventstore.Event{Type: "Counted"})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, r1, "counts", res.Position)
		waitFor(t, r2, "counts", res.Position)
	}
	res, err := e.events.Append(ctx, "acct-2", eventstore.NoStream, eventstore.Event{Type: "Flaky"})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range []*projection.Runner{r1, r2} {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := r.WaitFor(wctx, "counts", res.Position)
		cancel()
		var dle *projection.DeadLetterError
		if !errors.As(err, &dle) || dle.DeadLetter.Position != res.Position || errors.Is(err, projection.ErrHalted) {
			t.Errorf("WaitFor through runner %d = %v, want the dead letter of the write", i+1, err)
		}
	}
}
