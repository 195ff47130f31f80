package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

// The RSS figure reads the log in a child process (this binary again), so
// that its peak RSS is the read's alone. The child is told by these
// environment variables.
const (
	stChildEnv  = "CHRONICLE_BENCH_STORE_RSS_CHILD" // schema to read
	stChildDB   = "CHRONICLE_BENCH_STORE_RSS_DB"
	stChildWant = "CHRONICLE_BENCH_STORE_RSS_WANT"
)

func init() {
	if schema := os.Getenv(stChildEnv); schema != "" {
		if err := stRSSChild(schema); err != nil {
			fmt.Fprintln(os.Stderr, "bench: store rss child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// stRounds is the number of alternating rounds each append figure is
// measured in.
const stRounds = 8

// stStreams is the number of streams appends spread over.
const stStreams = 1000

// stPayload is the ~200-byte JSON payload of every benchmark event.
type stPayload struct {
	Account  string   `json:"account"`
	Amount   int      `json:"amount"`
	Currency string   `json:"currency"`
	Note     string   `json:"note"`
	Tags     []string `json:"tags"`
}

func stData(i int) []byte {
	b, _ := json.Marshal(stPayload{
		Account:  fmt.Sprintf("acc-%06d", i%stStreams),
		Amount:   i * 7 % 100000,
		Currency: "EUR",
		Note:     "benchmark payload of roughly two hundred bytes, padded with some words to get there",
		Tags:     []string{"bench", "store", strconv.Itoa(i % 13)},
	})
	return b
}

func stStream(i int) string { return fmt.Sprintf("bench-%d", i%stStreams) }

// stStreamOf is the stream of call c of a run with workers goroutines,
// worker c % workers: each worker owns its own streams (their index is
// c modulo workers), spread over at most stStreams.
func stStreamOf(c, workers int) string {
	return stStream(c%workers + workers*(c/workers%(stStreams/workers)))
}

// benchStore measures the event store beside raw pgx on the same table
// shape (the store's own migration, in a schema of its own), alternating
// runs of the baseline and Chronicle within each figure.
func benchStore(ctx context.Context, env *Env) ([]Row, error) {
	var rows []Row
	b := &stBench{env: env}
	var err error
	if b.store, err = b.newStore(ctx, "store"); err != nil {
		return nil, err
	}
	if b.rawSchema, err = b.newRawSchema(ctx); err != nil {
		return nil, err
	}

	type appendFig struct {
		name, rawName string
		n, perCall    int
		workers       int
		store         *espg.Store
		goal          float64
		// checked adds an informative row against a second baseline
		// measured in the same rounds: raw version-checked INSERTs.
		checked bool
	}
	alone, err := b.newStore(ctx, "store_alone", espg.WithGroupCommit(false))
	if err != nil {
		return nil, err
	}
	defer b.store.Close()
	const off = ", WithGroupCommit(false)"
	figs := []appendFig{
		{"Append 1 event/call, 1 goroutine", "single-row INSERT, pool", env.N(8000, 300), 1, 1, b.store, 0.9, true},
		{"Append 1 event/call, 1 goroutine" + off, "single-row INSERT, pool", env.N(8000, 300), 1, 1, alone, 0, false},
		{"Append 1 event/call, 8 goroutines", "single-row INSERT, pool", env.N(24000, 800), 1, 8, b.store, 1.3, true},
		{"Append 1 event/call, 8 goroutines" + off, "single-row INSERT, pool", env.N(24000, 800), 1, 8, alone, 0, false},
		{"Append 1 event/call, 32 goroutines", "single-row INSERT, pool", env.N(32000, 1200), 1, 32, b.store, 1.3, false},
		{"Append 1 event/call, 32 goroutines" + off, "single-row INSERT, pool", env.N(32000, 1200), 1, 32, alone, 0, false},
		{"Append 100 events/call", "one INSERT ... unnest of 100 rows, pool", env.N(40000, 3000), 100, 1, b.store, 0.75, false},
	}
	for _, f := range figs {
		if !strings.Contains(f.name, env.Match) {
			continue
		}
		// Alternate short runs of the baseline(s) and Chronicle and sum
		// them, so that load from elsewhere on the machine falls on all;
		// a first round of each warms up and is not counted.
		var total, totalRaw, totalChecked time.Duration
		var cpu, cpuRaw stCPU
		per := max(f.n/stRounds/f.perCall, 1) * f.perCall
		var gc0 espg.GroupCommitStats
		for round := -1; round < stRounds; round++ {
			if round == 0 {
				gc0 = f.store.GroupCommitStats()
			}
			c0 := b.env.cpuNow()
			d, err := b.rawInsert(ctx, per, f.perCall, f.workers)
			if err != nil {
				return nil, fmt.Errorf("%s raw: %w", f.name, err)
			}
			c1 := b.env.cpuNow()
			if round >= 0 {
				totalRaw += d
				cpuRaw = cpuRaw.add(c1.sub(c0))
			}
			if f.checked {
				d, err = b.rawCheckedInsert(ctx, per, f.workers)
				if err != nil {
					return nil, fmt.Errorf("%s raw version-checked: %w", f.name, err)
				}
				if round >= 0 {
					totalChecked += d
				}
			}
			c0 = b.env.cpuNow()
			d, err = b.appendRun(ctx, f.store, per, f.perCall, f.workers)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			c1 = b.env.cpuNow()
			if round >= 0 {
				total += d
				cpu = cpu.add(c1.sub(c0))
			}
		}
		n := per * stRounds
		r := ratioRow(f.name, rate(n, total), rate(n, totalRaw), "events/s", f.goal, true)
		r.Value += ", " + cpu.per(n) + groupCommitted(gc0, f.store.GroupCommitStats())
		r.Baseline += ", " + cpuRaw.per(n) + " (" + f.rawName + ")"
		if f.goal == 0 {
			r.Goal, r.Pass = "(info)", ""
		}
		rows = append(rows, r)
		if f.checked {
			r := ratioRow(f.name+", vs raw version-checked INSERT", rate(n, total), rate(n, totalChecked), "events/s", 0, true)
			conns := "1 conn"
			if f.workers > 1 {
				conns = fmt.Sprintf("%d conns", f.workers)
			}
			r.Baseline += " (INSERT ... SELECT WHERE version = expected, " + conns + ")"
			r.Goal, r.Pass = "(info)", ""
			rows = append(rows, r)
		}
	}

	if env.Match != "" {
		return rows, nil
	}

	// ReadAll over 100k events, decoded.
	nRead := env.N(100_000, 5_000)
	if err := b.topUp(ctx, nRead); err != nil {
		return nil, err
	}
	var total, totalRaw time.Duration
	for round := 0; round < 3; round++ {
		d, err := b.rawReadAll(ctx, nRead)
		if err != nil {
			return nil, fmt.Errorf("raw keyset read: %w", err)
		}
		totalRaw += d
		d, err = b.readAll(ctx, b.store, nRead)
		if err != nil {
			return nil, fmt.Errorf("ReadAll: %w", err)
		}
		total += d
	}
	r := ratioRow(fmt.Sprintf("ReadAll over %s events, decoded", stCount(nRead)), rate(3*nRead, total), rate(3*nRead, totalRaw), "events/s", 0.8, true)
	r.Baseline += " (keyset read + decode)"
	rows = append(rows, r)

	// ReadStream of a 1,000-event stream.
	if r, err = b.readStreamFig(ctx); err != nil {
		return nil, err
	}
	rows = append(rows, r)

	// ReadAll over 1M events: peak RSS of a child process.
	if r, err = b.rssFig(ctx); err != nil {
		return nil, err
	}
	rows = append(rows, r)

	// Disk per event of the log just read.
	if r, err = b.diskFig(ctx); err != nil {
		return nil, err
	}
	rows = append(rows, r)
	return rows, nil
}

type stBench struct {
	env       *Env
	store     *espg.Store
	rawSchema string
	appended  int // events appended so far to b.store
	rawRuns   int
}

func (b *stBench) newStore(ctx context.Context, prefix string, opts ...espg.Option) (*espg.Store, error) {
	s, err := espg.New(b.env.Pool, append([]espg.Option{espg.WithSchema(b.env.Schema(prefix))}, opts...)...)
	if err != nil {
		return nil, err
	}
	return s, s.Migrate(ctx)
}

// newRawSchema creates the raw baseline's events table: the store's own
// migration, so the table, its indexes and constraints are the same.
func (b *stBench) newRawSchema(ctx context.Context) (string, error) {
	s, err := b.newStore(ctx, "store_raw")
	if err != nil {
		return "", err
	}
	return s.Schema(), nil
}

func stMin(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}

// appendRun appends n events, perCall per Append, from workers goroutines,
// each on its own share of the streams.
func (b *stBench) appendRun(ctx context.Context, s *espg.Store, n, perCall, workers int) (time.Duration, error) {
	calls := n / perCall
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
			evs := make([]eventstore.Event, perCall)
			for c := w; c < calls; c += workers {
				for i := range evs {
					evs[i] = eventstore.Event{Type: "MoneyDeposited", Data: stData(c*perCall + i)}
				}
				// Workers own disjoint streams (c % workers == w), so
				// appends do not conflict, as with distinct aggregates.
				if _, err := s.Append(ctx, stStreamOf(c, workers), eventstore.Any, evs...); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if s == b.store {
		b.appended += calls * perCall
	}
	return d, errors.Join(errs...)
}

// rawInsert inserts n rows into the raw table, acquiring a pool
// connection per call as Append does: single-row autocommit INSERTs, or
// one INSERT ... unnest of perCall rows.
func (b *stBench) rawInsert(ctx context.Context, n, perCall, workers int) (time.Duration, error) {
	q := pgx.Identifier{b.rawSchema}.Sanitize()
	sql := `INSERT INTO ` + q + `.events
		(transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
		VALUES (pg_current_xact_id()::text::bigint, $1, $2, $3, $4, 1, $5, NULL)`
	many := `INSERT INTO ` + q + `.events
		(transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
		SELECT pg_current_xact_id()::text::bigint, u.id, $2, u.v, $4, 1, u.dat::jsonb, NULL
		  FROM unnest($1::uuid[], $3::bigint[], $5::text[]) AS u (id, v, dat)`
	calls := n / perCall
	// Each run writes streams of its own, so versions start at 1.
	b.rawRuns++
	prefix := fmt.Sprintf("raw%d-", b.rawRuns)
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
			fail := func(err error) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			versions := make(map[string]int64)
			for c := w; c < calls; c += workers {
				stream := prefix + stStreamOf(c, workers)
				if perCall == 1 {
					versions[stream]++
					id, _ := uuid.NewV7()
					if _, err := b.env.Pool.Exec(ctx, sql, pgtype.UUID{Bytes: id, Valid: true}, stream, versions[stream], "MoneyDeposited", string(stData(c))); err != nil {
						fail(err)
						return
					}
					continue
				}
				ids := make([]pgtype.UUID, perCall)
				vs := make([]int64, perCall)
				data := make([]string, perCall)
				for i := 0; i < perCall; i++ {
					versions[stream]++
					id, _ := uuid.NewV7()
					ids[i], vs[i], data[i] = pgtype.UUID{Bytes: id, Valid: true}, versions[stream], string(stData(c*perCall+i))
				}
				if _, err := b.env.Pool.Exec(ctx, many, ids, stream, vs, "MoneyDeposited", data); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// rawCheckedInsert inserts n rows into the raw table the least an
// optimistic-concurrency append can do: one autocommit INSERT ... SELECT
// per event that reads the stream's last version with a backward probe of
// the (stream_id, stream_version) index and writes nothing unless it is the
// version the client expects. It is the store's append1SQL without the
// advisory lock, the transaction-id check and the pipeline. A row not
// written is a conflict and fails the run.
func (b *stBench) rawCheckedInsert(ctx context.Context, n, workers int) (time.Duration, error) {
	q := pgx.Identifier{b.rawSchema}.Sanitize()
	sql := `WITH cur AS MATERIALIZED (
    SELECT coalesce(l.stream_version, 0) AS v
      FROM (VALUES (1)) AS one (x)
      LEFT JOIN LATERAL (
            SELECT e.stream_version FROM ` + q + `.events e
             WHERE e.stream_id = $2 ORDER BY e.stream_version DESC LIMIT 1) AS l ON true
)
INSERT INTO ` + q + `.events
    (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
SELECT pg_current_xact_id()::text::bigint, $1::uuid, $2, cur.v + 1, $4::text, 1, $5::text::jsonb, NULL
  FROM cur
 WHERE cur.v = $3::bigint`
	// Each run writes streams of its own, so versions start at 0.
	b.rawRuns++
	prefix := fmt.Sprintf("chk%d-", b.rawRuns)
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
			fail := func(err error) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			conn, err := b.env.Pool.Acquire(ctx)
			if err != nil {
				fail(err)
				return
			}
			defer conn.Release()
			versions := make(map[string]int64)
			for c := w; c < n; c += workers {
				stream := prefix + stStreamOf(c, workers)
				id, _ := uuid.NewV7()
				tag, err := conn.Exec(ctx, sql, pgtype.UUID{Bytes: id, Valid: true}, stream, versions[stream], "MoneyDeposited", string(stData(c)))
				if err != nil {
					fail(err)
					return
				}
				if tag.RowsAffected() != 1 {
					fail(fmt.Errorf("stream %s: expected version %d: nothing written", stream, versions[stream]))
					return
				}
				versions[stream]++
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// topUp appends 100-event batches until the store holds n events.
func (b *stBench) topUp(ctx context.Context, n int) error {
	for b.appended < n {
		m := min(n-b.appended, 100)
		evs := make([]eventstore.Event, m)
		for i := range evs {
			evs[i] = eventstore.Event{Type: "MoneyDeposited", Data: stData(b.appended + i)}
		}
		if _, err := b.store.Append(ctx, stStream(b.appended/100), eventstore.Any, evs...); err != nil {
			return err
		}
		b.appended += m
	}
	return nil
}

// readAll reads n events of the log with ReadAll and decodes them.
func (b *stBench) readAll(ctx context.Context, s *espg.Store, n int) (time.Duration, error) {
	start := time.Now()
	got := 0
	var p stPayload
	for rec, err := range s.ReadAll(ctx, eventstore.ReadAllOptions{Limit: n}) {
		if err != nil {
			return 0, err
		}
		if err := json.Unmarshal(rec.Data, &p); err != nil {
			return 0, err
		}
		got++
	}
	if got != n {
		return 0, fmt.Errorf("read %d events, want %d", got, n)
	}
	return time.Since(start), nil
}

// rawReadAll reads the same rows with a plain keyset query in batches of
// the same size and decodes them.
func (b *stBench) rawReadAll(ctx context.Context, n int) (time.Duration, error) {
	sql := `SELECT position, transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at
		FROM ` + pgx.Identifier{b.store.Schema()}.Sanitize() + `.events
		WHERE (transaction_id, position) > ($1, $2) ORDER BY transaction_id, position LIMIT $3`
	start := time.Now()
	var (
		tx, pos int64
		got     int
		p       stPayload
	)
	for got < n {
		batch := min(eventstore.DefaultBatchSize, n-got)
		rows, err := b.env.Pool.Query(ctx, sql, tx, pos, batch)
		if err != nil {
			return 0, err
		}
		k := 0
		for rows.Next() {
			var (
				id       pgtype.UUID
				stream   string
				version  int64
				typ      string
				sv       int32
				data, md []byte
				at       time.Time
			)
			if err := rows.Scan(&pos, &tx, &id, &stream, &version, &typ, &sv, &data, &md, &at); err != nil {
				rows.Close()
				return 0, err
			}
			if err := json.Unmarshal(data, &p); err != nil {
				rows.Close()
				return 0, err
			}
			k++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
		if k == 0 {
			return 0, fmt.Errorf("raw read stopped at %d events, want %d", got, n)
		}
		got += k
	}
	return time.Since(start), nil
}

// readStreamFig times reading a 1,000-event stream with ReadStream beside
// one plain SELECT of the same rows.
func (b *stBench) readStreamFig(ctx context.Context) (Row, error) {
	const stream, size = "long-1", 1000
	for v := 0; v < size; v += 100 {
		evs := make([]eventstore.Event, 100)
		for i := range evs {
			evs[i] = eventstore.Event{Type: "MoneyDeposited", Data: stData(v + i)}
		}
		if _, err := b.store.Append(ctx, stream, eventstore.Exact(int64(v)), evs...); err != nil {
			return Row{}, err
		}
	}
	sql := `SELECT position, transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at
		FROM ` + pgx.Identifier{b.store.Schema()}.Sanitize() + `.events WHERE stream_id = $1 ORDER BY stream_version`
	reps := b.env.N(100, 10)
	var p stPayload
	raw := func() error {
		rows, err := b.env.Pool.Query(ctx, sql, stream)
		if err != nil {
			return err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var (
				pos, tx, version int64
				id               pgtype.UUID
				sid, typ         string
				sv               int32
				data, md         []byte
				at               time.Time
			)
			if err := rows.Scan(&pos, &tx, &id, &sid, &version, &typ, &sv, &data, &md, &at); err != nil {
				return err
			}
			if err := json.Unmarshal(data, &p); err != nil {
				return err
			}
			n++
		}
		if n != size {
			return fmt.Errorf("raw read %d events, want %d", n, size)
		}
		return rows.Err()
	}
	chron := func() error {
		n := 0
		for rec, err := range b.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{}) {
			if err != nil {
				return err
			}
			if err := json.Unmarshal(rec.Data, &p); err != nil {
				return err
			}
			n++
		}
		if n != size {
			return fmt.Errorf("ReadStream read %d events, want %d", n, size)
		}
		return nil
	}
	var best, bestRaw time.Duration
	for i := 0; i < reps; i++ {
		for _, run := range []struct {
			f     func() error
			total *time.Duration
		}{{raw, &bestRaw}, {chron, &best}} {
			start := time.Now()
			if err := run.f(); err != nil {
				return Row{}, err
			}
			*run.total += time.Since(start)
		}
	}
	best /= time.Duration(reps)
	bestRaw /= time.Duration(reps)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	r := ratioRow("ReadStream of a 1,000-event stream (time per read)", us(best), us(bestRaw), "µs", 1.2, false)
	r.Baseline += " (one SELECT + decode)"
	return r, nil
}

// rssFig fills a log of 1M events (scaled) with one INSERT ... SELECT and
// reads it with ReadAll in a child process, reporting the child's peak RSS;
// a read of a tenth of the log is the baseline, so a flat profile shows as
// a ratio near 1.
func (b *stBench) rssFig(ctx context.Context) (Row, error) {
	n := b.env.N(1_000_000, 20_000)
	s, err := b.newStore(ctx, "store_rss")
	if err != nil {
		return Row{}, err
	}
	q := pgx.Identifier{s.Schema()}.Sanitize()
	payload := string(stData(1))
	if _, err := b.env.Pool.Exec(ctx, `INSERT INTO `+q+`.events
		(transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
		SELECT pg_current_xact_id()::text::bigint, gen_random_uuid(), 'fill-' || (g % 1000), g / 1000 + 1,
		       'MoneyDeposited', 1, $2::jsonb, '{"correlation_id":"c"}'::jsonb
		  FROM generate_series(0, $1 - 1) g`, n, payload); err != nil {
		return Row{}, fmt.Errorf("fill %d events: %w", n, err)
	}
	small, _, err := b.rssChild(ctx, s.Schema(), n/10)
	if err != nil {
		return Row{}, err
	}
	big, d, err := b.rssChild(ctx, s.Schema(), n)
	if err != nil {
		return Row{}, err
	}
	ratio := float64(big) / float64(small)
	return Row{
		Figure:   fmt.Sprintf("ReadAll over %s events, peak RSS (child process)", stCount(n)),
		Value:    fmt.Sprintf("%.1f MB (%.0f events/s)", float64(big)/1024, rate(n, d)),
		Baseline: fmt.Sprintf("%.1f MB reading %s events", float64(small)/1024, stCount(n/10)),
		Ratio:    fmt.Sprintf("%.2fx", ratio),
		Goal:     "flat (<= 1.25x)",
		Pass:     yesNo(ratio <= 1.25),
	}, nil
}

func stCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// rssChild runs this binary as a child that reads want events of schema,
// and returns its peak RSS in KiB and the time it took to read.
func (b *stBench) rssChild(ctx context.Context, schema string, want int) (int64, time.Duration, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), stChildEnv+"="+schema, stChildDB+"="+b.env.DatabaseURL, stChildWant+"="+strconv.Itoa(want))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, 0, fmt.Errorf("rss child: %w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return 0, 0, fmt.Errorf("rss child: %w", err)
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, 0, fmt.Errorf("rss child said %q: %w", out, err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0, errors.New("rss child: no rusage on this platform")
	}
	return ru.Maxrss, d, nil // KiB on Linux
}

// stRSSChild is the child's side: read the first want events of the log in
// schema, decoding each, and print how long it took.
func stRSSChild(schema string) error {
	ctx := context.Background()
	want, err := strconv.Atoi(os.Getenv(stChildWant))
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, os.Getenv(stChildDB))
	if err != nil {
		return err
	}
	defer pool.Close()
	s, err := espg.New(pool, espg.WithSchema(schema))
	if err != nil {
		return err
	}
	start := time.Now()
	n := 0
	var p stPayload
	for rec, err := range s.ReadAll(ctx, eventstore.ReadAllOptions{Limit: want}) {
		if err != nil {
			return err
		}
		if err := json.Unmarshal(rec.Data, &p); err != nil {
			return err
		}
		n++
	}
	if n != want {
		return fmt.Errorf("read %d events, want %d", n, want)
	}
	fmt.Println(time.Since(start))
	return nil
}

// diskFig: the events table's size with TOAST and every index, per event,
// against its heap alone (what a plain table of the same rows takes).
func (b *stBench) diskFig(ctx context.Context) (Row, error) {
	q := pgx.Identifier{b.store.Schema()}.Sanitize() + ".events"
	var total, heap, count int64
	if err := b.env.Pool.QueryRow(ctx, `SELECT pg_total_relation_size($1::regclass), pg_relation_size($1::regclass),
		(SELECT count(*) FROM `+q+`)`, q).Scan(&total, &heap, &count); err != nil {
		return Row{}, err
	}
	return Row{Figure: fmt.Sprintf("Disk per event, %s events (table, TOAST and indexes)", stCount(int(count))),
		Value:    fmt.Sprintf("%.0f B/event", float64(total)/float64(count)),
		Baseline: fmt.Sprintf("%.0f B/event (the heap alone: a plain table of the same rows)", float64(heap)/float64(count)),
		Ratio:    fmt.Sprintf("%.2fx", float64(total)/float64(heap)), Goal: "<= 1.20x (ADR 0014: not met)",
		Pass: yesNo(float64(total) <= 1.2*float64(heap))}, nil
}

// groupCommitted describes what group commit did between two readings of
// its counters: how many appends a transaction carried on average; ""
// when it did nothing (off).
func groupCommitted(a, b espg.GroupCommitStats) string {
	alone, batches, batched := b.Alone-a.Alone, b.Batches-a.Batches, b.Batched-a.Batched
	if alone+batches == 0 {
		return ""
	}
	s := fmt.Sprintf(", %.2f appends/transaction", float64(alone+batched)/float64(alone+batches))
	if fb := b.Fallback - a.Fallback; fb > 0 {
		s += fmt.Sprintf(" (%d sent back to run alone)", fb)
	}
	return s
}
