package jetstream_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/internal/runnertest"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
	projjs "github.com/chronicle-go/chronicle/projection/jetstream"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

type env struct {
	t      *testing.T
	pool   *pgxpool.Pool
	schema string
	events *espg.Store
	store  *projpg.Store
	nats   *testenv.NATSServer
	nc     *nats.Conn
	js     njs.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := testenv.NATS(t)
	e := newEnvOn(t, srv.URL())
	e.nats = srv
	return e
}

// newEnvOn returns an env on the NATS server at url (e.nats is nil).
func newEnvOn(t *testing.T, url string) *env {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	es, err := espg.New(pool, espg.WithSchema(schema), espg.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := projpg.New(pool, projpg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := es.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ps.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, pool: pool, schema: schema, events: es, store: ps, nc: nc, js: js}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// startRelay runs a relay until the test ends and returns it.
func (e *env) startRelay(opts ...relay.Option) *relay.Relay {
	e.t.Helper()
	r, err := relay.New(e.events, e.nc, e.pool, append([]relay.Option{relay.WithSchema(e.schema),
		relay.WithLockPollInterval(50 * time.Millisecond), relay.WithBackoff(20*time.Millisecond, 200*time.Millisecond)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := r.Migrate(testCtx(e.t)); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("relay Run: %v", err)
		}
	})
	// Wait for the stream, so sources can open.
	select {
	case <-r.Ready():
	case err := <-done:
		done <- err // for the cleanup
		e.t.Fatalf("relay Run ended before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		e.t.Fatal("relay did not become ready within 30s")
	}
	return r
}

func (e *env) source(opts ...projjs.Option) *projjs.Source {
	e.t.Helper()
	s, err := projjs.NewSource(e.js, e.events, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) runner(src projection.Source, ps []projection.Projection, opts ...projection.Option) *projection.Runner {
	e.t.Helper()
	r, err := projection.NewRunner(e.events, e.store, ps, append([]projection.Option{
		projection.WithSource(src),
		projection.WithBackoff(time.Millisecond, 10*time.Millisecond),
		projection.WithHaltPoll(20 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func counting(name string, extra ...func(*projection.Projection)) projection.Projection {
	p := projection.Projection{
		Name:   name,
		Tables: []string{"counts"},
		Setup: func(ctx context.Context, tx projection.Tx) error {
			_, err := projpg.From(tx).Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tx.Table("counts")+` (
				stream_id text PRIMARY KEY, n bigint NOT NULL, last_version bigint NOT NULL, bad bigint NOT NULL DEFAULT 0)`)
			return err
		},
		Handler: projpg.Handler(func(ctx context.Context, tx *projpg.Tx, ev projection.Event) error {
			if ev.Record.Type == "Poison" {
				return fmt.Errorf("poison pill")
			}
			tx.Queue(`INSERT INTO `+tx.Table("counts")+` AS c (stream_id, n, last_version) VALUES ($1, 1, $2)
				ON CONFLICT (stream_id) DO UPDATE SET n = c.n + 1, last_version = EXCLUDED.last_version,
				bad = c.bad + (c.last_version <> EXCLUDED.last_version - 1)::int`, ev.Record.StreamID, ev.Record.StreamVersion)
			return nil
		}),
	}
	for _, f := range extra {
		f(&p)
	}
	return p
}

func (e *env) checkCounts(want map[string]int64) {
	e.t.Helper()
	rows, err := e.pool.Query(testCtx(e.t), `SELECT stream_id, n, last_version, bad FROM `+pgmigrate.Quote(e.schema)+`.counts`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	got := map[string][3]int64{}
	for rows.Next() {
		var s string
		var c [3]int64
		if err := rows.Scan(&s, &c[0], &c[1], &c[2]); err != nil {
			e.t.Fatal(err)
		}
		got[s] = c
	}
	if len(got) != len(want) {
		e.t.Errorf("counts has %d streams, want %d", len(got), len(want))
	}
	for s, n := range want {
		if c := got[s]; c != [3]int64{n, n, 0} {
			e.t.Errorf("stream %s: applied %d (last version %d, %d out of order), want %d once each in order", s, c[0], c[1], c[2], n)
		}
	}
}

// writers appends from k goroutines until the returned stop is called
// (which waits for them): each time a goroutine writes streams streams of
// events events (see write), with a prefix of its own; total counts the
// events written.
func (e *env) writers(k, streams, events int) (stop func(), total *atomic.Int64) {
	total = new(atomic.Int64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				e.write(fmt.Sprintf("w%d-%d", w, i), streams, events)
				total.Add(int64(streams * events))
			}
		}()
	}
	return func() { close(done); wg.Wait() }, total
}

func (e *env) write(prefix string, streams, n int) (map[string]int64, eventstore.Position) {
	e.t.Helper()
	ctx := testCtx(e.t)
	var mu sync.Mutex
	var last eventstore.Position
	want := map[string]int64{}
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for w := 0; w < streams; w++ {
		id := fmt.Sprintf("%s-%d", prefix, w)
		want[id] = int64(n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; {
				k := min(5, n-i)
				evs := make([]eventstore.Event, k)
				for j := range evs {
					evs[j] = eventstore.Event{Type: "Counted"}
				}
				res, err := e.events.Append(ctx, id, eventstore.Any, evs...)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if last.Before(res.Position) {
					last = res.Position
				}
				mu.Unlock()
				i += k
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatalf("append: %v", err)
	}
	return want, last
}

func run(t *testing.T, r *projection.Runner) (stop func()) {
	t.Helper()
	return runnertest.Run(t, r)
}

func waitFor(t *testing.T, r *projection.Runner, name string, pos eventstore.Position) {
	t.Helper()
	runnertest.WaitFor(t, r, name, pos)
}

// topo is where the env's relay publishes: the default of its schema.
func (e *env) topo() wire.Topology { return wire.DefaultTopology(e.schema) }
