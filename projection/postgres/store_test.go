package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/runnertest"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

func TestConcurrentWritersExactlyOnceInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.runner([]projection.Projection{counting("counts", 1)})
	run(t, r)
	want, last := e.write("acct", 20, 500) // 10,000 events
	waitFor(t, r, "counts", last)
	e.checkCounts("counts", want)
	st, err := r.Status(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if s := st[0]; s.State != projection.Running || s.Lag != 0 || s.Checkpoint != last || s.Current.Version != 1 || s.DeadLetters != 0 {
		t.Fatalf("status = %+v", s)
	}
}

// redeliver is a source that delivers every record twice, as NATS does
// when a consumer dies after its commit and before its ack.
type redeliver struct{ projection.Source }

func (s redeliver) Open(ctx context.Context, req projection.SourceRequest) (projection.Feed, error) {
	f, err := s.Source.Open(ctx, req)
	if err != nil {
		return nil, err
	}
	out := &twiceFeed{Feed: f, ch: make(chan projection.Delivery)}
	go func() {
		defer close(out.ch)
		var prev *projection.Delivery
		for d := range f.Deliveries() {
			out.ch <- d
			if prev != nil {
				out.ch <- *prev // an older record again, after a newer one
			}
			out.ch <- d
			p := d
			prev = &p
		}
	}()
	return out, nil
}

type twiceFeed struct {
	projection.Feed
	ch chan projection.Delivery
}

func (f *twiceFeed) Deliveries() <-chan projection.Delivery { return f.ch }
func (f *twiceFeed) Close() error {
	err := f.Feed.Close()
	for range f.ch {
	}
	return err
}

func TestRedeliveriesAreAppliedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.runner([]projection.Projection{counting("counts", 1)},
		projection.WithSource(redeliver{projection.NewStoreSource(e.events)}))
	run(t, r)
	want, last := e.write("acct", 4, 100)
	waitFor(t, r, "counts", last)
	e.checkCounts("counts", want)
}

func TestTwoRunnersOneProjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r1 := e.runner([]projection.Projection{counting("counts", 1)})
	r2 := e.runner([]projection.Projection{counting("counts", 1)})
	run(t, r1)
	run(t, r2)
	want, last := e.write("acct", 8, 100)
	waitFor(t, r1, "counts", last)
	waitFor(t, r2, "counts", last)
	e.checkCounts("counts", want)
}

func TestRestartResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.runner([]projection.Projection{counting("counts", 1)})
	stop := run(t, r)
	want, last := e.write("acct", 4, 50)
	waitFor(t, r, "counts", last)
	stop()
	more, last := e.write("more", 2, 30)
	r2 := e.runner([]projection.Projection{counting("counts", 1)})
	run(t, r2)
	waitFor(t, r2, "counts", last)
	for k, v := range more {
		want[k] = v
	}
	e.checkCounts("counts", want)
}

