// Package projectiontest helps test a projection: given events, run the
// projection against a real read model, then assert on the read model.
//
//	f := projectiontest.New(t, balances)
//	f.Given("account-1", opened, deposited)
//	f.Run()
//	// assert on the read model the handler wrote
//
// By default the events go to an in-memory event store and checkpoints to a
// projection.MemoryStore, which suits in-memory read models; pass
// WithEventStore and WithStore to run against PostgreSQL.
package projectiontest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/projection"
)

// Fixture runs one projection in a test.
type Fixture struct {
	t       testing.TB
	p       projection.Projection
	events  eventstore.Store
	store   projection.Store
	opts    []projection.Option
	timeout time.Duration
	runner  *projection.Runner
}

// Option configures a [Fixture].
type Option func(*Fixture)

// WithEventStore sets the event store (default: a new memory store).
func WithEventStore(s eventstore.Store) Option { return func(f *Fixture) { f.events = s } }

// WithStore sets the projection store (default: a new
// projection.MemoryStore).
func WithStore(s projection.Store) Option { return func(f *Fixture) { f.store = s } }

// WithRunnerOptions passes options to the runner, such as
// projection.WithDecoder.
func WithRunnerOptions(opts ...projection.Option) Option {
	return func(f *Fixture) { f.opts = append(f.opts, opts...) }
}

// WithTimeout bounds each Run (default 10s).
func WithTimeout(d time.Duration) Option { return func(f *Fixture) { f.timeout = d } }

// New returns a fixture for p. It fails the test when p is invalid.
func New(t testing.TB, p projection.Projection, opts ...Option) *Fixture {
	t.Helper()
	f := &Fixture{t: t, p: p, timeout: 10 * time.Second}
	for _, o := range opts {
		o(f)
	}
	if f.events == nil {
		f.events = memory.New()
	}
	if f.store == nil {
		f.store = projection.NewMemoryStore()
	}
	base := []projection.Option{projection.WithBackoff(time.Millisecond, 10*time.Millisecond), projection.WithHaltPoll(10 * time.Millisecond)}
	r, err := projection.NewRunner(f.events, f.store, []projection.Projection{p}, append(base, f.opts...)...)
	if err != nil {
		t.Fatalf("projectiontest: %v", err)
	}
	f.runner = r
	return f
}

// Events returns the fixture's event store.
func (f *Fixture) Events() eventstore.Store { return f.events }

// Runner returns the fixture's runner, for WaitFor, Status or dead letters.
func (f *Fixture) Runner() *projection.Runner { return f.runner }

// Given appends events to a stream, failing the test on error.
func (f *Fixture) Given(streamID string, events ...eventstore.Event) *Fixture {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	if _, err := f.events.Append(ctx, streamID, eventstore.Any, events...); err != nil {
		f.t.Fatalf("projectiontest: given %d events on %q: %v", len(events), streamID, err)
	}
	return f
}

// Run runs the projection until it has applied every event in the store
// (events that fail go to dead letters by the projection's policy), then
// stops it. It fails the test on error or timeout.
func (f *Fixture) Run() *Fixture {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	head, err := f.events.Head(ctx)
	if err != nil {
		f.t.Fatalf("projectiontest: read head: %v", err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.runner.Run(rctx) }()
	werr := f.waitOrHalt(ctx, head)
	stop()
	if err := <-done; err != nil {
		f.t.Fatalf("projectiontest: run %q: %v", f.p.Name, err)
	}
	if werr != nil {
		f.t.Fatalf("projectiontest: run %q up to %s: %v", f.p.Name, head, werr)
	}
	return f
}

// waitOrHalt waits for head, or for the projection to halt on a dead
// letter (then the test can assert on it).
func (f *Fixture) waitOrHalt(ctx context.Context, head eventstore.Position) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- f.runner.WaitFor(wctx, f.p.Name, head) }()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-res:
			if errors.Is(err, projection.ErrDeadLettered) || errors.Is(err, projection.ErrHalted) {
				return nil // the test asserts on the dead letters
			}
			return err
		case <-t.C:
			st, err := f.runner.Status(ctx)
			if err == nil && len(st) == 1 && st[0].State == projection.Halted {
				return nil
			}
		}
	}
}

// DeadLetters returns the projection's dead letters.
func (f *Fixture) DeadLetters() []projection.DeadLetter {
	f.t.Helper()
	dls, err := f.runner.DeadLetters(context.Background(), f.p.Name)
	if err != nil {
		f.t.Fatalf("projectiontest: dead letters: %v", err)
	}
	return dls
}
