package process_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/process"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// The test process, "job": JobRequested on "job-<id>" starts it. It
// increments counter a-<id>, then, once that is done, records that the
// increment is undone by a decrement, and increments b-<id>. A refused
// increment of b (Closed) or the deadline compensates: a-<id> is
// decremented.

type JobRequested struct {
	Closed   bool `json:"closed"`   // b refuses the increment
	NoAnswer bool `json:"noanswer"` // b is never asked; the deadline fires
	FailUndo int  `json:"failundo"` // the undo fails this many times with a rejection
}

type JobNoted struct {
	Step string        `json:"step"`
	Req  *JobRequested `json:"req,omitempty"`
}

type jobState struct {
	Req   JobRequested
	Notes []string
}

func (s *jobState) Apply(ev any) {
	if n, ok := ev.(JobNoted); ok {
		s.Notes = append(s.Notes, n.Step)
		if n.Req != nil {
			s.Req = *n.Req
		}
	}
}

type counterCmd struct {
	Counter  string `json:"counter"`
	Closed   bool   `json:"closed"`
	FailUndo int    `json:"failundo"`
}

type Counter struct {
	aggregate.Root
	N int
}

type Incremented struct{}
type Decremented struct{}

func (c *Counter) Apply(ev any) {
	switch ev.(type) {
	case Incremented:
		c.N++
	case Decremented:
		c.N--
	}
}

func newCodec() *codec.Registry {
	r := codec.NewRegistry()
	codec.MustRegister[JobRequested](r, "JobRequested", 1)
	codec.MustRegister[JobNoted](r, "JobNoted", 1)
	codec.MustRegister[Incremented](r, "Incremented", 1)
	codec.MustRegister[Decremented](r, "Decremented", 1)
	return r
}

func jobType(deadline time.Duration) *process.Type[*jobState] {
	return &process.Type[*jobState]{
		Name:       "job",
		Starts:     []string{"JobRequested"},
		Types:      []string{"JobRequested"},
		Categories: []string{"job"},
		Correlate:  process.ByStream,
		New:        func(string) *jobState { return &jobState{} },
		Codec:      newCodec(),
		Handle: func(ctx context.Context, p *process.Process[*jobState], t process.Trigger) error {
			switch {
			case t.Is("JobRequested"):
				var req JobRequested
				if err := json.Unmarshal(t.Event.Record.Data, &req); err != nil {
					return err
				}
				p.Record(JobNoted{Step: "requested", Req: &req})
				p.SendCompensable("inc", counterCmd{Counter: "a-" + p.ID()},
					process.Command{Name: "dec", Data: counterCmd{Counter: "a-" + p.ID(), FailUndo: req.FailUndo}})
				d := time.Hour // only processes that get no answer wait for the deadline
				if req.NoAnswer {
					d = deadline
				}
				p.Schedule("deadline", d)
			case t.Kind == process.CommandSucceeded && t.Command.Name == "inc":
				if !p.State().Req.NoAnswer {
					p.Send("incb", counterCmd{Counter: "b-" + p.ID(), Closed: p.State().Req.Closed})
				}
			case t.Kind == process.CommandSucceeded && t.Command.Name == "incb":
				p.Record(JobNoted{Step: "done"})
				p.Complete()
			case t.Kind == process.CommandFailed:
				p.Compensate(t.Command.Error)
			case t.Kind == process.TimerTrigger && t.Timer == "deadline":
				p.Compensate("deadline")
			}
			return nil
		},
	}
}

type env struct {
	t      *testing.T
	url    string
	schema string
	pool   *pgxpool.Pool
	es     *espg.Store
	ps     *projpg.Store

	// local registers the counters' commands as local commands, run in
	// the trigger's transaction (ADR 0016), instead of commands the
	// dispatcher delivers.
	local bool

	mu        sync.Mutex
	undoFails map[string]int // counter -> rejections so far
}