func TestPoisonEvent(t *testing.T) {
	t.Parallel()
	for _, policy := range []projection.Policy{projection.Skip, projection.Halt} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := testCtx(t)
			r := e.runner([]projection.Projection{counting("counts", 1, func(p *projection.Projection) {
				p.OnFailure, p.MaxAttempts = policy, 3
			})})
			run(t, r)
			// A batch with the poison pill in the middle.
			if _, err := e.events.Append(ctx, "acct-1", eventstore.NoStream,
				eventstore.Event{Type: "Counted"}, eventstore.Event{Type: "Counted"}); err != nil {
				t.Fatal(err)
			}
			poison, err := e.events.Append(ctx, "acct-2", eventstore.NoStream, eventstore.Event{Type: "Poison"})
			if err != nil {
				t.Fatal(err)
			}
			last, err := e.events.Append(ctx, "acct-3", eventstore.NoStream, eventstore.Event{Type: "Counted"})
			if err != nil {
				t.Fatal(err)
			}
			var dls []projection.DeadLetter
			deadline := time.Now().Add(20 * time.Second)
			for len(dls) == 0 && time.Now().Before(deadline) {
				if dls, err = r.DeadLetters(ctx, "counts"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if len(dls) != 1 {
				t.Fatalf("dead letters = %+v, want 1", dls)
			}
			dl := dls[0]
			if dl.StreamID != "acct-2" || dl.StreamVersion != 1 || dl.Type != "Poison" || dl.Attempts != 3 ||
				dl.Position != poison.Position || dl.Build.Version != 1 || !contains(dl.Error, "poison pill") {
				t.Fatalf("dead letter = %+v", dl)
			}
			if policy == projection.Skip {
				waitFor(t, r, "counts", last.Position)
				e.checkCounts("counts", map[string]int64{"acct-1": 2, "acct-3": 1})
			} else {
				wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				if err := r.WaitFor(wctx, "counts", last.Position); !errors.Is(err, projection.ErrHalted) {
					t.Fatalf("WaitFor past a halt: %v, want ErrHalted", err)
				}
				e.checkCounts("counts", map[string]int64{"acct-1": 2})
				st, err := r.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st[0].State != projection.Halted || st[0].DeadLetters != 1 || st[0].Lag != 2 || st[0].LagTime <= 0 {
					t.Fatalf("status = %+v", st[0])
				}
				if err := r.DiscardDeadLetter(ctx, "counts", dl.EventID); err != nil {
					t.Fatal(err)
				}
				waitFor(t, r, "counts", last.Position)
				e.checkCounts("counts", map[string]int64{"acct-1": 2, "acct-3": 1})
			}
		})
	}
}

