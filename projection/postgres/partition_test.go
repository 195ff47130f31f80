package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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

// TestPartitionOfMatchesSQL: Go's PartitionOf and the migration's SQL
// function chronicle_partition agree, so that reads in either place split
// streams the same way.
func TestPartitionOfMatchesSQL(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	ids := []string{"", "a", "account-1", "Konto-ÄÖÜ-ß", "日本語-ストリーム", "order-" + strings.Repeat("x", 300)}
	for i := 0; i < 200; i++ {
		ids = append(ids, fmt.Sprintf("stream-%d", i))
	}
	for _, n := range []int{2, 3, 7, 32, 1024} {
		for _, id := range ids {
			var got int
			if err := e.pool.QueryRow(ctx, `SELECT `+pgmigrate.Quote(e.schema)+`.chronicle_partition($1, $2)`, id, n).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if want := projection.PartitionOf(id, n); got != want {
				t.Fatalf("stream %q among %d: SQL says %d, Go says %d", id, n, got, want)
			}
		}
	}
}

// instance is one service instance: its own pool, stores and runner.
type instance struct {
	name   string
	pool   *pgxpool.Pool
	runner *projection.Runner
	stop   func()
}

func (e *env) instance(name string, p projection.Projection, ttl time.Duration) *instance {
	e.t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.DatabaseURL())
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(testCtx(e.t), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(pool.Close)
	es, err := espg.New(pool, espg.WithSchema(e.schema), espg.WithPollInterval(20*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	ps, err := projpg.New(pool, projpg.WithSchema(e.schema))
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := projection.NewRunner(es, ps, []projection.Projection{p},
		projection.WithBackoff(time.Millisecond, 20*time.Millisecond), projection.WithHaltPoll(20*time.Millisecond),
		projection.WithOwner(name), projection.WithLeaseTTL(ttl), projection.WithHeartbeat(200*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	in := &instance{name: name, pool: pool, runner: r}
	in.stop = run(e.t, r)
	return in
}

// spread returns how many partitions each live owner holds (by owner name
// prefix) and how many are free.
func (e *env) spread(b projection.Build) (map[string]int, int) {
	e.t.Helper()
	states, err := e.store.Partitions(testCtx(e.t), b)
	if err != nil {
		e.t.Fatal(err)
	}
	return runnertest.Spread(states)
}

// waitSpread waits until exactly the named owners hold every partition,
// each n/len or n/len+1 of them.
func (e *env) waitSpread(b projection.Build, n int, owners ...string) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, free := e.spread(b)
		if runnertest.Even(got, free, n, owners...) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("partitions not spread over %v within 15s: %v, %d free", owners, got, free)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPartitionedRunnersShareAndHandOver: 1, then 2, then 3 runners of one
// partitioned projection (separate pools) spread its partitions evenly
// within seconds while writers append; a runner killed (its context ended,
// its leases left to expire) has its partitions taken over; every event is
// applied exactly once, in per-stream order.
func TestPartitionedRunnersShareAndHandOver(t *testing.T) {
	e := newEnv(t)
	const n = 12
	p := counting("spread", 1, func(p *projection.Projection) { p.Partitions = n })
	b := projection.Build{Name: "spread", Version: 1}
	ttl := time.Second

	var writing sync.WaitGroup
	var total atomic.Int64
	stopWriting := make(chan struct{})
	write := func(round int) {
		writing.Add(1)
		go func() {
			defer writing.Done()
			for i := 0; ; i++ {
				select {
				case <-stopWriting:
					return
				default:
				}
				e.write(fmt.Sprintf("r%d-%d", round, i), 8, 5)
				total.Add(40)
			}
		}()
	}

	a := e.instance("a", p, ttl)
	write(0)
	e.waitSpread(b, n, "a")
	bi := e.instance("b", p, ttl)
	e.waitSpread(b, n, "a", "b")
	write(1)
	c := e.instance("c", p, ttl)
	e.waitSpread(b, n, "a", "b", "c")

	// Kill b: its context ends and it never releases; its leases expire.
	killed := time.Now()
	bi.stop()
	e.waitSpread(b, n, "a", "c")
	t.Logf("b's partitions taken over in %s (lease TTL %s)", time.Since(killed).Round(time.Millisecond), ttl)
	close(stopWriting)
	writing.Wait()

	_, last := e.write("last", 4, 3)
	total.Add(12)
	for _, in := range []*instance{a, c} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := in.runner.WaitFor(ctx, "spread", last); err != nil {
			t.Fatalf("WaitFor on %s: %v", in.name, err)
		}
		cancel()
	}
	got := e.counts("counts")
	var sum int64
	for s, c := range got {
		sum += c.n
		if c.bad != 0 || c.last != c.n {
			t.Errorf("stream %s: %d applied, last version %d, %d out of order", s, c.n, c.last, c.bad)
		}
	}
	if sum != total.Load() {
		t.Errorf("applied %d events, appended %d", sum, total.Load())
	}
	var dead int
	if err := e.pool.QueryRow(testCtx(t), `SELECT count(*) FROM `+pgmigrate.Quote(e.schema)+`.projection_dead_letters`).Scan(&dead); err != nil || dead != 0 {
		t.Errorf("dead letters: %d (%v)", dead, err)
	}
}

// TestFencedUnitOfWorkCannotCommitAfterTakeover: a unit of work begun under
// a lease that expired and was taken over (its owner paused) fails to
// commit with ErrLeaseLost, whether it writes the checkpoint or not, and
// none of its writes stay.
func TestFencedUnitOfWorkCannotCommitAfterTakeover(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	b := projection.Build{Name: "fenced", Version: 1}
	q := pgmigrate.Quote(e.schema)
	if _, err := e.pool.Exec(ctx, `CREATE TABLE `+q+`.fenced_rows (n int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Renew(ctx, b, 2, "old", time.Minute); err != nil {
		t.Fatal(err)
	}
	old, err := e.store.Acquire(ctx, b, "old", time.Minute, 1)
	if err != nil || len(old) != 1 || old[0].Partition != 0 {
		t.Fatalf("acquire: %v %v", old, err)
	}
	for _, writeCheckpoint := range []bool{true, false} {
		u, err := e.store.BeginPartition(ctx, old[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := projpg.From(u.Handlers()).Exec(ctx, `INSERT INTO `+q+`.fenced_rows VALUES (1)`); err != nil {
			t.Fatal(err)
		}
		// The owner pauses; its lease expires and another runner takes the
		// partition over with a new epoch.
		if _, err := e.pool.Exec(ctx, `UPDATE `+q+`.projection_leases SET expires_at = now() - interval '1 second' WHERE partition = 0`); err != nil {
			t.Fatal(err)
		}
		taken, err := e.store.Acquire(ctx, b, fmt.Sprintf("new-%v", writeCheckpoint), time.Minute, 1)
		if err != nil || len(taken) != 1 || taken[0].Partition != 0 || taken[0].Epoch <= old[0].Epoch {
			t.Fatalf("takeover: %v %v", taken, err)
		}
		if writeCheckpoint {
			err = u.SetCheckpoint(ctx, posAt(7), 1)
			if err == nil {
				err = u.Commit(ctx)
			}
		} else {
			err = u.Commit(ctx)
		}
		_ = u.Rollback(ctx)
		if !errors.Is(err, projection.ErrLeaseLost) {
			t.Fatalf("commit after takeover (checkpoint %v): %v, want ErrLeaseLost", writeCheckpoint, err)
		}
		t.Logf("refused: %v", err)
		old = taken
		var rows int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM `+q+`.fenced_rows`).Scan(&rows); err != nil || rows != 0 {
			t.Fatalf("rows written by the fenced unit of work: %d (%v)", rows, err)
		}
	}
	states, err := e.store.Partitions(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if !states[0].Checkpoint.IsZero() {
		t.Fatalf("checkpoint moved by a fenced unit of work: %s", states[0].Checkpoint)
	}
	// The owner of the epoch commits.
	u, err := e.store.BeginPartition(ctx, states[0].Lease)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.SetCheckpoint(ctx, posAt(7), 1); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPausedOwnerNeverAppliesTwice: a runner stalled inside a handler
// (ignoring its context, like a process paused by the OS) loses its leases
// to another runner, which applies the partition's events; when the stalled
// runner resumes, nothing it did commits: each event is applied once.
func TestPausedOwnerNeverAppliesTwice(t *testing.T) {
	e := newEnv(t)
	const n = 4
	gate := make(chan struct{})
	entered := make(chan struct{})
	var stall atomic.Bool
	stall.Store(true)
	p := counting("paused", 1, func(p *projection.Projection) {
		p.Partitions = n
		inner := p.Handler
		p.Handler = projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
			// The first call on stream stall-0 (in runner a) stalls,
			// ignoring its context, as a paused process would.
			if ev.Record.StreamID == "stall-0" && stall.CompareAndSwap(true, false) {
				close(entered)
				<-gate
			}
			return inner.Handle(ctx, tx, ev)
		})
	})
	a := e.instance("a", p, 600*time.Millisecond)
	e.waitSpread(projection.Build{Name: "paused", Version: 1}, n, "a")
	want, _ := e.write("stall", 1, 3)
	<-entered
	// a's leases expire while it is stalled; b takes every partition.
	q := pgmigrate.Quote(e.schema)
	if _, err := e.pool.Exec(testCtx(t), `UPDATE `+q+`.projection_leases SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	bi := e.instance("b", p, 600*time.Millisecond)
	more, last := e.write("other", 6, 4)
	for k, v := range more {
		want[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bi.runner.WaitFor(ctx, "paused", last); err != nil {
		t.Fatal(err)
	}
	close(gate) // a resumes
	_, last = e.write("after", 2, 2)
	if err := bi.runner.WaitFor(ctx, "paused", last); err != nil {
		t.Fatal(err)
	}
	if err := a.runner.WaitFor(ctx, "paused", last); err != nil {
		t.Fatal(err)
	}
	want["after-0"], want["after-1"] = 2, 2
	e.checkCounts("counts", want)
}

func posAt(seq uint64) eventstore.Position { return eventstore.Position{TxID: 1, Seq: seq} }

// firstInOtherPartition returns a stream ID (prefix-i) whose partition
// among n differs from those of the given streams.
func otherPartition(prefix string, n int, not ...string) string {
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		ok := true
		for _, s := range not {
			ok = ok && projection.PartitionOf(id, n) != projection.PartitionOf(s, n)
		}
		if ok {
			return id
		}
	}
}

// TestHaltStopsOnePartition: a poison event halts its partition only;
// writes to streams of other partitions are applied and confirmed by
// WaitForStream, a write behind the poison reports the halt, and
// discarding the dead letter resumes the partition.
func TestHaltStopsOnePartition(t *testing.T) {
	e := newEnv(t)
	const n = 4
	p := counting("halting", 1, func(p *projection.Projection) {
		p.Partitions, p.OnFailure, p.MaxAttempts = n, projection.Halt, 1
	})
	r := e.runner([]projection.Projection{p}, projection.WithLeaseTTL(time.Second))
	run(t, r)
	ctx := testCtx(t)
	sick := "sick-0"
	healthy := otherPartition("healthy", n, sick)
	poison, err := e.events.Append(ctx, sick, eventstore.Any, eventstore.Event{Type: "Poison", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	behind, err := e.events.Append(ctx, sick, eventstore.Any, eventstore.Event{Type: "Counted", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	var ok eventstore.AppendResult
	for i := 0; i < 3; i++ {
		if ok, err = e.events.Append(ctx, healthy, eventstore.Any, eventstore.Event{Type: "Counted", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.WaitForStream(ctx, "halting", healthy, ok.Position); err != nil {
		t.Fatalf("WaitForStream on a healthy partition: %v", err)
	}
	if err := r.WaitForStream(ctx, "halting", sick, poison.Position); !errors.Is(err, projection.ErrHalted) {
		t.Fatalf("WaitForStream on the poison: %v, want ErrHalted", err)
	}
	if err := r.WaitForStream(ctx, "halting", sick, behind.Position); !errors.Is(err, projection.ErrHalted) {
		t.Fatalf("WaitForStream behind the poison: %v, want ErrHalted", err)
	}
	if got := e.counts("counts")[healthy]; got.n != 3 {
		t.Fatalf("healthy stream applied %d times, want 3", got.n)
	}
	dls, err := r.Admin().DeadLetters(ctx, "halting")
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters: %v %v", dls, err)
	}
	if err := r.Admin().DiscardDeadLetter(ctx, "halting", dls[0].EventID); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitForStream(ctx, "halting", sick, behind.Position); err != nil {
		t.Fatalf("WaitForStream after the discard: %v", err)
	}
	if err := r.WaitFor(ctx, "halting", ok.Position); err != nil {
		t.Fatalf("WaitFor after the discard: %v", err)
	}
	got := e.counts("counts")
	if got[sick] != (count{n: 1, last: 2}) || got[healthy] != (count{n: 3, last: 3}) {
		t.Fatalf("counts: %+v, want the discarded poison skipped and every other event once", got)
	}
}

// TestPartitionedRebuildSwitches: a rebuild of a partitioned projection
// run by two runners builds every partition of the new build in parallel
// while the current build stays live, then switches; and a version bump
// from a projection in one partition to a partitioned one switches too.
// Readers see every event once, in order, after each switch.
func TestPartitionedRebuildSwitches(t *testing.T) {
	e := newEnv(t)
	const n = 6
	p := counting("rebuilt", 1, func(p *projection.Projection) { p.Partitions = n })
	want, _ := e.write("before", 12, 10)
	a := e.instance("a", p, time.Second)
	bi := e.instance("b", p, time.Second)
	runnertest.Ready(t, a.runner)
	runnertest.Ready(t, bi.runner)
	ctx := testCtx(t)
	stopWriting := make(chan struct{})
	wrote := make(chan map[string]int64)
	go func() {
		all := map[string]int64{}
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				wrote <- all
				return
			default:
			}
			w, _ := e.write(fmt.Sprintf("during-%d", i), 4, 3)
			for k, v := range w {
				all[k] = v
			}
		}
	}()
	if err := a.runner.Admin().Rebuild(ctx, "rebuilt"); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	close(stopWriting)
	for k, v := range <-wrote {
		want[k] = v
	}
	reg, err := e.store.Registration(ctx, "rebuilt")
	if err != nil || reg.Current != (projection.Build{Name: "rebuilt", Version: 1, Generation: 1}) {
		t.Fatalf("registration after the rebuild: %+v %v", reg, err)
	}
	more, last := e.write("after", 3, 2)
	for k, v := range more {
		want[k] = v
	}
	if err := a.runner.WaitFor(ctx, "rebuilt", last); err != nil {
		for _, g := range []int{0, 1} {
			st, _ := e.store.Partitions(testCtx(t), projection.Build{Name: "rebuilt", Version: 1, Generation: g})
			t.Logf("generation %d: %+v", g, st)
		}
		t.Fatal(err)
	}
	e.checkCounts("counts", want)
	for _, in := range []*instance{a, bi} {
		in.stop()
		in.pool.Close()
	}

	// A version bump from one partition to four, by a new instance.
	one := counting("bumped", 1)
	old := e.instance("old", one, time.Second)
	if err := old.runner.WaitFor(ctx, "bumped", last); err != nil {
		t.Fatal(err)
	}
	four := counting("bumped", 2, func(p *projection.Projection) { p.Partitions = 4 })
	nu := e.instance("new", four, time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		reg, err := e.store.Registration(ctx, "bumped")
		if err != nil {
			t.Fatal(err)
		}
		if reg.Current.Version == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no switch to version 2: %+v", reg)
		}
		time.Sleep(50 * time.Millisecond)
	}
	more, last = e.write("bumped", 3, 2)
	for k, v := range more {
		want[k] = v
	}
	if err := nu.runner.WaitFor(ctx, "bumped", last); err != nil {
		t.Fatal(err)
	}
	e.checkCounts("counts", want)
}

// TestPartitionedRunnersSurviveKillsAndRestarts: three runners of a
// projection in 16 partitions, killed (leases left to expire) and
// restarted at random while writers append; at the end the read model
// equals the log: every event applied once, in per-stream order.
func TestPartitionedRunnersSurviveKillsAndRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test")
	}
	e := newEnv(t)
	const n = 16
	p := counting("chaos", 1, func(p *projection.Projection) { p.Partitions = n })
	ttl := 600 * time.Millisecond
	live := []*instance{e.instance("i0", p, ttl), e.instance("i1", p, ttl), e.instance("i2", p, ttl)}
	var mu sync.Mutex
	want := map[string]int64{}
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := 0; w < 2; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				got, _ := e.write(fmt.Sprintf("w%d-%d", w, i), 6, 4)
				mu.Lock()
				for k, v := range got {
					want[k] = v
				}
				mu.Unlock()
			}
		}()
	}
	for round := 0; round < 6; round++ {
		time.Sleep(400 * time.Millisecond)
		k := round % len(live)
		live[k].stop() // killed: its leases expire
		live[k].pool.Close()
		live[k] = e.instance(fmt.Sprintf("i%d-r%d", k, round), p, ttl)
	}
	close(stop)
	writers.Wait()
	_, last := e.write("final", 3, 2)
	mu.Lock()
	want["final-0"], want["final-1"], want["final-2"] = 2, 2, 2
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, in := range live {
		if err := in.runner.WaitFor(ctx, "chaos", last); err != nil {
			t.Fatalf("WaitFor on %s: %v", in.name, err)
		}
	}
	e.checkCounts("counts", want)
	names := make([]string, len(live))
	for i, in := range live {
		names[i] = in.name
	}
	e.waitSpread(projection.Build{Name: "chaos", Version: 1}, n, names...)
}

// TestAdminRebuildsAPartitionedProjection: an Admin (the CLI) rebuilds a
// partitioned projection no runner runs: the first build and then a new
// generation, every partition in parallel, and returns once switched,
// with its leases released.
func TestAdminRebuildsAPartitionedProjection(t *testing.T) {
	e := newEnv(t)
	p := counting("offline", 1, func(p *projection.Projection) { p.Partitions = 4 })
	want, _ := e.write("hist", 10, 6)
	ctx := testCtx(t)
	adm, err := projection.NewAdmin(e.events, e.store, []projection.Projection{p}, projection.WithLeaseTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for gen := 0; gen < 2; gen++ {
		if err := adm.Rebuild(ctx, "offline"); err != nil {
			t.Fatalf("rebuild %d: %v", gen, err)
		}
		reg, err := e.store.Registration(ctx, "offline")
		if err != nil || reg.Current != (projection.Build{Name: "offline", Version: 1, Generation: gen}) {
			t.Fatalf("registration after rebuild %d: %+v %v", gen, reg, err)
		}
		e.checkCounts("counts", want)
		if got, free := e.spread(reg.Current); len(got) != 0 || free != 4 {
			t.Fatalf("leases after the rebuild: %v held, %d free; want all released", got, free)
		}
	}
}
