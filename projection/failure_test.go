package projection_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/projection"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor tells a caller waiting for its own write that the write went to
// the dead letters (Skip) or that the projection halted (Halt), promptly,
// instead of returning nil or blocking until the deadline.
func TestWaitForReportsDeadLetterAndHalt(t *testing.T) {
	t.Parallel()
	for _, policy := range []projection.Policy{projection.Skip, projection.Halt} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			es := memory.New()
			c := newCounter()
			c.setFailing("Poison", true)
			r, err := projection.NewRunner(es, projection.NewMemoryStore(), []projection.Projection{{
				Name: "counter", Handler: c.handler(), OnFailure: policy, MaxAttempts: 2,
			}}, projection.WithBackoff(time.Millisecond, 5*time.Millisecond), projection.WithHaltPoll(20*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			run(t, r)
			appendN(t, ctx, es, "acct-1", "Deposited", 1)
			poison := appendN(t, ctx, es, "acct-1", "Poison", 1)
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			start := time.Now()
			err = r.WaitFor(wctx, "counter", poison.Position)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("WaitFor took %s to report the failed write", took)
			}
			var dle *projection.DeadLetterError
			if !errors.Is(err, projection.ErrDeadLettered) || !errors.As(err, &dle) {
				t.Fatalf("WaitFor of a dead-lettered write = %v, want an error carrying the dead letter", err)
			}
			if dle.DeadLetter.Position != poison.Position || dle.DeadLetter.Type != "Poison" || dle.DeadLetter.Error == "" {
				t.Fatalf("dead letter in the error = %+v", dle.DeadLetter)
			}
			if got := errors.Is(err, projection.ErrHalted); got != (policy == projection.Halt) {
				t.Fatalf("errors.Is(err, ErrHalted) = %v with policy %s: %v", got, policy, err)
			}
			// A later write: applied with Skip, blocked with Halt.
			last := appendN(t, ctx, es, "acct-1", "Deposited", 1)
			err = r.WaitFor(wctx, "counter", last.Position)
			if policy == projection.Skip {
				if err != nil {
					t.Fatalf("WaitFor of a write after a skipped one: %v", err)
				}
				return
			}
			if !errors.Is(err, projection.ErrHalted) || errors.Is(err, projection.ErrDeadLettered) {
				t.Fatalf("WaitFor of a write behind a halt = %v, want ErrHalted (not dead-lettered itself)", err)
			}
		})
	}
}

// A handler gets a view of its unit of work without the runner's controls:
// it cannot move the checkpoint nor commit.
func TestHandlerCannotMoveTheCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	es := memory.New()
	first := appendN(t, ctx, es, "acct-1", "Deposited", 1)
	appendN(t, ctx, es, "acct-1", "Deposited", 2)
	far := eventstore.Position{TxID: first.Position.TxID + 1000, Seq: first.Position.Seq + 1000}
	c := newCounter()
	var once sync.Once
	h := projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
		once.Do(func() {
			type controls interface {
				SetCheckpoint(context.Context, eventstore.Position, int) error
				Commit(context.Context) error
			}
			if u, ok := any(tx).(controls); ok {
				_ = u.SetCheckpoint(ctx, far, 0)
				_ = u.Commit(ctx)
			}
		})
		return c.handler().Handle(ctx, tx, ev)
	})
	r, err := projection.NewRunner(es, projection.NewMemoryStore(), []projection.Projection{{Name: "counter", Handler: h}},
		projection.WithBackoff(time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	last := appendN(t, ctx, es, "acct-1", "Deposited", 1)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.WaitFor(wctx, "counter", last.Position); err != nil {
		t.Fatal(err)
	}
	c.check(t, map[string]int64{"acct-1": 4})
}

// One projection whose Setup fails (or panics) is that projection's own
// state, logged and retried; the others run, and Run returns only when its
// context ends.
func TestSetupFailureStaysLocal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	es := memory.New()
	good := newCounter()
	var logs syncBuffer
	ps := []projection.Projection{
		{Name: "broken", Handler: newCounter().handler(), Setup: func(context.Context, projection.Tx) error {
			return errors.New("relation does not exist")
		}},
		{Name: "panicky", Handler: newCounter().handler(), Setup: func(context.Context, projection.Tx) error {
			var m map[string]int
			m["boom"]++ // a nil map: panics
			return nil
		}},
		{Name: "good", Handler: good.handler()},
	}
	r, err := projection.NewRunner(es, projection.NewMemoryStore(), ps,
		projection.WithBackoff(time.Millisecond, 20*time.Millisecond),
		projection.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-r.Ready():
	case err := <-done:
		t.Fatalf("Run returned %v while its context was alive", err)
	case <-time.After(10 * time.Second):
		t.Fatal("runner not ready after 10s")
	}
	last := appendN(t, ctx, es, "acct-1", "Deposited", 3)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.WaitFor(wctx, "good", last.Position); err != nil {
		t.Fatal(err)
	}
	st, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st[:2] {
		if s.State != projection.Failing || s.LastError == "" {
			t.Errorf("status of %s = %s with last error %q, want failing with the error", s.Name, s.State, s.LastError)
		}
	}
	if !strings.Contains(st[1].LastError, "panic") {
		t.Errorf("last error of panicky = %q, want the panic", st[1].LastError)
	}
	if st[2].State != projection.Running {
		t.Errorf("good is %s, want running", st[2].State)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while its context was alive", err)
	default:
	}
	out := logs.String()
	for _, want := range []string{"projection=broken", "relation does not exist", "projection=panicky"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
