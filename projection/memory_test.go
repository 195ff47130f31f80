package projection_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/projection"
)

func TestMemoryExactlyOnceInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	es := memory.New()
	c := newCounter()
	r, err := projection.NewRunner(es, projection.NewMemoryStore(), []projection.Projection{{Name: "counter", Handler: c.handler()}})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, ctx, es, "acct-0", "Deposited", 50) // before Run: catch-up
	run(t, r)
	var wg sync.WaitGroup
	streams := map[string]int64{"acct-0": 50}
	var mu sync.Mutex
	var last eventstore.AppendResult
	for w := 1; w <= 4; w++ {
		streams[fmt.Sprintf("acct-%d", w)] = 100
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := appendN(t, ctx, es, fmt.Sprintf("acct-%d", w), "Deposited", 100)
			mu.Lock()
			if last.Position.Before(res.Position) {
				last = res
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.WaitFor(wctx, "counter", last.Position); err != nil {
		t.Fatal(err)
	}
	if got := c.total(); got != 450 {
		t.Fatalf("applied %d events, want 450", got)
	}
	c.check(t, streams)
}

func TestWaitForFilteredProjection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	es := memory.New()
	c := newCounter()
	r, err := projection.NewRunner(es, projection.NewMemoryStore(),
		[]projection.Projection{{Name: "orders", Categories: []string{"order"}, Handler: c.handler()}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	appendN(t, ctx, es, "order-1", "Placed", 3)
	res := appendN(t, ctx, es, "user-1", "Registered", 1) // not wanted
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.WaitFor(wctx, "orders", res.Position); err != nil {
		t.Fatal(err)
	}
	if got := c.total(); got != 3 {
		t.Fatalf("applied %d events, want 3", got)
	}
	// A position the projection can never reach times out with ctx's error.
	sctx, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	err = r.WaitFor(sctx, "orders", eventstore.Position{TxID: 1 << 40, Seq: 1 << 40})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor beyond the log: %v, want deadline exceeded", err)
	}
	if err := r.WaitFor(ctx, "nope", res.Position); !errors.Is(err, projection.ErrUnknownProjection) {
		t.Fatalf("WaitFor unknown projection: %v", err)
	}
}

func TestPoisonSkipAndHalt(t *testing.T) {
	t.Parallel()
	for _, policy := range []projection.Policy{projection.Skip, projection.Halt} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			es := memory.New()
			c := newCounter()
			c.setFailing("Poison", true)
			ps := projection.NewMemoryStore()
			r, err := projection.NewRunner(es, ps, []projection.Projection{{
				Name: "counter", Handler: c.handler(), OnFailure: policy, MaxAttempts: 3,
			}}, projection.WithBackoff(time.Millisecond, 5*time.Millisecond), projection.WithHaltPoll(20*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			run(t, r)
			appendN(t, ctx, es, "acct-1", "Deposited", 2)
			poison := appendN(t, ctx, es, "acct-1", "Poison", 1)
			last := appendN(t, ctx, es, "acct-1", "Deposited", 2)
			var dls []projection.DeadLetter
			waitUntil(t, "a dead letter", 5*time.Second, func() bool {
				dls, err = r.DeadLetters(ctx, "counter")
				return err == nil && len(dls) == 1
			})
			dl := dls[0]
			if dl.StreamID != "acct-1" || dl.StreamVersion != 3 || dl.Type != "Poison" || dl.Attempts != 3 ||
				dl.Position != poison.Position || dl.Error == "" {
				t.Fatalf("dead letter = %+v", dl)
			}
			wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			err = r.WaitFor(wctx, "counter", last.Position)
			if policy == projection.Skip {
				if err != nil {
					t.Fatalf("WaitFor after a skipped poison event: %v", err)
				}
				if got := c.total(); got != 4 {
					t.Fatalf("applied %d, want 4", got)
				}
			} else {
				if !errors.Is(err, projection.ErrHalted) {
					t.Fatalf("WaitFor on a halted projection: %v, want ErrHalted", err)
				}
				if got := c.total(); got != 2 {
					t.Fatalf("halted projection applied %d, want 2", got)
				}
				st, err := r.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st[0].State != projection.Halted || st[0].DeadLetters != 1 || st[0].Lag != 3 {
					t.Fatalf("status = %+v, want halted with 1 dead letter and lag 3", st[0])
				}
			}
			// Still failing: retry keeps the dead letter.
			if err := r.RetryDeadLetter(ctx, "counter", dl.EventID); err == nil {
				t.Fatal("retry of a still failing dead letter succeeded")
			}
			c.setFailing("Poison", false)
			if err := r.RetryDeadLetter(ctx, "counter", dl.EventID); err != nil {
				t.Fatalf("retry: %v", err)
			}
			wctx2, cancel2 := context.WithTimeout(ctx, 5*time.Second)
			defer cancel2()
			if err := r.WaitFor(wctx2, "counter", last.Position); err != nil {
				t.Fatal(err)
			}
			if policy == projection.Halt {
				c.check(t, map[string]int64{"acct-1": 5})
			} else if c.total() != 5 {
				t.Fatalf("applied %d, want 5", c.total())
			}
			if dls, _ := r.DeadLetters(ctx, "counter"); len(dls) != 0 {
				t.Fatalf("dead letters left after retry: %+v", dls)
			}
		})
	}
}

func TestDiscardResumesHalted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	es := memory.New()
	c := newCounter()
	c.setFailing("Poison", true)
	r, err := projection.NewRunner(es, projection.NewMemoryStore(), []projection.Projection{{
		Name: "counter", Handler: c.handler(), OnFailure: projection.Halt, MaxAttempts: 1,
	}}, projection.WithBackoff(time.Millisecond, time.Millisecond), projection.WithHaltPoll(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	appendN(t, ctx, es, "a-1", "Poison", 1)
	last := appendN(t, ctx, es, "a-1", "Ok", 1)
	var dls []projection.DeadLetter
	waitUntil(t, "a dead letter", 5*time.Second, func() bool {
		dls, _ = r.DeadLetters(ctx, "counter")
		return len(dls) == 1
	})
	if err := r.DiscardDeadLetter(ctx, "counter", dls[0].EventID); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.WaitFor(wctx, "counter", last.Position); err != nil {
		t.Fatal(err)
	}
	if c.total() != 1 {
		t.Fatalf("applied %d, want 1 (the poison event discarded)", c.total())
	}
	if err := r.DiscardDeadLetter(ctx, "counter", dls[0].EventID); !errors.Is(err, projection.ErrDeadLetterNotFound) {
		t.Fatalf("second discard: %v", err)
	}
}

func TestNewRunnerValidates(t *testing.T) {
	t.Parallel()
	_, err := projection.NewRunner(memory.New(), projection.NewMemoryStore(), []projection.Projection{
		{Name: "Bad Name"}, {Name: "ok", Handler: projection.HandlerFunc(nil), MaxAttempts: -1},
	})
	if err == nil {
		t.Fatal("invalid projections accepted")
	}
	for _, want := range []string{`invalid name "Bad Name"`, `"Bad Name": no handler`, "negative MaxAttempts"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