func TestVersionBumpRebuildsBesideWhileWriting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	v1 := e.runner([]projection.Projection{counting("counts", 1)})
	stop1 := run(t, v1)
	want, last := e.write("acct", 10, 100)
	waitFor(t, v1, "counts", last)
	stop1()

	// Writers keep appending while version 2 rebuilds.
	var mu sync.Mutex
	var progress []projection.Progress
	v2 := e.runner([]projection.Projection{counting("counts", 2)}, projection.WithCatchUpBatchSize(100),
		projection.WithProgress(func(p projection.Progress) { mu.Lock(); progress = append(progress, p); mu.Unlock() }))
	var wg sync.WaitGroup
	var more map[string]int64
	var last2 eventstore.Position
	wg.Add(1)
	go func() {
		defer wg.Done()
		more, last2 = e.write("more", 4, 100)
	}()
	// Until the switch readers see version 1 through the stable view.
	e.checkCounts("counts", want)
	run(t, v2)
	wg.Wait()
	waitFor(t, v2, "counts", last2)
	for k, v := range more {
		want[k] = v
	}
	e.checkCounts("counts", want)    // the view, now over counts_v2
	e.checkCounts("counts_v2", want) // built beside
	reg, err := e.store.Registration(ctx, "counts")
	if err != nil {
		t.Fatal(err)
	}
	if reg.Current.Version != 2 || reg.Rebuilding() {
		t.Fatalf("registration = %+v", reg)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(progress) == 0 || !progress[len(progress)-1].Finished || !progress[len(progress)-1].Rebuild {
		t.Fatalf("progress reports = %+v", progress)
	}
	// The old build can now be dropped.
	if err := e.store.DropBuild(ctx, projection.Build{Name: "counts", Version: 1}, []string{"counts"}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DropBuild(ctx, reg.Current, []string{"counts"}); err == nil {
		t.Fatal("dropping the current build succeeded")
	}
}

func TestExplicitRebuildWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	r := e.runner([]projection.Projection{counting("counts", 1)})
	run(t, r)
	want, last := e.write("acct", 5, 100)
	waitFor(t, r, "counts", last)
	var wg sync.WaitGroup
	var more map[string]int64
	var last2 eventstore.Position
	wg.Add(1)
	go func() {
		defer wg.Done()
		more, last2 = e.write("more", 3, 100)
	}()
	if err := r.Rebuild(ctx, "counts"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	waitFor(t, r, "counts", last2)
	for k, v := range more {
		want[k] = v
	}
	e.checkCounts("counts", want)
	e.checkCounts("counts_v1_1", want)
	reg, _ := e.store.Registration(ctx, "counts")
	if reg.Current != (projection.Build{Name: "counts", Version: 1, Generation: 1}) {
		t.Fatalf("current = %s", reg.Current)
	}
}

func TestInterruptedRebuildResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	r := e.runner([]projection.Projection{counting("counts", 1)})
	want, last := e.write("acct", 10, 200)
	stop := run(t, r)
	waitFor(t, r, "counts", last)
	stop()
	// A rebuild (no Run) cut short by its context.
	var once sync.Once
	cctx, cancel := context.WithCancel(ctx)
	rb := e.runner([]projection.Projection{counting("counts", 2)}, projection.WithCatchUpBatchSize(100),
		projection.WithProgress(func(p projection.Progress) {
			if p.Done > 0 && !p.Finished {
				once.Do(cancel)
			}
		}))
	if err := rb.Rebuild(cctx, "counts"); err == nil {
		t.Fatal("interrupted rebuild returned nil")
	}
	reg, _ := e.store.Registration(ctx, "counts")
	if reg.Current.Version != 1 || reg.Target.Version != 2 {
		t.Fatalf("after interruption registration = %+v", reg)
	}
	e.checkCounts("counts", want) // still version 1
	// Resume: Run picks the build under way up from its checkpoint.
	r2 := e.runner([]projection.Projection{counting("counts", 2)})
	run(t, r2)
	runnertest.Ready(t, r2) // caught up and switched: version 2 is live
	reg, _ = e.store.Registration(ctx, "counts")
	if reg.Current.Version != 2 {
		t.Fatalf("after resume registration = %+v", reg)
	}
	waitFor(t, r2, "counts", last)
	e.checkCounts("counts", want)
	e.checkCounts("counts_v2", want)
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestConnectionLossIsNotAPoisonEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	// The projection store gets its own pool, named so that its backends
	// can be killed without touching anyone else's.
	cfg, err := pgxpool.ParseConfig(testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = e.schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ps, err := projpg.New(pool, projpg.WithSchema(e.schema))
	if err != nil {
		t.Fatal(err)
	}
	r, err := projection.NewRunner(e.events, ps, []projection.Projection{counting("counts", 1, func(p *projection.Projection) {
		p.MaxAttempts, p.BatchSize = 2, 20
	})}, projection.WithBackoff(time.Millisecond, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	done := make(chan struct{})
	killed := 0
	go func() {
		defer close(done)
		for i := 0; i < 15; i++ {
			time.Sleep(30 * time.Millisecond)
			var n int
			if err := e.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`,
				e.schema).Scan(&n); err == nil {
				killed += n
			}
		}
	}()
	want, last := e.write("acct", 4, 150)
	<-done
	waitFor(t, r, "counts", last)
	e.checkCounts("counts", want)
	if killed == 0 {
		t.Fatal("no projection connection was killed: the test proves nothing")
	}
	if dls, err := e.store.DeadLetters(ctx, "counts"); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters after connection losses: %+v, %v", dls, err)
	}
}

func TestStatusReportsHeldBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	r := e.runner([]projection.Projection{counting("counts", 1)})
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	// An open transaction that has written holds later commits back.
	if _, err := e.events.AppendTx(ctx, tx, "acct-1", eventstore.NoStream, eventstore.Event{Type: "Counted"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.events.Append(ctx, "acct-2", eventstore.NoStream, eventstore.Event{Type: "Counted"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	st, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The held-back event is lag too: committed, not applied.
	if st[0].HeldBack < 1 || st[0].OldestOpen <= 0 || st[0].Lag < 1 || st[0].LagTime < st[0].OldestOpen {
		t.Fatalf("status = %+v, want the committed event held back by the open transaction, counted as lag", st[0])
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Other tests' transactions, anywhere on the cluster, may hold the
	// event back a little longer: wait for it to become visible.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err = r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Lag == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st[0].Lag != 1 || st[0].State != projection.Stopped || st[0].Name != "counts" || st[0].Version != 1 {
		t.Fatalf("status after the rollback = %+v", st[0])
	}
}
