package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/internal/runnertest"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

type env struct {
	t      *testing.T
	pool   *pgxpool.Pool
	schema string
	events *espg.Store
	store  *projpg.Store
}

func newEnv(t *testing.T) *env {
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
	// The runner's Migrate migrates its store, twice without harm.
	for i := 0; i < 2; i++ {
		r, err := projection.NewRunner(es, ps, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return &env{t: t, pool: pool, schema: schema, events: es, store: ps}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// counting is a read model counting each stream's events and how many
// arrived out of order: a double apply or a reordering shows as n != the
// stream's length or bad > 0.
func counting(name string, version int, extra ...func(*projection.Projection)) projection.Projection {
	p := projection.Projection{
		Name:    name,
		Version: version,
		Tables:  []string{"counts"},
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

type count struct{ n, last, bad int64 }

// counts reads the stable view (or a given table) of the counting model.
func (e *env) counts(table string) map[string]count {
	e.t.Helper()
	rows, err := e.pool.Query(testCtx(e.t), `SELECT stream_id, n, last_version, bad FROM `+pgmigrate.Quote(e.schema)+`.`+pgmigrate.Quote(table))
	if err != nil {
		e.t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	out := map[string]count{}
	for rows.Next() {
		var s string
		var c count
		if err := rows.Scan(&s, &c.n, &c.last, &c.bad); err != nil {
			e.t.Fatal(err)
		}
		out[s] = c
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// checkCounts asserts each stream was applied exactly once, in order.
func (e *env) checkCounts(table string, want map[string]int64) {
	e.t.Helper()
	got := e.counts(table)
	if len(got) != len(want) {
		e.t.Errorf("%s has %d streams, want %d", table, len(got), len(want))
	}
	for s, n := range want {
		c := got[s]
		if c.n != n || c.last != n || c.bad != 0 {
			e.t.Errorf("%s: stream %s: applied %d (last version %d, %d out of order), want %d once each in order", table, s, c.n, c.last, c.bad, n)
		}
	}
}

// write appends n events to each of streams streams concurrently, one
// writer per stream, in appends of up to 5 events, and returns the
// streams' lengths and the last position.
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
					evs[j] = eventstore.Event{Type: "Counted", Data: []byte(fmt.Sprintf(`{"i":%d}`, i+j))}
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

func (e *env) runner(ps []projection.Projection, opts ...projection.Option) *projection.Runner {
	e.t.Helper()
	r, err := projection.NewRunner(e.events, e.store, ps, append([]projection.Option{
		projection.WithBackoff(time.Millisecond, 10*time.Millisecond),
		projection.WithHaltPoll(20 * time.Millisecond),
		projection.WithLogStatus(projpg.LogStatus(e.events)),
	}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// run starts r.Run and returns a stop function, also run at cleanup, that
// fails the test if Run returned an error or did not return.
func run(t *testing.T, r *projection.Runner) (stop func()) {
	t.Helper()
	return runnertest.Run(t, r)
}

func waitFor(t *testing.T, r *projection.Runner, name string, pos eventstore.Position) {
	t.Helper()
	runnertest.WaitFor(t, r, name, pos)
}
