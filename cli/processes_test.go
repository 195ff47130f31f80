package cli_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/cli"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/process"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

type undoState struct{}

func (*undoState) Apply(any) {}

// A compensation that fails leaves the process in compensation_failed;
// chronicle processes list shows it, show prints its history, retry
// resumes it and the compensation runs once.
func TestProcessesListShowRetry(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t, 60*time.Second)
	typ := &process.Type[*undoState]{
		Name: "undo", Starts: []string{"Begun"}, Types: []string{"Begun"}, Categories: []string{"job"},
		Correlate: process.ByStream, New: func(string) *undoState { return &undoState{} },
		Handle: func(ctx context.Context, p *process.Process[*undoState], t process.Trigger) error {
			switch {
			case t.Is("Begun"):
				p.SendCompensable("step", nil, process.Command{Name: "undo"})
			case t.Kind == process.CommandSucceeded && t.Command.Name == "step":
				p.Compensate("changed my mind")
			}
			return nil
		},
	}
	var undoFails atomic.Bool
	undoFails.Store(true)
	var undone atomic.Int64
	ps, err := projpg.New(e.pool, projpg.WithSchema(e.schema))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	r, err := process.NewRunner(e.pool, e.es, ps, []process.Definition{typ}, process.WithLogger(quiet),
		process.WithTimerPoll(20*time.Millisecond), process.WithCommandPoll(20*time.Millisecond),
		process.WithCommand("step", func(context.Context, process.Envelope) error { return nil }),
		process.WithCommand("undo", func(context.Context, process.Envelope) error {
			if undoFails.Load() {
				return process.Reject(errors.New("the undo is refused"))
			}
			undone.Add(1)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { stop(); <-done }()
	e.append("job-1", eventstore.Event{Type: "Begun"})
	admin := r.Admin()
	wait := func(want process.Status) {
		t.Helper()
		for {
			i, err := admin.Get(ctx, "undo", "1")
			if err == nil && i.Status == want {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("process undo/1: %v %v, want %s", i.Status, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait(process.CompensationFailed)

	app := e.app()
	other := newEnv(t) // migrated by chronicle migrate, never by a process runner: the tables exist
	contains(t, mustOK(t, other.run(app, "processes", "list")).stdout, "(no processes)")
	out := mustOK(t, e.run(app, "processes", "list"))
	contains(t, out.stdout, "TYPE", "COMP. FAILED", "undo", "compensation_failed", "the undo is refused")
	out = mustOK(t, e.run(app, "processes", "show", "undo", "1"))
	contains(t, out.stdout, "status compensation_failed", "Triggered", "CommandSent", "CommandSucceeded",
		"CompensationStarted", "CommandFailed", "CompensationFailed", "CORRELATION", "CAUSATION")

	undoFails.Store(false)
	out = mustOK(t, e.run(app, "processes", "retry", "undo", "1"))
	contains(t, out.stdout, "retry of undo/1 recorded")
	wait(process.Compensated)
	if n := undone.Load(); n != 1 {
		t.Errorf("the undo ran %d times, want 1", n)
	}
	mustFail(t, e.run(app, "processes", "retry", "undo", "1"), cli.ExitError, "not retryable")
	mustFail(t, e.run(app, "processes", "show", "undo", "2"), cli.ExitError, "not found")
}
