package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/snapshot"
	snappg "github.com/chronicle-go/chronicle/snapshot/postgres"
)

// agOpened and agDeposited are the benchmark aggregate's events.
type agOpened struct {
	Owner    string `json:"owner"`
	Currency string `json:"currency"`
}

type agDeposited struct {
	Amount int    `json:"amount"`
	Note   string `json:"note"`
	Ref    string `json:"ref"`
}

// agAccount is the benchmark aggregate.
type agAccount struct {
	aggregate.Root
	Owner    string `json:"owner"`
	Currency string `json:"currency"`
	Balance  int    `json:"balance"`
	Count    int    `json:"count"`
}

func newAgAccount(string) *agAccount { return &agAccount{} }

func (a *agAccount) Apply(event any) {
	switch e := event.(type) {
	case agOpened:
		a.Owner, a.Currency = e.Owner, e.Currency
	case agDeposited:
		a.Balance += e.Amount
		a.Count++
	}
}

func (a *agAccount) deposit(n int) error {
	aggregate.Raise(a, agDeposited{Amount: n, Note: "benchmark deposit", Ref: "ref-0001"})
	return nil
}

func agRegistry() *codec.Registry {
	reg := codec.NewRegistry()
	codec.MustRegister[agOpened](reg, "Opened", 1)
	codec.MustRegister[agDeposited](reg, "Deposited", 1)
	return reg
}

type agBench struct {
	env   *Env
	store *espg.Store
	snaps *snappg.Store
	reg   *codec.Registry
	raw   string // schema of the raw INSERT baseline's table
}

