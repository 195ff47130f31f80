package projection

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Runner runs projections: it catches each one up from the event store,
// then applies live records from its [Source], and keeps their checkpoints,
// dead letters and builds in a [Store]. Each projection has its own
// supervisor: one that fails is retried on its own and never stops the
// others. The administration of projections (status, rebuilds, dead
// letters) is [Admin]; a Runner has one, [Runner.Admin], that also reaches
// the projections it runs.
type Runner struct {
	e     *engine
	sups  map[string]*supervisor
	admin *Admin

	mu      sync.Mutex
	running bool

	ready     chan struct{}
	readyOnce sync.Once
	starting  atomic.Int64
}

// NewRunner returns a runner of projections over an event store, keeping
// its state in store. It validates the projections and its options and has
// no side effects; call Run to start.
func NewRunner(events eventstore.Store, store Store, projections []Projection, opts ...Option) (*Runner, error) {
	e, err := newEngine(events, store, projections, opts)
	if err != nil {
		return nil, err
	}
	r := &Runner{e: e, sups: map[string]*supervisor{}, ready: make(chan struct{})}
	for _, name := range e.order {
		r.sups[name] = e.newSupervisor(e.projs[name], r.started)
	}
	r.admin = &Admin{e: e, local: r}
	return r, nil
}

// started counts a projection that has started; the last one closes ready.
func (r *Runner) started() {
	if r.starting.Add(-1) == 0 {
		r.readyOnce.Do(func() { close(r.ready) })
	}
}

// Projections returns the names of the runner's projections, in the order
// given.
func (r *Runner) Projections() []string { return append([]string(nil), r.e.order...) }

// Admin returns the administration of the runner's projections: status,
// rebuilds and dead letters, reaching the projections this runner runs
// (a rebuild is handed to Run, a retried dead letter resumes a halted
// projection at once).
func (r *Runner) Admin() *Admin { return r.admin }

// Ready returns a channel closed once every projection has started in Run:
// it has caught up and applies live records, or is in a state of its own
// (halted, failing, idle), or keeps its current build live beside a
// rebuild. With no projections it is closed when Run starts.
func (r *Runner) Ready() <-chan struct{} { return r.ready }

// Run runs every projection until ctx ends, then returns nil once every
// goroutine it started has exited. Each projection runs under its own
// supervisor: a projection whose Setup fails, whose store or source is
// unavailable, is failing (see [Status]), logged and retried with backoff;
// one halted on a dead letter waits; neither stops the others. While it
// runs, it records a [Heartbeat] per projection build in the store every
// few seconds (see [WithHeartbeat]) when the store is a [HeartbeatStore],
// so that Status in other processes reports the projection's state; when it
// returns, it records them as stopped. At the same pace it reads each
// projection's registration, and follows a build that another process
// registered (a rebuild asked for by the CLI) or switched to. Run returns
// an error only when it is already running.
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
	r.starting.Store(int64(len(r.sups)) + 1)
	hctx, stopBeats := context.WithCancel(ctx)
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		r.heartbeat(hctx)
	}()
	var wg sync.WaitGroup
	for _, name := range r.e.order {
		s := r.sups[name]
		wg.Go(func() { s.run(ctx) })
	}
	r.started() // the runner's own count: ready even with no projection
	wg.Wait()
	stopBeats()
	<-beating
	return nil
}

// Migrate creates or upgrades the tables of the runner's projection store;
// see [Admin.Migrate].
func (r *Runner) Migrate(ctx context.Context) error { return r.admin.Migrate(ctx) }

// Status returns a snapshot of every projection; see [Admin.Status].
func (r *Runner) Status(ctx context.Context) ([]Status, error) { return r.admin.Status(ctx) }

// Rebuild builds a projection again beside the current build; see
// [Admin.Rebuild].
func (r *Runner) Rebuild(ctx context.Context, name string) error { return r.admin.Rebuild(ctx, name) }

// DeadLetters lists a projection's dead letters; see [Admin.DeadLetters].
func (r *Runner) DeadLetters(ctx context.Context, name string) ([]DeadLetter, error) {
	return r.admin.DeadLetters(ctx, name)
}

// RetryDeadLetter applies a dead letter again; see [Admin.RetryDeadLetter].
func (r *Runner) RetryDeadLetter(ctx context.Context, name string, eventID uuid.UUID) error {
	return r.admin.RetryDeadLetter(ctx, name, eventID)
}

// DiscardDeadLetter removes a dead letter; see [Admin.DiscardDeadLetter].
func (r *Runner) DiscardDeadLetter(ctx context.Context, name string, eventID uuid.UUID) error {
	return r.admin.DiscardDeadLetter(ctx, name, eventID)
}
