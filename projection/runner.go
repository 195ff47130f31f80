package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/chronicle-go/chronicle/eventstore"
)

// ErrUnknownProjection is returned for a projection name the runner was not
// given.
var ErrUnknownProjection = errors.New("projection: unknown projection")

// ErrHalted is wrapped by errors about a projection halted on a dead letter.
var ErrHalted = errors.New("projection: halted on a dead letter")

// Runner runs projections: it catches each one up from the event store,
// then applies live records from its [Source], and keeps their checkpoints,
// dead letters and builds in a [Store].
type Runner struct {
	events  eventstore.Store
	store   Store
	opts    options
	log     *slog.Logger
	order   []string
	workers map[string]*worker

	mu      sync.Mutex
	running bool
}

// NewRunner returns a runner of projections over an event store, keeping
// its state in store. It validates the projections and has no side
// effects; call Run to start.
func NewRunner(events eventstore.Store, store Store, projections []Projection, opts ...Option) (*Runner, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	var errs []error
	if events == nil {
		errs = append(errs, errors.New("projection: nil event store"))
	}
	if store == nil {
		errs = append(errs, errors.New("projection: nil projection store"))
	}
	if o.backoffMin <= 0 || o.backoffMax < o.backoffMin {
		errs = append(errs, fmt.Errorf("projection: invalid backoff %s..%s", o.backoffMin, o.backoffMax))
	}
	if o.catchUpBatch <= 0 {
		errs = append(errs, fmt.Errorf("projection: invalid catch-up batch size %d", o.catchUpBatch))
	}
	if o.haltPoll <= 0 {
		errs = append(errs, fmt.Errorf("projection: invalid halt poll interval %s", o.haltPoll))
	}
	r := &Runner{events: events, store: store, opts: o, workers: map[string]*worker{}}
	for _, p := range projections {
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := r.workers[p.Name]; dup {
			errs = append(errs, fmt.Errorf("projection: two projections named %q", p.Name))
			continue
		}
		r.workers[p.Name] = newWorker(r, p)
		r.order = append(r.order, p.Name)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	r.log = o.logger
	if o.owner == "" {
		r.opts.owner = defaultOwner()
	}
	if o.source == nil {
		r.opts.source = NewStoreSource(events)
	}
	return r, nil
}

// Projections returns the names of the runner's projections, in the order
// given.
func (r *Runner) Projections() []string { return append([]string(nil), r.order...) }

// Run runs every projection until ctx ends, then returns nil once every
// goroutine it started has exited. A projection halted on a dead letter
// waits without stopping the others. While it runs, it records a
// [Heartbeat] per projection build in the store every few seconds (see
// [WithHeartbeat]) when the store is a [HeartbeatStore], so that Status in
// other processes reports the projection's state; when it returns, it
// records them as stopped. At the same pace it reads each projection's
// registration, and follows a build that another process registered
// (a rebuild asked for by the CLI) or switched to. Run returns an error when a
// projection cannot start (its Setup fails) or when Run is already running.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errors.New("projection: runner already running")
	}
	r.running = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()
	hctx, stopBeats := context.WithCancel(ctx)
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		r.heartbeat(hctx)
	}()
	g, gctx := errgroup.WithContext(ctx)
	for _, name := range r.order {
		w := r.workers[name]
		g.Go(func() error { return w.loop(gctx) })
	}
	err := g.Wait()
	stopBeats()
	<-beating
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}

func (r *Runner) worker(name string) (*worker, error) {
	w, ok := r.workers[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownProjection, name)
	}
	return w, nil
}

// Migrate creates or upgrades the tables of the runner's projection store
// when it keeps any (projection/postgres, component "projection"); with a
// store that has none, such as [MemoryStore], it does nothing. It is
// idempotent and safe to run from several processes at once.
func (r *Runner) Migrate(ctx context.Context) error {
	if m, ok := r.store.(interface{ Migrate(context.Context) error }); ok {
		if err := m.Migrate(ctx); err != nil {
			return fmt.Errorf("projection: migrate: %w", err)
		}
	}
	return nil
}