// modes runs f once with commands delivered by the dispatcher and once
// with local commands.
func modes(t *testing.T, f func(t *testing.T, e *env)) {
	for _, local := range []bool{false, true} {
		name := "dispatched"
		if local {
			name = "local"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.local = local
			f(t, e)
		})
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	e := &env{t: t, schema: schema, pool: pool, undoFails: map[string]int{}}
	e.es, e.ps = e.stores(pool)
	ctx := testCtx(t)
	if err := e.es.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	r := e.runner(pool, jobType(time.Hour))
	for range 2 {
		if err := r.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *env) stores(pool *pgxpool.Pool) (*espg.Store, *projpg.Store) {
	es, err := espg.New(pool, espg.WithSchema(e.schema), espg.WithPollInterval(20*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	ps, err := projpg.New(pool, projpg.WithSchema(e.schema))
	if err != nil {
		e.t.Fatal(err)
	}
	return es, ps
}

// newPool opens a pool of its own, as a separate runner process would.
func (e *env) newPool() *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(testenv.DatabaseURL())
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.MaxConns = 8
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

func testCtx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return c
}

// handlers returns the command handlers, over counters kept with a
// repository on the runner's TxStore.
func (e *env) handlers(es *espg.Store) []process.Option {
	repo, err := aggregate.NewRepository(process.TxStore{Store: es}, newCodec(), func(string) *Counter { return &Counter{} })
	if err != nil {
		e.t.Fatal(err)
	}
	inc := func(ctx context.Context, cmd process.Envelope) error {
		var c counterCmd
		if err := cmd.Decode(&c); err != nil {
			return process.Reject(err)
		}
		if c.Closed {
			return process.Reject(fmt.Errorf("counter %s is closed", c.Counter))
		}
		a, err := repo.Load(ctx, c.Counter)
		if err != nil && !errors.Is(err, aggregate.ErrNotFound) {
			return err
		}
		if errors.Is(err, aggregate.ErrNotFound) {
			a = &Counter{}
			aggregate.SetID(a, c.Counter)
		}
		aggregate.Raise(a, Incremented{})
		_, err = repo.Save(ctx, a)
		return err
	}
	dec := func(ctx context.Context, cmd process.Envelope) error {
		var c counterCmd
		if err := cmd.Decode(&c); err != nil {
			return process.Reject(err)
		}
		e.mu.Lock()
		failing := e.undoFails[c.Counter] < c.FailUndo
		if failing {
			e.undoFails[c.Counter]++
		}
		e.mu.Unlock()
		if failing {
			return process.Reject(fmt.Errorf("undo of %s refused", c.Counter))
		}
		_, err := repo.Update(ctx, c.Counter, func(a *Counter) error { aggregate.Raise(a, Decremented{}); return nil })
		return err
	}
	with := process.WithCommand
	if e.local {
		with = process.WithLocalCommand
	}
	return []process.Option{with("inc", inc), with("incb", inc), with("dec", dec)}
}

func (e *env) runner(pool *pgxpool.Pool, typ *process.Type[*jobState], opts ...process.Option) *process.Runner {
	es, ps := e.stores(pool)
	all := append(e.handlers(es), process.WithLogger(quiet),
		process.WithTimerPoll(20*time.Millisecond), process.WithCommandPoll(50*time.Millisecond),
		process.WithBackoff(5*time.Millisecond, 50*time.Millisecond),
		process.WithProjectionOptions(projection.WithBackoff(5*time.Millisecond, 50*time.Millisecond), projection.WithHeartbeat(0)))
	r, err := process.NewRunner(pool, es, ps, []process.Definition{typ}, append(all, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// start runs r until the returned stop is called.
func start(t *testing.T, r *process.Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = r.Run(ctx)
	}()
	// The runner is stopped when the test ends however it ends: a
	// t.Fatal below must not leave it running on a pool the test's
	// cleanup then waits for ever to close.
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			if runErr != nil && !errors.Is(runErr, context.Canceled) {
				t.Errorf("runner: %v", runErr)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-r.Ready():
	case <-done:
		t.Fatalf("runner stopped before ready: %v", runErr)
	case <-time.After(30 * time.Second):
		t.Fatal("runner not ready after 30s")
	}
	return stop
}

func (e *env) request(ctx context.Context, id string, req JobRequested) {
	e.t.Helper()
	data, _ := json.Marshal(req)
	if _, err := e.es.Append(ctx, "job-"+id, eventstore.NoStream, eventstore.Event{Type: "JobRequested", Data: data}); err != nil {
		e.t.Fatal(err)
	}
}

// waitFor polls cond (a database read) until it holds.
func (e *env) waitFor(ctx context.Context, what string, cond func() (bool, error)) {
	e.t.Helper()
	for {
		ok, err := cond()
		if err != nil {
			e.t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			e.dump()
			e.t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (e *env) status(ctx context.Context, id string) process.Status {
	var s string
	err := e.pool.QueryRow(ctx, `SELECT status FROM `+pgx.Identifier{e.schema}.Sanitize()+`.process_instances WHERE type = 'job' AND process_id = $1`, id).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return process.Status(s)
}

func (e *env) waitStatus(ctx context.Context, id string, want process.Status) {
	e.t.Helper()
	e.waitFor(ctx, fmt.Sprintf("process %s %s", id, want), func() (bool, error) { return e.status(ctx, id) == want, nil })
}

// count counts the events of a type in a stream.
func (e *env) count(ctx context.Context, stream, typ string) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{e.schema}.Sanitize()+`.events WHERE stream_id = $1 AND type = $2`,
		stream, typ).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// scalar runs a query returning one integer.
func (e *env) scalar(ctx context.Context, sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(ctx, fmt.Sprintf(sql, pgx.Identifier{e.schema}.Sanitize()), args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// dump logs the process tables and streams, to explain a failure.
func (e *env) dump() {
	ctx := context.Background()
	q := pgx.Identifier{e.schema}.Sanitize()
	for _, sql := range []string{
		`SELECT process_id || ' ' || status || ' ' || reason FROM ` + q + `.process_instances ORDER BY process_id LIMIT 20`,
		`SELECT process_id || ' ' || name || ' ' || status || ' ' || attempts || ' ' || last_error FROM ` + q + `.process_commands ORDER BY seq LIMIT 20`,
		`SELECT process_id || ' ' || name || ' ' || due_at FROM ` + q + `.process_timers LIMIT 20`,
		`SELECT stream_id || ' ' || stream_version || ' ' || type || ' ' || data::text FROM ` + q + `.events ORDER BY position LIMIT 60`,
		`SELECT projection || ' ' || stream_id || ' ' || type || ' ' || error FROM ` + q + `.projection_dead_letters LIMIT 10`,
	} {
		rows, err := e.pool.Query(ctx, sql)
		if err != nil {
			e.t.Logf("dump: %v", err)
			continue
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		e.t.Logf("%s:\n%v (%v)", sql[:40], strings.Join(lines, "\n"), err)
	}
}