// benchAggregate measures aggregate loads and updates beside the raw reads
// and inserts they are built on, on PostgreSQL.
func benchAggregate(ctx context.Context, env *Env) ([]Row, error) {
	b := &agBench{env: env, reg: agRegistry()}
	schema := env.Schema("aggregate")
	var err error
	if b.store, err = espg.New(env.Pool, espg.WithSchema(schema)); err != nil {
		return nil, err
	}
	if err := b.store.Migrate(ctx); err != nil {
		return nil, err
	}
	if b.snaps, err = snappg.New(env.Pool, snappg.WithSchema(schema)); err != nil {
		return nil, err
	}
	if err := b.snaps.Migrate(ctx); err != nil {
		return nil, err
	}
	raw, err := espg.New(env.Pool, espg.WithSchema(env.Schema("aggregate_raw")))
	if err != nil {
		return nil, err
	}
	if err := raw.Migrate(ctx); err != nil {
		return nil, err
	}
	b.raw = raw.Schema()

	var rows []Row
	one := func(f func(context.Context) (Row, error)) func(context.Context) ([]Row, error) {
		return func(ctx context.Context) ([]Row, error) {
			r, err := f(ctx)
			return []Row{r}, err
		}
	}
	updateNoCache := func(ctx context.Context) ([]Row, error) { return b.updateFig(ctx, "upd", 0) }
	updateCache := func(ctx context.Context) ([]Row, error) { return b.updateFig(ctx, "updc", 1000) }
	figs := []func(context.Context) ([]Row, error){one(b.loadFig), one(b.snapshotFig), updateNoCache, updateCache, b.updateManyFigs, one(b.hotFig)}
	if env.Match != "" {
		figs = figs[2:5] // only the Update figures (not the hot aggregate's)
	}
	for _, fig := range figs {
		r, err := fig(ctx)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// fill appends an Opened event and n-1 deposits to stream, 500 per call.
func (b *agBench) fill(ctx context.Context, stream string, n int) error {
	evs := []eventstore.Event{{Type: "Opened", Data: []byte(`{"owner":"ada","currency":"EUR"}`)}}
	for i := 1; i < n; i++ {
		data, _ := json.Marshal(agDeposited{Amount: i % 100, Note: "benchmark deposit", Ref: fmt.Sprintf("ref-%04d", i%10000)})
		evs = append(evs, eventstore.Event{Type: "Deposited", Data: data})
		if len(evs) == 500 || i == n-1 {
			if _, err := b.store.Append(ctx, stream, eventstore.Any, evs...); err != nil {
				return err
			}
			evs = evs[:0]
		}
	}
	return nil
}

// timeBest runs f reps times per round, three rounds, and returns the best
// round's time per call.
func timeBest(reps int, f func() error) (time.Duration, error) {
	var best time.Duration
	for round := 0; round < 3; round++ {
		start := time.Now()
		for i := 0; i < reps; i++ {
			if err := f(); err != nil {
				return 0, err
			}
		}
		best = stMin(best, time.Since(start)/time.Duration(reps))
	}
	return best, nil
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// loadFig: Load of a 1,000-event aggregate, no snapshot, against
// ReadStream + json.Unmarshal of the same stream.
func (b *agBench) loadFig(ctx context.Context) (Row, error) {
	const n = 1000
	if err := b.fill(ctx, "load-1", n); err != nil {
		return Row{}, err
	}
	repo, err := aggregate.NewRepository(b.store, b.reg, newAgAccount)
	if err != nil {
		return Row{}, err
	}
	reps := b.env.N(50, 10)
	rawLoad := func() error {
		var a agAccount
		for rec, err := range b.store.ReadStream(ctx, "load-1", eventstore.ReadStreamOptions{}) {
			if err != nil {
				return err
			}
			switch rec.Type {
			case "Opened":
				var e agOpened
				if err := json.Unmarshal(rec.Data, &e); err != nil {
					return err
				}
				a.Apply(e)
			case "Deposited":
				var e agDeposited
				if err := json.Unmarshal(rec.Data, &e); err != nil {
					return err
				}
				a.Apply(e)
			}
		}
		if a.Count != n-1 {
			return fmt.Errorf("raw read applied %d deposits, want %d", a.Count, n-1)
		}
		return nil
	}
	load := func() error {
		a, err := repo.Load(ctx, "load-1")
		if err == nil && (a.Count != n-1 || a.Version() != n) {
			err = fmt.Errorf("Load gave v%d with %d deposits, want v%d", a.Version(), a.Count, n)
		}
		return err
	}
	var raw, agg time.Duration
	for i := 0; i < 2; i++ { // alternate, keep the best of each
		d, err := timeBest(reps, rawLoad)
		if err != nil {
			return Row{}, fmt.Errorf("raw load: %w", err)
		}
		raw = stMin(raw, d)
		if d, err = timeBest(reps, load); err != nil {
			return Row{}, fmt.Errorf("Load: %w", err)
		}
		agg = stMin(agg, d)
	}
	r := ratioRow("Load of a 1,000-event aggregate, no snapshot", micros(agg), micros(raw), "µs/load", 1.2, false)
	r.Baseline += " (ReadStream + json.Unmarshal)"
	return r, nil
}

// snapshotFig: Load of a 10,000-event aggregate with Every(100) snapshots
// against its full replay.
func (b *agBench) snapshotFig(ctx context.Context) (Row, error) {
	const n = 10000
	if err := b.fill(ctx, "snap-1", n-1); err != nil {
		return Row{}, err
	}
	withSnaps, err := aggregate.NewRepository(b.store, b.reg, newAgAccount, aggregate.WithSnapshots(b.snaps, snapshot.Every(100)))
	if err != nil {
		return Row{}, err
	}
	// The save from 9,999 to 10,000 crosses a multiple of 100: a snapshot.
	if _, err := withSnaps.Update(ctx, "snap-1", func(a *agAccount) error { return a.deposit(1) }); err != nil {
		return Row{}, err
	}
	if st := withSnaps.Stats(); st.SnapshotsTaken != 1 {
		return Row{}, fmt.Errorf("want one snapshot taken, stats %+v", st)
	}
	full, err := aggregate.NewRepository(b.store, b.reg, newAgAccount)
	if err != nil {
		return Row{}, err
	}
	check := func(repo *aggregate.Repository[*agAccount]) func() error {
		return func() error {
			a, err := repo.Load(ctx, "snap-1")
			if err == nil && (a.Version() != n || a.Count != n-1) {
				err = fmt.Errorf("Load gave v%d with %d deposits, want v%d", a.Version(), a.Count, n)
			}
			return err
		}
	}
	dFull, err := timeBest(b.env.N(5, 2), check(full))
	if err != nil {
		return Row{}, fmt.Errorf("full replay: %w", err)
	}
	dSnap, err := timeBest(b.env.N(200, 20), check(withSnaps))
	if err != nil {
		return Row{}, fmt.Errorf("snapshot load: %w", err)
	}
	r := ratioRow("Load of a 10,000-event aggregate, Every(100) snapshots", micros(dSnap), micros(dFull), "µs/load", 0.05, false)
	r.Baseline += " (full replay)"
	r.Ratio = fmt.Sprintf("%.4fx", float64(dSnap)/float64(dFull))
	return r, nil
}

// updateFig: Update on distinct aggregates from 8 goroutines with
// Every(100) snapshots, against single-row INSERTs on 8 connections.
// With a cache (every command a hit: one aggregate per goroutine), it also
// compares Update with the store's own Append of one event per call, which
// bounds it, and measures Update with WithAsyncSnapshots. The runs
// alternate over rounds, a first one of each to warm up.
func (b *agBench) updateFig(ctx context.Context, category string, cache int) ([]Row, error) {
	const workers, rounds = 8, 4
	per := b.env.N(8000, 800) / workers / 2
	newRepo := func(cat string, opts ...aggregate.Option) (*aggregate.Repository[*agAccount], error) {
		repo, err := aggregate.NewRepository(b.store, b.reg, newAgAccount, append([]aggregate.Option{aggregate.WithCategory(cat),
			aggregate.WithSnapshots(b.snaps, snapshot.Every(100)), aggregate.WithCache(cache)}, opts...)...)
		if err != nil {
			return nil, err
		}
		for w := 0; w < workers; w++ {
			if _, err := repo.Create(ctx, fmt.Sprint(w), func(a *agAccount) error {
				aggregate.Raise(a, agOpened{Owner: "ada", Currency: "EUR"})
				return nil
			}); err != nil {
				return nil, err
			}
		}
		return repo, nil
	}
	repo, err := newRepo(category)
	if err != nil {
		return nil, err
	}
	var async *aggregate.Repository[*agAccount]
	if cache > 0 {
		if async, err = newRepo(category+"a", aggregate.WithAsyncSnapshots()); err != nil {
			return nil, err
		}
		defer async.Close(ctx)
	}
	update := func(repo *aggregate.Repository[*agAccount]) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			return agParallel(workers, per, func(w, i int) error {
				_, err := repo.Update(ctx, fmt.Sprint(w), func(a *agAccount) error { return a.deposit(i) })
				return err
			})
		}
	}
	rawRun := 0
	insert := func() (time.Duration, error) {
		rawRun++
		sql := `INSERT INTO ` + pgx.Identifier{b.raw}.Sanitize() + `.events
			(transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
			VALUES (pg_current_xact_id()::text::bigint, $1, $2, $3, 'Deposited', 1, $4, NULL)`
		data, _ := json.Marshal(agDeposited{Amount: 1, Note: "benchmark deposit", Ref: "ref-0001"})
		return agParallel(workers, per, func(w, i int) error {
			id, _ := uuid.NewV7()
			_, err := b.env.Pool.Exec(ctx, sql, pgtype.UUID{Bytes: id, Valid: true},
				fmt.Sprintf("%s%d-%d", category, rawRun, w), int64(i+1), string(data))
			return err
		})
	}
	appendRun := 0
	appendOne := func() (time.Duration, error) {
		appendRun++
		data, _ := json.Marshal(agDeposited{Amount: 1, Note: "benchmark deposit", Ref: "ref-0001"})
		return agParallel(workers, per, func(w, i int) error {
			_, err := b.store.Append(ctx, fmt.Sprintf("%sapp%d-%d", category, appendRun, w), eventstore.Any,
				eventstore.Event{Type: "Deposited", Data: data})
			return err
		})
	}
	type timedRun struct {
		f   func() (time.Duration, error)
		sum time.Duration
	}
	runs := []timedRun{{f: insert}, {f: update(repo)}}
	if cache > 0 {
		runs = append(runs, timedRun{f: appendOne}, timedRun{f: update(async)})
	}
	for round := -1; round < rounds; round++ {
		for i := range runs {
			d, err := runs[i].f()
			if err != nil {
				return nil, err
			}
			if round >= 0 {
				runs[i].sum += d
			}
		}
	}
	if st := repo.Stats(); st.Retries != 0 || st.SnapshotsTaken == 0 {
		return nil, fmt.Errorf("distinct aggregates: want no retries and some snapshots, stats %+v", st)
	}
	total := per * workers * rounds
	dRaw, dUpd := runs[0].sum, runs[1].sum
	figure := "Update (load + command + save), 8 goroutines, distinct aggregates, Every(100)"
	goal := 0.6
	if cache > 0 {
		figure += fmt.Sprintf(", WithCache(%d)", cache)
		goal = 1.0 // issue 13: Update with cache, distinct aggregates, vs raw INSERT
	}
	r := ratioRow(figure, rate(total, dUpd), rate(total, dRaw), "commands/s", goal, true)
	r.Baseline = fmt.Sprintf("%.0f rows/s (single-row INSERT, 8 conns)", rate(total, dRaw))
	rows := []Row{r}
	if cache > 0 {
		dApp, dAsync := runs[2].sum, runs[3].sum
		a := ratioRow(figure+", against the store's Append", rate(total, dUpd), rate(total, dApp), "commands/s", 0.8, true)
		a.Baseline = fmt.Sprintf("%.0f appends/s (Append 1 event/call, 8 goroutines)", rate(total, dApp))
		a.Goal += " (not in the issue)"
		as := ratioRow(figure+", WithAsyncSnapshots()", rate(total, dAsync), rate(total, dRaw), "commands/s", 0, true)
		as.Baseline = r.Baseline
		as.Value += fmt.Sprintf(" (snapshots taken %d, skipped %d)", async.Stats().SnapshotsTaken, async.Stats().SnapshotsSkipped)
		as.Goal, as.Pass = "(info)", ""
		rows = append(rows, a, as)
	}
	return rows, nil
}

// hotFig: Update on one aggregate from 8 goroutines; every command must be
// applied exactly once.
func (b *agBench) hotFig(ctx context.Context) (Row, error) {
	const workers = 8
	per := b.env.N(100, 20)
	repo, err := aggregate.NewRepository(b.store, b.reg, newAgAccount, aggregate.WithCategory("hot"),
		aggregate.WithSnapshots(b.snaps, snapshot.Every(100)), aggregate.WithRetries(10000))
	if err != nil {
		return Row{}, err
	}
	if _, err := repo.Create(ctx, "1", func(a *agAccount) error {
		aggregate.Raise(a, agOpened{Owner: "ada", Currency: "EUR"})
		return nil
	}); err != nil {
		return Row{}, err
	}
	d, err := agParallel(workers, per, func(w, i int) error {
		_, err := repo.Update(ctx, "1", func(a *agAccount) error { return a.deposit(w*100000 + i + 1) })
		return err
	})
	if err != nil {
		return Row{}, fmt.Errorf("hot Update: %w", err)
	}
	a, err := repo.Load(ctx, "1")
	if err != nil {
		return Row{}, err
	}
	want := 0
	for w := 0; w < workers; w++ {
		for i := 0; i < per; i++ {
			want += w*100000 + i + 1
		}
	}
	n := workers * per
	ok := a.Count == n && a.Balance == want && a.Version() == int64(n+1)
	return Row{
		Figure:   "Update on one hot aggregate, 8 goroutines",
		Value:    fmt.Sprintf("%.0f commands/s, %d retries for %d commands", rate(n, d), repo.Stats().Retries, n),
		Baseline: "",
		Goal:     "every command applied exactly once",
		Pass:     yesNo(ok),
	}, nil
}

// agParallel runs f(w, i) for i in [0, per) on each of workers goroutines
// and returns the wall time.
func agParallel(workers, per int, f func(w, i int) error) (time.Duration, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := f(w, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}
