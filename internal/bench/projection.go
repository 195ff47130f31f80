package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/projection"
	projjs "github.com/chronicle-go/chronicle/projection/jetstream"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// The Postgres rebuild runs in a child process (this binary again), so
// that its peak RSS is the rebuild's alone.
const (
	prChildEnv = "CHRONICLE_BENCH_PROJECTION_CHILD" // schema to rebuild in
	prChildDB  = "CHRONICLE_BENCH_PROJECTION_DB"
)

func init() {
	if schema := os.Getenv(prChildEnv); schema != "" {
		if err := prRebuildChild(schema); err != nil {
			fmt.Fprintln(os.Stderr, "bench: projection rebuild child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// benchProjection measures the projection figures: end to end through the
// relay and JetStream into a Postgres read model (sustained rate, lag,
// latency), a rebuild into a Postgres read model beside raw pgx, and a
// rebuild into a no-op projection beside a raw keyset read + decode.
func benchProjection(ctx context.Context, env *Env) ([]Row, error) {
	var rows []Row
	r, err := prEndToEnd(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("end to end: %w", err)
	}
	rows = append(rows, r...)
	r, err = prRebuilds(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	return append(rows, r...), nil
}

// benchHorizon is the "horizon" section: how far Chronicle's own
// transactions hold readers of the log back.
func benchHorizon(ctx context.Context, env *Env) ([]Row, error) {
	rows, err := prHorizon(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("log horizon: %w", err)
	}
	return rows, nil
}

// prHorizon measures how long an append takes to become visible to readers
// of the log (the head reaches it) while a slow projection (2 ms per event,
// writing at once, batches of 1,000) catches up on history, beside the
// same figure with no projection running (ADR 0008).
func prHorizon(ctx context.Context, env *Env) ([]Row, error) {
	st, err := prNewStores(ctx, env, "prhorizon")
	if err != nil {
		return nil, err
	}
	hist := env.N(3_000, 1_000)
	if _, _, err := prAppend(ctx, st.events, hist, 0, nil); err != nil {
		return nil, err
	}
	probe := func(d time.Duration) ([]time.Duration, error) {
		var lats []time.Duration
		for end := time.Now().Add(d); time.Now().Before(end); {
			res, err := st.events.Append(ctx, "probe", eventstore.Any, eventstore.Event{Type: "Probe", Data: []byte(`{}`)})
			if err != nil {
				return nil, err
			}
			start := time.Now()
			for {
				h, err := st.events.Head(ctx)
				if err != nil {
					return nil, err
				}
				if !h.Before(res.Position) {
					break
				}
				time.Sleep(200 * time.Microsecond)
			}
			lats = append(lats, time.Since(start))
			time.Sleep(10 * time.Millisecond)
		}
		return lats, nil
	}
	alone, err := probe(2 * time.Second)
	if err != nil {
		return nil, err
	}
	slow := projection.Projection{
		Name: "slow", Tables: []string{"slow"}, BatchSize: 1000,
		Setup: func(ctx context.Context, tx projection.Tx) error {
			_, err := projpg.From(tx).Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tx.Table("slow")+` (stream_id text PRIMARY KEY, n bigint NOT NULL)`)
			return err
		},
		Handler: projpg.Handler(func(ctx context.Context, tx *projpg.Tx, ev projection.Event) error {
			if _, err := tx.Exec(ctx, `INSERT INTO `+tx.Table("slow")+` AS s VALUES ($1, 1)
				ON CONFLICT (stream_id) DO UPDATE SET n = s.n + 1`, ev.Record.StreamID); err != nil {
				return err
			}
			time.Sleep(2 * time.Millisecond)
			return nil
		}),
	}
	runner, err := projection.NewRunner(st.events, st.proj, []projection.Projection{slow}, projection.WithCatchUpBatchSize(1000))
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(rctx) }()
	// The catch-up takes hist x 2 ms; probe during most of it.
	with, err := probe(time.Duration(hist) * 2 * time.Millisecond * 3 / 4)
	cancel()
	if rerr := <-done; err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	p99 := pct(with, 99)
	return []Row{{
		Figure: fmt.Sprintf("Append -> visible to readers while a 2 ms/event projection catches up on %d events (batches of 1,000)", hist),
		Value:  fmt.Sprintf("p50 %s, p99 %s (%d probes)", ms(pct(with, 50)), ms(p99), len(with)),
		Baseline: fmt.Sprintf("no projection running: p50 %s, p99 %s (%d probes)",
			ms(pct(alone, 50)), ms(pct(alone, 99)), len(alone)),
		Goal: "p99 < 100 ms",
		Pass: yesNo(p99 < 100*time.Millisecond),
	}}, nil
}

// prBalances is the benchmark's read model: per stream, the number of
// events and the sum of their amounts.
func prBalances(name string, onHandle func(projection.Tx, eventstore.Record)) projection.Projection {
	return projection.Projection{
		Name:      name,
		Tables:    []string{name},
		BatchSize: 500,
		Setup: func(ctx context.Context, tx projection.Tx) error {
			_, err := projpg.From(tx).Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tx.Table(name)+` (
				stream_id text PRIMARY KEY, events bigint NOT NULL, amount bigint NOT NULL)`)
			return err
		},
		Handler: projection.HandlerFunc(func(ctx context.Context, ptx projection.Tx, ev projection.Event) error {
			var d struct{ Amount int64 }
			if err := json.Unmarshal(ev.Record.Data, &d); err != nil {
				return err
			}
			tx := projpg.From(ptx)
			tx.Queue(`INSERT INTO `+tx.Table(name)+` AS b (stream_id, events, amount) VALUES ($1, 1, $2)
				ON CONFLICT (stream_id) DO UPDATE SET events = b.events + 1, amount = b.amount + EXCLUDED.amount`,
				ev.Record.StreamID, d.Amount)
			if onHandle != nil {
				onHandle(ptx, ev.Record)
			}
			return nil
		}),
	}
}

type prStores struct {
	schema string
	events *espg.Store
	proj   *projpg.Store
}

func prNewStores(ctx context.Context, env *Env, prefix string) (*prStores, error) {
	schema := env.Schema(prefix)
	es, err := espg.New(env.Pool, espg.WithSchema(schema))
	if err != nil {
		return nil, err
	}
	ps, err := projpg.New(env.Pool, projpg.WithSchema(schema))
	if err != nil {
		return nil, err
	}
	if err := es.Migrate(ctx); err != nil {
		return nil, err
	}
	if err := ps.Migrate(ctx); err != nil {
		return nil, err
	}
	return &prStores{schema: schema, events: es, proj: ps}, nil
}

// prAppend appends n one-event appends from 8 goroutines, spread over 800
// streams. With perSec > 0 the goroutines are paced to that total rate.
// onAppended, when set, is called after each append with the event's ID,
// the time the append returned and how long it took.
func prAppend(ctx context.Context, es *espg.Store, n int, perSec float64, onAppended func(id uuid.UUID, at time.Time, took time.Duration)) (time.Duration, eventstore.Position, error) {
	const workers = 8
	var next atomic.Int64
	var mu sync.Mutex
	var last eventstore.Position
	errs := make(chan error, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if perSec > 0 {
					due := start.Add(time.Duration(float64(i) / perSec * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				id, _ := uuid.NewV7()
				t0 := time.Now()
				res, err := es.Append(ctx, fmt.Sprintf("account-%d", int(i)%800), eventstore.Any, eventstore.Event{
					ID: id, Type: "FundsDeposited", Data: fmt.Appendf(nil, `{"Amount":%d,"Currency":"EUR"}`, i%100)})
				if err != nil {
					errs <- err
					return
				}
				now := time.Now()
				if onAppended != nil {
					onAppended(id, now, now.Sub(t0))
				}
				mu.Lock()
				if last.Before(res.Position) {
					last = res.Position
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, last, err
	}
	return time.Since(start), last, nil
}

// prPipeline is a running relay + JetStream runner over a fresh store.
type prPipeline struct {
	st      *prStores
	subject string
	stream  string
	runner  *projection.Runner
	applied atomic.Int64
	stop    func() error
}

func prStartPipeline(ctx context.Context, env *Env, nc *nats.Conn, js jetstream.JetStream, prefix string, wrap func(*projpg.Store) projection.Store, onHandle func(projection.Tx, eventstore.Record)) (*prPipeline, error) {
	st, err := prNewStores(ctx, env, prefix)
	if err != nil {
		return nil, err
	}
	cfg := benchStream(strings.ToUpper(prefix))
	rl, err := relay.New(st.events, nc, env.Pool, relay.WithSchema(st.schema), relay.WithStream(cfg))
	if err != nil {
		return nil, err
	}
	if err := rl.Migrate(ctx); err != nil {
		return nil, err
	}
	src, err := projjs.NewSource(js, st.events, projjs.WithTopology(cfg.Topology))
	if err != nil {
		return nil, err
	}
	var store projection.Store = st.proj
	if wrap != nil {
		store = wrap(st.proj)
	}
	p := &prPipeline{st: st, subject: cfg.SubjectPrefix + ".>", stream: cfg.Stream}
	handle := func(tx projection.Tx, rec eventstore.Record) {
		p.applied.Add(1)
		if onHandle != nil {
			onHandle(tx, rec)
		}
	}
	p.runner, err = projection.NewRunner(st.events, store, []projection.Projection{prBalances("balances", handle)},
		projection.WithSource(src), projection.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	relayDone, runDone := make(chan error, 1), make(chan error, 1)
	go func() { relayDone <- rl.Run(rctx) }()
	// The source needs the relay's stream.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := js.Stream(ctx, cfg.Stream); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-relayDone
			return nil, errors.New("the relay did not create its stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	go func() { runDone <- p.runner.Run(rctx) }()
	p.stop = func() error {
		cancel()
		err := errors.Join(<-relayDone, <-runDone)
		_ = js.DeleteStream(context.WithoutCancel(ctx), cfg.Stream)
		return err
	}
	return p, nil
}

func prEndToEnd(ctx context.Context, env *Env) ([]Row, error) {
	nc, err := nats.Connect(env.NATSURL)
	if err != nil {
		return nil, fmt.Errorf("NATS at %s: %w", env.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	n := env.N(50_000, 5_000)

	// Baseline: the 8-goroutine append rate alone.
	base, err := prNewStores(ctx, env, "prbase")
	if err != nil {
		return nil, err
	}
	baseDur, _, err := prAppend(ctx, base.events, n, 0, nil)
	if err != nil {
		return nil, err
	}
	appendAlone := rate(n, baseDur)

	// Sustained: the same appends with the relay and the runner running.
	p, err := prStartPipeline(ctx, env, nc, js, "pre2e", nil, nil)
	if err != nil {
		return nil, err
	}
	var maxLag, endLag, maxHeld int64
	var appended atomic.Int64
	sampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampling:
				return
			case <-t.C:
				maxLag = max(maxLag, appended.Load()-p.applied.Load())
				if ls, err := p.st.events.Status(ctx); err == nil {
					maxHeld = max(maxHeld, ls.HeldBack)
				}
			}
		}
	}()
	start := time.Now()
	appDur, last, err := prAppend(ctx, p.st.events, n, 0, func(uuid.UUID, time.Time, time.Duration) { appended.Add(1) })
	close(sampling)
	<-sampled
	if err != nil {
		_ = p.stop()
		return nil, err
	}
	endLag = appended.Load() - p.applied.Load()
	drainStart := time.Now()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = p.runner.WaitFor(wctx, "balances", last)
	cancel()
	if err != nil {
		err = fmt.Errorf("the read model did not reach the last append within a minute (did the relay publish it?): %w", err)
	}
	drain := time.Since(drainStart)
	total := time.Since(start)
	if err2 := p.stop(); err == nil {
		err = err2
	}
	if err != nil {
		return nil, err
	}
	appendWith := rate(n, appDur)
	projected := rate(n, total)
	bounded := drain < 2*time.Second
	e2e := Row{
		Figure: fmt.Sprintf("End to end append -> relay -> JetStream -> Postgres read model, %d events, 8 appenders", n),
		Value: fmt.Sprintf("%.0f events/s projected (appends ran at %.0f/s alongside; max lag %d, %d at the end, drained in %s; at most %d events held back by open transactions)",
			projected, appendWith, maxLag, endLag, drain.Round(time.Millisecond), maxHeld),
		Baseline: fmt.Sprintf("%.0f appends/s (8 goroutines, alone)", appendAlone),
		Ratio:    fmt.Sprintf("%.2fx", projected/appendAlone),
		Goal:     "keeps up with the appends (lag bounded: drains < 2s after they stop)",
		Pass:     yesNo(bounded),
	}

	// Latency at half the maximum append rate.
	m := env.N(10_000, 2_000)
	perSec := appendAlone / 2
	var amu sync.Mutex
	appendedAt := make(map[uuid.UUID]time.Time, m)
	var appendTook []time.Duration
	committedAt := make(map[uuid.UUID]time.Time, m)
	wrap := func(ps *projpg.Store) projection.Store {
		return &prTimedStore{Store: ps, onCommit: func(ids []uuid.UUID, at time.Time) {
			amu.Lock()
			for _, id := range ids {
				committedAt[id] = at
			}
			amu.Unlock()
		}}
	}
	lp, err := prStartPipeline(ctx, env, nc, js, "prlat", wrap, func(tx projection.Tx, rec eventstore.Record) {
		if v, ok := tx.(*prTimedView); ok {
			v.t.ids = append(v.t.ids, rec.ID)
		}

	})
	if err != nil {
		return nil, err
	}
	// Baseline: when the relay's message reaches a plain NATS subscriber.
	deliveredAt := make(map[string]time.Time, m)
	sub, err := nc.Subscribe(lp.subject, func(msg *nats.Msg) {
		now := time.Now()
		amu.Lock()
		deliveredAt[msg.Header.Get(wire.HeaderMsgID)] = now
		amu.Unlock()
	})
	if err != nil {
		_ = lp.stop()
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	_, last, err = prAppend(ctx, lp.st.events, m, perSec, func(id uuid.UUID, at time.Time, took time.Duration) {
		amu.Lock()
		appendedAt[id] = at
		appendTook = append(appendTook, took)
		amu.Unlock()
	})
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err = lp.runner.WaitFor(wctx, "balances", last)
		cancel()
	}
	if err2 := lp.stop(); err == nil {
		err = err2
	}
	if err != nil {
		return nil, err
	}
	_ = sub.Unsubscribe()
	amu.Lock()
	defer amu.Unlock()
	lats := make([]time.Duration, 0, m)
	var relayLats []time.Duration
	for id, at := range appendedAt {
		if c, ok := committedAt[id]; ok {
			lats = append(lats, max(c.Sub(at), 0))
		}
		if d, ok := deliveredAt[id.String()]; ok {
			relayLats = append(relayLats, max(d.Sub(at), 0))
		}
	}
	if len(lats) != m {
		return nil, fmt.Errorf("latency: %d of %d events seen committed", len(lats), m)
	}
	p50, p99 := pct(lats, 50), pct(lats, 99)
	lat := Row{
		Figure: fmt.Sprintf("Latency append commit -> read model commit, %d events at %.0f/s (half the max append rate)", m, perSec),
		Value:  fmt.Sprintf("p50 %s, p99 %s", ms(p50), ms(p99)),
		Baseline: fmt.Sprintf("relay to a plain NATS subscriber: p50 %s, p99 %s (the append itself: p50 %s, p99 %s)",
			ms(pct(relayLats, 50)), ms(pct(relayLats, 99)), ms(pct(appendTook, 50)), ms(pct(appendTook, 99))),
		Goal: "p99 < 100 ms",
		Pass: yesNo(p99 < 100*time.Millisecond),
	}
	return []Row{e2e, lat}, nil
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// prTimedStore wraps the Postgres projection store to note when the events
// handled in each transaction were committed.
type prTimedStore struct {
	*projpg.Store
	onCommit func(ids []uuid.UUID, at time.Time)
}

func (s *prTimedStore) Begin(ctx context.Context, b projection.Build) (projection.UnitOfWork, error) {
	u, err := s.Store.Begin(ctx, b)
	if err != nil {
		return nil, err
	}
	return &prTimedTx{UnitOfWork: u, s: s}, nil
}

type prTimedTx struct {
	projection.UnitOfWork
	s   *prTimedStore
	ids []uuid.UUID
}

// prTimedView is the handlers' view of a prTimedTx.
type prTimedView struct {
	projection.Tx
	t *prTimedTx
}

func (v *prTimedView) Unwrap() projection.Tx { return v.Tx }

func (t *prTimedTx) Handlers() projection.Tx {
	return &prTimedView{Tx: t.UnitOfWork.Handlers(), t: t}
}

func (t *prTimedTx) Commit(ctx context.Context) error {
	if err := t.UnitOfWork.Commit(ctx); err != nil {
		return err
	}
	t.s.onCommit(t.ids, time.Now())
	return nil
}

// prRebuilds measures a rebuild into a no-op projection beside a raw keyset
// read + decode (100k events), then a rebuild into the Postgres read model
// beside raw pgx (1M events), the latter in a child process for its RSS.
func prRebuilds(ctx context.Context, env *Env) ([]Row, error) {
	st, err := prNewStores(ctx, env, "prrebuild")
	if err != nil {
		return nil, err
	}
	small := env.N(100_000, 10_000)
	big := env.N(1_000_000, 20_000)
	if err := fillLog(ctx, st.events, small); err != nil {
		return nil, err
	}
	var noop, raw time.Duration
	for i := 0; i < 3; i++ {
		d, err := prNoopRebuild(ctx, st, fmt.Sprintf("noop_%d", i), small)
		if err != nil {
			return nil, fmt.Errorf("no-op rebuild: %w", err)
		}
		if noop == 0 || d < noop {
			noop = d
		}
		d, err = prRawRead(ctx, env.Pool, st.schema, small)
		if err != nil {
			return nil, fmt.Errorf("raw keyset read: %w", err)
		}
		if raw == 0 || d < raw {
			raw = d
		}
	}
	rows := []Row{ratioRow(fmt.Sprintf("Rebuild of %d events into a no-op projection (Postgres checkpoints)", small),
		rate(small, noop), rate(small, raw), "events/s", 0.7, true)}
	rows[0].Baseline += " (raw keyset read + decode)"

	if err := prTopUp(ctx, st.events, small, big); err != nil {
		return nil, err
	}
	rss, d, err := prChild(ctx, env, st.schema, big)
	if err != nil {
		return nil, err
	}
	rawD, err := prRawRebuild(ctx, env.Pool, st.schema, big)
	if err != nil {
		return nil, fmt.Errorf("raw rebuild: %w", err)
	}
	got, base := rate(big, d), rate(big, rawD)
	rows = append(rows, Row{
		Figure:   fmt.Sprintf("Rebuild of %d events into a Postgres read model (per-stream upsert)", big),
		Value:    fmt.Sprintf("%.0f events/s, peak RSS %.0f MiB", got, float64(rss)/1024),
		Baseline: fmt.Sprintf("%.0f events/s (raw pgx keyset read + pipelined upserts)", base),
		Ratio:    fmt.Sprintf("%.2fx", got/base),
		Goal:     ">= 50,000 events/s, flat memory",
		Pass:     yesNo(got >= 50_000 && rss < 256*1024),
	})
	return rows, nil
}

// prTopUp appends events until the log holds want.
func prTopUp(ctx context.Context, es *espg.Store, have, want int) error {
	if want <= have {
		return nil
	}
	tmp := want - have
	const batch = 100
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for b := w; b*batch < tmp; b += 4 {
				size := min(batch, tmp-b*batch)
				evs := make([]eventstore.Event, size)
				for i := range evs {
					evs[i] = eventstore.Event{Type: "FundsDeposited",
						Data: fmt.Appendf(nil, `{"account":"acc-%d","amount":%d,"currency":"EUR"}`, b, i)}
				}
				if _, err := es.Append(ctx, fmt.Sprintf("account-t%d", b), eventstore.NoStream, evs...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

type prPayload struct {
	Account  string `json:"account"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// prNoopRebuild rebuilds a projection that decodes each event and does
// nothing else, with its checkpoints in Postgres.
func prNoopRebuild(ctx context.Context, st *prStores, name string, want int) (time.Duration, error) {
	var n atomic.Int64
	p := projection.Projection{Name: name, Handler: projection.HandlerFunc(func(context.Context, projection.Tx, projection.Event) error {
		n.Add(1)
		return nil
	})}
	dec := projection.DecoderFunc(func(rec eventstore.Record) ([]any, error) {
		var v prPayload
		if err := json.Unmarshal(rec.Data, &v); err != nil {
			return nil, err
		}
		return []any{v}, nil
	})
	r, err := projection.NewRunner(st.events, st.proj, []projection.Projection{p}, projection.WithDecoder(dec))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := r.Rebuild(ctx, name); err != nil {
		return 0, err
	}
	d := time.Since(start)
	if int(n.Load()) != want {
		return 0, fmt.Errorf("no-op projection saw %d events, want %d", n.Load(), want)
	}
	return d, nil
}

// prRawRead reads the log with keyset pagination in pgx and decodes each
// event's data and metadata: the least a rebuild must do.
func prRawRead(ctx context.Context, pool *pgxpool.Pool, schema string, want int) (time.Duration, error) {
	start := time.Now()
	n := 0
	err := prRawPages(ctx, pool, schema, func(rows pgx.Rows) error {
		var (
			pos, tx, ver int64
			id           uuid.UUID
			stream, typ  string
			sv           int32
			data, md     []byte
			at           time.Time
		)
		for rows.Next() {
			if err := rows.Scan(&pos, &tx, &id, &stream, &ver, &typ, &sv, &data, &md, &at); err != nil {
				return err
			}
			var v prPayload
			if err := json.Unmarshal(data, &v); err != nil {
				return err
			}
			if md != nil {
				var m map[string]string
				if err := json.Unmarshal(md, &m); err != nil {
					return err
				}
			}
			n++
		}
		return rows.Err()
	})
	if err != nil {
		return 0, err
	}
	if n != want {
		return 0, fmt.Errorf("read %d events, want %d", n, want)
	}
	return time.Since(start), nil
}

// prRawPages runs the keyset query page by page (1000 rows), handing each
// page's rows to f.
func prRawPages(ctx context.Context, pool *pgxpool.Pool, schema string, f func(pgx.Rows) error) error {
	q := `SELECT position, transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at
		FROM ` + pgmigrate.Quote(schema) + `.events WHERE (transaction_id, position) > ($1, $2)
		ORDER BY transaction_id, position LIMIT 1000`
	var tx, pos int64
	for {
		rows, err := pool.Query(ctx, q, tx, pos)
		if err != nil {
			return err
		}
		k := 0
		var lastTx, lastPos int64
		wrapped := &prCountingRows{Rows: rows, k: &k, tx: &lastTx, pos: &lastPos}
		if err := f(wrapped); err != nil {
			rows.Close()
			return err
		}
		rows.Close()
		if k < 1000 {
			return nil
		}
		tx, pos = lastTx, lastPos
	}
}

// prCountingRows notes how many rows were scanned and the last keyset.
type prCountingRows struct {
	pgx.Rows
	k       *int
	tx, pos *int64
}

func (r *prCountingRows) Scan(dest ...any) error {
	if err := r.Rows.Scan(dest...); err != nil {
		return err
	}
	*r.k++
	*r.pos = *dest[0].(*int64)
	*r.tx = *dest[1].(*int64)
	return nil
}

// prRawRebuild is what a hand-written rebuild does with pgx: keyset pages
// of 1000, each page's upserts pipelined in one batch and one transaction.
func prRawRebuild(ctx context.Context, pool *pgxpool.Pool, schema string, want int) (time.Duration, error) {
	table := pgmigrate.Quote(schema) + ".raw_balances"
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (stream_id text PRIMARY KEY, events bigint NOT NULL, amount bigint NOT NULL)`); err != nil {
		return 0, err
	}
	start := time.Now()
	n := 0
	err := prRawPages(ctx, pool, schema, func(rows pgx.Rows) error {
		var b pgx.Batch
		var (
			pos, tx, ver int64
			id           uuid.UUID
			stream, typ  string
			sv           int32
			data, md     []byte
			at           time.Time
		)
		for rows.Next() {
			if err := rows.Scan(&pos, &tx, &id, &stream, &ver, &typ, &sv, &data, &md, &at); err != nil {
				return err
			}
			var v struct{ Amount int64 }
			if err := json.Unmarshal(data, &v); err != nil {
				return err
			}
			b.Queue(`INSERT INTO `+table+` AS b (stream_id, events, amount) VALUES ($1, 1, $2)
				ON CONFLICT (stream_id) DO UPDATE SET events = b.events + 1, amount = b.amount + EXCLUDED.amount`, stream, v.Amount)
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.BeginFunc(ctx, pool, func(t pgx.Tx) error { return t.SendBatch(ctx, &b).Close() })
	})
	if err != nil {
		return 0, err
	}
	if n != want {
		return 0, fmt.Errorf("rebuilt %d events, want %d", n, want)
	}
	return time.Since(start), nil
}

// prChild runs the Postgres rebuild in a child process and returns its
// peak RSS in KiB and the rebuild's duration. The peak is the child's own
// VmHWM: the child's rusage Maxrss is no good, since Linux carries the
// parent's peak over into it (the child is started with vfork and exec
// keeps the larger of the old and new address space's high-water marks),
// which made the figure grow with the parent's work, not the rebuild's.
func prChild(ctx context.Context, env *Env, schema string, want int) (int64, time.Duration, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), prChildEnv+"="+schema, prChildDB+"="+env.DatabaseURL)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, 0, fmt.Errorf("rebuild child: %w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return 0, 0, fmt.Errorf("rebuild child: %w", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) != 3 {
		return 0, 0, fmt.Errorf("rebuild child said %q", out)
	}
	d, err := time.ParseDuration(fields[0])
	if err != nil {
		return 0, 0, fmt.Errorf("rebuild child said %q: %w", out, err)
	}
	if n, err := strconv.Atoi(fields[1]); err != nil || n != want {
		return 0, 0, fmt.Errorf("rebuild child applied %s events, want %d", fields[1], want)
	}
	rss, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil || rss <= 0 {
		return 0, 0, fmt.Errorf("rebuild child said %q: no peak RSS", out)
	}
	return rss, d, nil
}

// prPeakRSS returns this process's peak RSS in KiB: VmHWM from
// /proc/self/status, or the rusage Maxrss where there is no /proc.
func prPeakRSS() int64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				if n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
					return n
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		return ru.Maxrss
	}
	return 0
}

// prRebuildChild is the child's side: rebuild the balances read model over
// the log in schema and print the duration, the events applied and the
// peak RSS in KiB.
func prRebuildChild(schema string) error {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(prChildDB))
	if err != nil {
		return err
	}
	defer pool.Close()
	es, err := espg.New(pool, espg.WithSchema(schema))
	if err != nil {
		return err
	}
	ps, err := projpg.New(pool, projpg.WithSchema(schema))
	if err != nil {
		return err
	}
	var n atomic.Int64
	r, err := projection.NewRunner(es, ps, []projection.Projection{prBalances("balances", func(projection.Tx, eventstore.Record) { n.Add(1) })})
	if err != nil {
		return err
	}
	start := time.Now()
	if err := r.Rebuild(ctx, "balances"); err != nil {
		return err
	}
	fmt.Println(time.Since(start), n.Load(), prPeakRSS())
	return nil
}
