package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// The proof of issue 12 on PostgreSQL: a witness wraps each instance's
// projection store and writes down, in the transaction of every checkpoint
// commit of a partition, which instance committed, under which lease (the
// epoch the unit of work was fenced with) and who held the lease row at
// that moment, and the handler writes down every event it applies with the
// same facts. The read model and those records are then checked against
// the log.

// witness remembers, across every instance of a test, which instance each
// acquired lease (partition, epoch) went to.
type witness struct {
	mu       sync.Mutex
	acquired map[[2]int64]string // (partition, epoch) -> instance
	errs     []string
}

func newWitness() *witness { return &witness{acquired: map[[2]int64]string{}} }

func (w *witness) acquire(instance string, ls []projection.Lease) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range ls {
		k := [2]int64{int64(l.Partition), l.Epoch}
		if prev, ok := w.acquired[k]; ok {
			w.errs = append(w.errs, fmt.Sprintf("partition %d epoch %d acquired by %s and by %s", l.Partition, l.Epoch, prev, instance))
		}
		w.acquired[k] = instance
	}
}

func (w *witness) acquirer(part int, epoch int64) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acquired[[2]int64{int64(part), epoch}]
}

// witnessedStore is one instance's projection store: every partition's
// unit of work it opens records its checkpoint commit in proof_commits,
// and hands the handler a Tx telling the instance and the lease.
type witnessedStore struct {
	*projpg.Store
	instance string
	w        *witness
	q        string // quoted schema
	// lost counts commits refused with ErrLeaseLost.
	lost *atomic.Int64
	// paused, while it holds a channel, stalls the store's calls until the
	// channel is closed, ignoring their contexts, as a paused process
	// (stopped by the OS, GC-stalled) would.
	// pausedRenew does the same for Renew and Acquire only.
	paused, pausedRenew atomic.Pointer[chan struct{}]
	// armed, while true, pauses the store in the first checkpoint write
	// of partition stallAt that applied events (its transaction open, the
	// events applied, the fence not checked yet): entered is closed then,
	// stalled holds the unit's lease, and staleBegins counts the units of
	// work begun under that lease afterwards.
	armed       atomic.Bool
	stallAt     atomic.Int64
	entered     chan struct{}
	stalled     atomic.Pointer[projection.Lease]
	stalledFrom atomic.Pointer[eventstore.Position] // the stalled unit's checkpoint
	staleBegins atomic.Int64
	// staleCommits counts the commits made under that lease afterwards.
	staleCommits atomic.Int64
}

// pause stalls the store's calls until resume.
func (s *witnessedStore) pause() {
	ch, rch := make(chan struct{}), make(chan struct{})
	s.paused.Store(&ch)
	s.pausedRenew.Store(&rch)
}

// resumeUnits lets the units of work go on, not the renewals.
func (s *witnessedStore) resumeUnits() {
	if ch := s.paused.Swap(nil); ch != nil {
		close(*ch)
	}
}

func (s *witnessedStore) resume() {
	s.resumeUnits()
	if ch := s.pausedRenew.Swap(nil); ch != nil {
		close(*ch)
	}
}

func (s *witnessedStore) stall() {
	if ch := s.paused.Load(); ch != nil {
		<-*ch
	}
}

func (s *witnessedStore) stallRenew() {
	if ch := s.pausedRenew.Load(); ch != nil {
		<-*ch
	}
}

func (s *witnessedStore) Renew(ctx context.Context, b projection.Build, n int, owner string, ttl time.Duration) (projection.Members, error) {
	s.stallRenew()
	return s.Store.Renew(ctx, b, n, owner, ttl)
}

func (s *witnessedStore) Acquire(ctx context.Context, b projection.Build, owner string, ttl time.Duration, max int) ([]projection.Lease, error) {
	s.stallRenew()
	ls, err := s.Store.Acquire(ctx, b, owner, ttl, max)
	if err == nil {
		s.w.acquire(s.instance, ls)
	}
	return ls, err
}

func (s *witnessedStore) BeginPartition(ctx context.Context, l projection.Lease) (projection.UnitOfWork, error) {
	s.stall()
	if st := s.stalled.Load(); st != nil && st.Partition == l.Partition && st.Epoch == l.Epoch {
		s.staleBegins.Add(1)
	}
	u, err := s.Store.BeginPartition(ctx, l)
	if err != nil {
		return nil, err
	}
	return &witnessedUnit{UnitOfWork: u, s: s, l: l, from: u.Checkpoint(), tx: &witnessedTx{Tx: u.Handlers(), instance: s.instance, lease: l}}, nil
}

type witnessedUnit struct {
	projection.UnitOfWork
	s    *witnessedStore
	l    projection.Lease
	from eventstore.Position
	to   *eventstore.Position
	tx   *witnessedTx
}

func (u *witnessedUnit) Handlers() projection.Tx { return u.tx }

func (u *witnessedUnit) SetCheckpoint(ctx context.Context, pos eventstore.Position, applied int) error {
	armed := applied > 0 && u.s.armed.Load() && int64(u.l.Partition) == u.s.stallAt.Load() && u.s.armed.CompareAndSwap(true, false)
	if armed {
		u.s.pause()
		u.s.stalled.Store(&u.l)
		u.s.stalledFrom.Store(&u.from)
		close(u.s.entered)
	}
	u.s.stall()
	if err := u.UnitOfWork.SetCheckpoint(ctx, pos, applied); err != nil {
		if errors.Is(err, projection.ErrLeaseLost) {
			u.s.lost.Add(1)
		}
		return err
	}
	u.to = &pos
	return nil
}

// Commit records the commit, after the fenced checkpoint write (which
// holds the lease row FOR SHARE), with the lease row as it stands.
func (u *witnessedUnit) Commit(ctx context.Context) error {
	u.s.stall()
	if u.to != nil {
		b, l := u.l.Build, u.l
		if _, err := projpg.From(u.UnitOfWork.Handlers()).Exec(ctx, `INSERT INTO `+u.s.q+`.proof_commits
			(partition, instance, epoch, held_by, held_epoch, from_tx, from_seq, to_tx, to_seq)
			SELECT $4, $5, $6, owner, epoch, $7, $8, $9, $10 FROM `+u.s.q+`.projection_leases
			WHERE name = $1 AND version = $2 AND generation = $3 AND partition = $4`,
			b.Name, b.Version, b.Generation, l.Partition, u.s.instance, l.Epoch,
			int64(u.from.TxID), int64(u.from.Seq), int64(u.to.TxID), int64(u.to.Seq)); err != nil {
			return err
		}
	}
	err := u.UnitOfWork.Commit(ctx)
	if errors.Is(err, projection.ErrLeaseLost) {
		u.s.lost.Add(1)
	}
	if st := u.s.stalled.Load(); err == nil && st != nil && st.Partition == u.l.Partition && st.Epoch == u.l.Epoch {
		u.s.staleCommits.Add(1)
	}
	return err
}

// witnessedTx is the handler's Tx, telling which instance applies the
// event under which lease.
type witnessedTx struct {
	projection.Tx
	instance string
	lease    projection.Lease
}

func (t *witnessedTx) Unwrap() projection.Tx { return t.Tx }

// proofProjection records each applied event (its ID unique unless
// !unique), and each stream's last applied version with a count of
// versions applied out of order, in the unit of work's transaction.
func proofProjection(name string, parts int, unique bool) projection.Projection {
	key := "PRIMARY KEY"
	if !unique {
		key = "NOT NULL"
	}
	return projection.Projection{
		Name:       name,
		Version:    1,
		Partitions: parts,
		Tables:     []string{"applied", "streams"},
		Setup: func(ctx context.Context, tx projection.Tx) error {
			_, err := projpg.From(tx).Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tx.Table("applied")+` (
				event_id uuid `+key+`, stream_id text NOT NULL, version bigint NOT NULL,
				tx_id bigint NOT NULL, seq bigint NOT NULL,
				partition int NOT NULL, instance text NOT NULL, epoch bigint NOT NULL);
				CREATE TABLE IF NOT EXISTS `+tx.Table("streams")+` (
				stream_id text PRIMARY KEY, n bigint NOT NULL, last_version bigint NOT NULL, bad bigint NOT NULL DEFAULT 0)`)
			return err
		},
		Handler: projection.HandlerFunc(func(ctx context.Context, ptx projection.Tx, ev projection.Event) error {
			wt, ok := ptx.(*witnessedTx)
			if !ok {
				return fmt.Errorf("handler got %T, not the witness's Tx", ptx)
			}
			tx, rec := projpg.From(ptx), ev.Record
			tx.Queue(`INSERT INTO `+tx.Table("applied")+` VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				rec.ID, rec.StreamID, rec.StreamVersion, int64(rec.Position.TxID), int64(rec.Position.Seq),
				wt.lease.Partition, wt.instance, wt.lease.Epoch)
			tx.Queue(`INSERT INTO `+tx.Table("streams")+` AS s (stream_id, n, last_version) VALUES ($1, 1, $2)
				ON CONFLICT (stream_id) DO UPDATE SET n = s.n + 1, last_version = EXCLUDED.last_version,
				bad = s.bad + (s.last_version <> EXCLUDED.last_version - 1)::int`, rec.StreamID, rec.StreamVersion)
			return nil
		}),
	}
}

// syncBuffer is a log sink shared by the instances' loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// has reports whether a line holds every one of parts.
func (s *syncBuffer) has(parts ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range strings.Split(s.b.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return true
		}
	}
	return false
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(s.b.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// proofInstance is one service instance: its own pool (named so that its
// backends can be terminated), stores and runner.
type proofInstance struct {
	name   string
	pool   *pgxpool.Pool
	store  *witnessedStore
	runner *projection.Runner
	cancel context.CancelFunc
	done   chan error
}

type proofEnv struct {
	*env
	tag  string // application_name prefix of this test's instance pools
	w    *witness
	logs *syncBuffer
	ttl  time.Duration
	p    projection.Projection
	lost atomic.Int64 // commits refused by the fence, every instance
}

func (pe *proofEnv) start(name string) *proofInstance {
	t := pe.t
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	cfg.ConnConfig.RuntimeParams["application_name"] = pe.tag + name
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	es, err := espg.New(pool, espg.WithSchema(pe.schema), espg.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := projpg.New(pool, projpg.WithSchema(pe.schema))
	if err != nil {
		t.Fatal(err)
	}
	ws := &witnessedStore{Store: ps, instance: name, w: pe.w, q: pgmigrate.Quote(pe.schema), lost: &pe.lost,
		entered: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(pe.logs, &slog.HandlerOptions{Level: slog.LevelWarn})).With("instance", name)
	r, err := projection.NewRunner(es, ws, []projection.Projection{pe.p},
		projection.WithBackoff(time.Millisecond, 20*time.Millisecond), projection.WithHaltPoll(20*time.Millisecond),
		projection.WithOwner(name), projection.WithLeaseTTL(pe.ttl), projection.WithHeartbeat(200*time.Millisecond),
		projection.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &proofInstance{name: name, pool: pool, store: ws, runner: r, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- r.Run(ctx) }()
	return in
}

// activity describes the instances' PostgreSQL sessions, for a failure.
func (pe *proofEnv) activity() string {
	rows, err := pe.pool.Query(context.Background(), `SELECT a.application_name, a.pid, a.state, coalesce(a.wait_event_type, ''),
			coalesce(a.wait_event, ''), pg_blocking_pids(a.pid)::text, left(regexp_replace(a.query, '\s+', ' ', 'g'), 160)
		FROM pg_stat_activity a WHERE a.application_name LIKE $1 || '%' ORDER BY 1, 2`, pe.tag)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for rows.Next() {
		var app, state, wt, we, blocking, query string
		var pid int
		if err := rows.Scan(&app, &pid, &state, &wt, &we, &blocking, &query); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&b, "%s pid %d %s wait %s/%s blocked by %s: %s\n", app, pid, state, wt, we, blocking, query)
	}
	return b.String()
}

// kill ends an instance abruptly: either its context is cancelled and its
// pool closed at once, or its PostgreSQL backends are terminated (open
// transactions aborted, as when a process dies) and then its context is
// cancelled. It never releases its leases; they expire. kill returns once
// Run has returned, whatever it returned.
func (pe *proofEnv) kill(in *proofInstance, terminate bool) {
	t := pe.t
	if terminate {
		if _, err := pe.pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE application_name = $1 AND pid <> pg_backend_pid()`, pe.tag+in.name); err != nil {
			t.Errorf("terminate %s's backends: %v", in.name, err)
		}
		in.cancel()
	} else {
		in.cancel()
	}
	closed := make(chan struct{})
	go func() {
		in.pool.Close()
		close(closed)
	}()
	select {
	case <-in.done:
	case <-time.After(20 * time.Second):
		t.Errorf("instance %s: Run did not return within 20s of its kill", in.name)
		return
	}
	<-closed
}

// stop ends an instance at the end of the test: Run must return nil.
func (pe *proofEnv) stop(in *proofInstance) {
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil {
			pe.t.Errorf("instance %s: Run: %v", in.name, err)
		}
	case <-time.After(20 * time.Second):
		pe.t.Errorf("instance %s: Run did not return within 20s", in.name)
	}
	in.pool.Close()
}

// TestPartitionedProofThreeInstancesKilledAtRandom is issue 12's proof on
// PostgreSQL: three instances (separate runners, separate pools) run one
// projection in 32 partitions while 20 writers append to shared streams for
// 30 s (5 s with -short), and the instances are killed (context cancelled
// and pool closed, or backends terminated mid-transaction) and restarted at
// random, or paused (every call to their store stalled, whatever its
// context) past their leases' expiry and resumed. At the end:
//   - the read model equals the log: every event of the log applied exactly
//     once (the event ID is the key of the applied table), with its stream
//     and version, and each stream's versions applied contiguously in order;
//   - every checkpoint commit of a partition was made by the instance that
//     had acquired the lease it was fenced with, while that lease row still
//     named it at that epoch (read in the commit's transaction); each
//     partition's commits form one chain from the zero checkpoint (each
//     commit starts where the previous one ended: never two owners building
//     on the same checkpoint), along which the epoch never goes back;
//   - every applied event was committed by the commit of its partition's
//     chain that covers its position, under the same instance and epoch.
func TestPartitionedProofThreeInstancesKilledAtRandom(t *testing.T) {
	const parts, writers, streams = 32, 20, 400
	writeFor := 30 * time.Second
	if testing.Short() {
		writeFor = 5 * time.Second
	}
	pe := &proofEnv{env: newEnv(t), tag: testenv.Name("pp")[:12] + "-", w: newWitness(), logs: &syncBuffer{},
		ttl: 1500 * time.Millisecond, p: proofProjection("proof", parts, true)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last log lines:\n%s", pe.logs.tail(60))
		}
	})
	ctx := testCtx(t)
	q := pgmigrate.Quote(pe.schema)
	if _, err := pe.pool.Exec(ctx, `CREATE TABLE `+q+`.proof_commits (
		partition int NOT NULL, instance text NOT NULL, epoch bigint NOT NULL, held_by text NOT NULL, held_epoch bigint NOT NULL,
		from_tx bigint NOT NULL, from_seq bigint NOT NULL, to_tx bigint NOT NULL, to_seq bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex // guards live and gen
	gen := map[int]int{}
	live := make([]*proofInstance, 3)
	for i := range live {
		live[i] = pe.start(fmt.Sprintf("i%d.0", i))
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, in := range live {
			if in != nil {
				pe.kill(in, false)
			}
		}
	}()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var appends, failed atomic.Int64
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 12))
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("s-%d", rng.IntN(streams))
				evs := make([]eventstore.Event, 1+rng.IntN(3))
				for i := range evs {
					evs[i] = eventstore.Event{Type: "Counted", Data: []byte(`{}`)}
				}
				if _, err := pe.events.Append(ctx, id, eventstore.Any, evs...); err != nil {
					if failed.Add(1) == 1 {
						t.Errorf("writer %d: append to %s: %v", w, id, err)
					}
					return
				}
				appends.Add(1)
			}
		})
	}
	var kills, terminations, pauses int
	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d", seed)
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(seed, 7))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(300+rng.IntN(1700)) * time.Millisecond):
			}
			k := rng.IntN(len(live))
			mu.Lock()
			in := live[k]
			mu.Unlock()
			if rng.IntN(4) == 0 {
				// Paused past its lease's expiry: its partitions are taken
				// over; when it resumes, whatever it had under way must be
				// refused by the fence.
				in.store.pause()
				time.Sleep(pe.ttl + time.Duration(rng.IntN(1000))*time.Millisecond) // the pause itself
				in.store.resume()
				pauses++
				continue
			}
			mu.Lock()
			live[k] = nil
			mu.Unlock()
			terminate := rng.IntN(2) == 0
			pe.kill(in, terminate)
			kills++
			if terminate {
				terminations++
			}
			// Down for a while, or back at once (its old leases still
			// held by the dead runner until they expire).
			select {
			case <-stop:
			case <-time.After(time.Duration(rng.IntN(1500)) * time.Millisecond):
			}
			mu.Lock()
			gen[k]++
			live[k] = pe.start(fmt.Sprintf("i%d.%d", k, gen[k]))
			mu.Unlock()
		}
	})
	time.Sleep(writeFor) // the test's duration: writers and kills run meanwhile
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	_, last := pe.write("final", 4, 3)
	t.Logf("%d appends by %d writers in %s; %d kills (%d with backends terminated), %d pauses past the lease TTL",
		appends.Load(), writers, writeFor, kills, terminations, pauses)

	wctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mu.Lock()
	running := slices.Clone(live)
	mu.Unlock()
	for _, in := range running {
		if err := in.runner.WaitFor(wctx, "proof", last); err != nil {
			st, _ := pe.store.Partitions(testCtx(t), projection.Build{Name: "proof", Version: 1})
			t.Fatalf("WaitFor on %s: %v\npartitions: %+v", in.name, err, st)
		}
	}
	t.Logf("commits refused by the fence: %d", pe.lost.Load())

	pe.checkReadModelEqualsLog(q)
	pe.checkCommits(q, parts)
	pe.w.mu.Lock()
	for _, e := range pe.w.errs {
		t.Error(e)
	}
	pe.w.mu.Unlock()
	names := make([]string, len(running))
	for i, in := range running {
		names[i] = in.name
	}
	pe.waitSpread(projection.Build{Name: "proof", Version: 1}, parts, names...)
	mu.Lock()
	for i, in := range live {
		pe.stop(in)
		live[i] = nil
	}
	mu.Unlock()
}

// checkReadModelEqualsLog compares the applied table and the streams table
// with the events table.
func (pe *proofEnv) checkReadModelEqualsLog(q string) {
	t := pe.t
	ctx := testCtx(t)
	var logged, applied int64
	if err := pe.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+q+`.events), (SELECT count(*) FROM `+q+`.applied)`).Scan(&logged, &applied); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events in the log, %d applied", logged, applied)
	if logged != applied {
		t.Errorf("%d events in the log, %d applied", logged, applied)
	}
	rows, err := pe.pool.Query(ctx, `SELECT coalesce(e.event_id, a.event_id), e.stream_id, e.stream_version, a.stream_id, a.version
		FROM `+q+`.events e FULL JOIN `+q+`.applied a ON a.event_id = e.event_id
		WHERE a.event_id IS NULL OR e.event_id IS NULL OR a.stream_id <> e.stream_id OR a.version <> e.stream_version
			OR (a.tx_id, a.seq) <> (e.transaction_id, e.position)
		LIMIT 10`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		var ls, as *string
		var lv, av *int64
		if err := rows.Scan(&id, &ls, &lv, &as, &av); err != nil {
			t.Fatal(err)
		}
		t.Errorf("event %s: in the log as %v/%v, applied as %v/%v", id, deref(ls), deref(lv), deref(as), deref(av))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = pe.pool.Query(ctx, `SELECT l.stream_id, l.n, s.n, s.last_version, s.bad
		FROM (SELECT stream_id, count(*) AS n FROM `+q+`.events GROUP BY stream_id) l
		LEFT JOIN `+q+`.streams s USING (stream_id)
		WHERE s.stream_id IS NULL OR s.n <> l.n OR s.last_version <> l.n OR s.bad <> 0 LIMIT 10`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var n int64
		var sn, last, bad *int64
		if err := rows.Scan(&id, &n, &sn, &last, &bad); err != nil {
			t.Fatal(err)
		}
		t.Errorf("stream %s: %d events in the log; read model: %v applied, last version %v, %v out of order", id, n, deref(sn), deref(last), deref(bad))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var dead int
	if err := pe.pool.QueryRow(ctx, `SELECT count(*) FROM `+q+`.projection_dead_letters`).Scan(&dead); err != nil || dead != 0 {
		t.Errorf("dead letters: %d (%v)", dead, err)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "none"
	}
	return *p
}

// proofCommit is a row of proof_commits.
type proofCommit struct {
	instance, heldBy string
	epoch, heldEpoch int64
	from, to         eventstore.Position
}

// checkCommits checks each partition's commits: made under a lease the
// committing instance acquired and still held (the lease row named it at
// that epoch in the commit's transaction), one chain from the zero
// checkpoint with epochs never going back, and covering each applied
// event of the partition with the commit of the instance and epoch that
// applied it.
func (pe *proofEnv) checkCommits(q string, parts int) {
	t := pe.t
	ctx := testCtx(t)
	rows, err := pe.pool.Query(ctx, `SELECT partition, instance, epoch, held_by, held_epoch, from_tx, from_seq, to_tx, to_seq FROM `+q+`.proof_commits`)
	if err != nil {
		t.Fatal(err)
	}
	byPart := map[int][]proofCommit{}
	var total int
	for rows.Next() {
		var p int
		var c proofCommit
		var ftx, fseq, ttx, tseq int64
		if err := rows.Scan(&p, &c.instance, &c.epoch, &c.heldBy, &c.heldEpoch, &ftx, &fseq, &ttx, &tseq); err != nil {
			t.Fatal(err)
		}
		c.from = eventstore.Position{TxID: uint64(ftx), Seq: uint64(fseq)}
		c.to = eventstore.Position{TxID: uint64(ttx), Seq: uint64(tseq)}
		byPart[p] = append(byPart[p], c)
		total++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	states, err := pe.store.Partitions(ctx, projection.Build{Name: "proof", Version: 1})
	if err != nil || len(states) != parts {
		t.Fatalf("partitions: %d (%v)", len(states), err)
	}
	owners, handovers := map[string]bool{}, 0
	chains := map[int][]proofCommit{}
	for p := 0; p < parts; p++ {
		cs := byPart[p]
		next := map[eventstore.Position][]proofCommit{}
		for _, c := range cs {
			owners[c.instance] = true
			if !strings.HasPrefix(c.heldBy, c.instance+"/") || c.heldEpoch != c.epoch {
				t.Errorf("partition %d: %s committed under epoch %d while the lease row named %q at epoch %d", p, c.instance, c.epoch, c.heldBy, c.heldEpoch)
			}
			if got := pe.w.acquirer(p, c.epoch); got != c.instance {
				t.Errorf("partition %d: %s committed under epoch %d, acquired by %q", p, c.instance, c.epoch, got)
			}
			if !c.from.Before(c.to) {
				t.Errorf("partition %d: %s committed a checkpoint from %s to %s", p, c.instance, c.from, c.to)
			}
			next[c.from] = append(next[c.from], c)
		}
		var chain []proofCommit
		at, epoch := eventstore.Position{}, int64(0)
		for {
			n := next[at]
			if len(n) == 0 {
				break
			}
			if len(n) > 1 {
				t.Errorf("partition %d: %d commits from checkpoint %s (two owners at once): %+v", p, len(n), at, n)
			}
			c := n[0]
			if c.epoch < epoch {
				t.Errorf("partition %d: %s committed under epoch %d after epoch %d", p, c.instance, c.epoch, epoch)
			}
			if c.epoch != epoch {
				handovers++
			}
			chain = append(chain, c)
			at, epoch = c.to, c.epoch
		}
		if len(chain) != len(cs) {
			t.Errorf("partition %d: %d commits, %d of them in the chain from the zero checkpoint", p, len(cs), len(chain))
		}
		if at != states[p].Checkpoint {
			t.Errorf("partition %d: chain of commits ends at %s, checkpoint is %s", p, at, states[p].Checkpoint)
		}
		chains[p] = chain
	}
	t.Logf("%d checkpoint commits by %d instances, %d changes of epoch along the chains", total, len(owners), handovers)

	rows, err = pe.pool.Query(ctx, `SELECT stream_id, tx_id, seq, partition, instance, epoch FROM `+q+`.applied`)
	if err != nil {
		t.Fatal(err)
	}
	var bad int
	for rows.Next() {
		var stream, instance string
		var txid, seq, epoch int64
		var p int
		if err := rows.Scan(&stream, &txid, &seq, &p, &instance, &epoch); err != nil {
			t.Fatal(err)
		}
		pos := eventstore.Position{TxID: uint64(txid), Seq: uint64(seq)}
		if want := projection.PartitionOf(stream, parts); p != want {
			t.Errorf("stream %s applied in partition %d, belongs to %d", stream, p, want)
			continue
		}
		chain := chains[p]
		i, _ := slices.BinarySearchFunc(chain, pos, func(c proofCommit, pos eventstore.Position) int { return c.to.Compare(pos) })
		if i == len(chain) || !chain[i].from.Before(pos) || chain[i].instance != instance || chain[i].epoch != epoch {
			if bad++; bad <= 10 {
				var c any = "none"
				if i < len(chain) {
					c = chain[i]
				}
				t.Errorf("event of %s at %s applied by %s under epoch %d in partition %d; covering commit: %+v", stream, pos, instance, epoch, p, c)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestPausedInstanceCannotCommitAfterItsLeaseExpired: an instance paused
// (every call to its store stalled) in the middle of a unit of work on a
// partition, its events applied but not committed, stops renewing; its
// leases expire on the database's clock and a second instance, the only
// live one, takes every partition over with new epochs. When the paused
// instance's unit of work resumes (its renewals still stalled, so that
// only the worker's own outcome stops it), it fails with ErrLeaseLost at
// once, and the worker stops: no unit of work begun again under the lost
// lease, no "event failed" warning. Two cases:
//   - fence: the new owner is itself stalled before its first checkpoint
//     write of the partition, so the checkpoint is still the one the
//     paused unit read and only the fencing epoch refuses it (a read model
//     without a unique key: nothing else would);
//   - unique key: the new owner has applied and committed the same events,
//     and the paused unit fails first on its read model's unique key,
//     which must count as the lost lease, not as a failing event.
//
// Nothing of it stays: the read model equals the log, every commit was
// made under the lease its instance held, and once the paused instance's
// renewals resume the partitions spread over both instances again.
func TestPausedInstanceCannotCommitAfterItsLeaseExpired(t *testing.T) {
	t.Run("fence", func(t *testing.T) { testPausedInstance(t, false) })
	t.Run("unique key", func(t *testing.T) { testPausedInstance(t, true) })
}

func testPausedInstance(t *testing.T, ownerCommitsFirst bool) {
	const parts = 4
	pe := &proofEnv{env: newEnv(t), tag: testenv.Name("pp")[:12] + "-", w: newWitness(), logs: &syncBuffer{},
		ttl: time.Second, p: proofProjection("proof", parts, ownerCommitsFirst)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last log lines:\n%s", pe.logs.tail(60))
		}
	})
	q := pgmigrate.Quote(pe.schema)
	if _, err := pe.pool.Exec(testCtx(t), `CREATE TABLE `+q+`.proof_commits (
		partition int NOT NULL, instance text NOT NULL, epoch bigint NOT NULL, held_by text NOT NULL, held_epoch bigint NOT NULL,
		from_tx bigint NOT NULL, from_seq bigint NOT NULL, to_tx bigint NOT NULL, to_seq bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	b := projection.Build{Name: "proof", Version: 1}
	// Both instances run before the pause (an instance starting while
	// another is paused in a commit waits for it, see the report of
	// TestSetupDoesNotWaitForAnOpenUnitOfWork).
	a, bi := pe.start("a"), pe.start("b")
	defer func() {
		a.store.resume()
		bi.store.resume()
		pe.stop(a)
		pe.stop(bi)
	}()
	pe.waitSpread(b, parts, "a", "b")
	_, last := pe.write("warm", 8, 3)
	if err := a.runner.WaitFor(testCtx(t), "proof", last); err != nil {
		t.Fatal(err)
	}
	states, err := pe.store.Partitions(testCtx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	stream := ""
	for i := 0; stream == ""; i++ {
		id := fmt.Sprintf("paused-%d", i)
		if strings.HasPrefix(states[projection.PartitionOf(id, parts)].Lease.Owner, "a/") {
			stream = id
		}
	}
	part := projection.PartitionOf(stream, parts)
	a.store.stallAt.Store(int64(part))
	a.store.armed.Store(true)
	if !ownerCommitsFirst {
		bi.store.stallAt.Store(int64(part))
		bi.store.armed.Store(true)
	}
	evs := make([]eventstore.Event, 3)
	for i := range evs {
		evs[i] = eventstore.Event{Type: "Counted", Data: []byte(`{}`)}
	}
	paused, err := pe.events.Append(testCtx(t), stream, eventstore.NoStream, evs...)
	if err != nil {
		t.Fatal(err)
	}
	entered := func(in *proofInstance) {
		t.Helper()
		select {
		case <-in.store.entered:
		case <-time.After(20 * time.Second):
			t.Fatalf("instance %s never wrote a checkpoint of partition %d\n%s", in.name, part, pe.activity())
		}
	}
	entered(a)
	held := *a.store.stalled.Load()
	// a is paused with its unit of work open; its leases expire and b,
	// the only live member left, takes the partition over.
	if ownerCommitsFirst {
		// b takes the partition over (not necessarily all of a's: a unit
		// of work of a paused between its fenced checkpoint write and its
		// commit holds its lease row, and the takeover waits for it).
		deadline := time.Now().Add(15 * time.Second)
		for {
			st, err := pe.store.Partitions(testCtx(t), b)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(st[part].Lease.Owner, "b/") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("b did not take partition %d over within 15s: %+v\n%s", part, st[part].Lease, pe.activity())
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Only events appended before the pause: a unit of work of a
		// paused after its checkpoint write holds a transaction ID, and
		// with it the log's horizon for every reader (ADR 0008).
		wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := bi.runner.WaitForStream(wctx, "proof", stream, paused.Position); err != nil {
			st, _ := pe.store.Partitions(testCtx(t), b)
			t.Fatalf("b applying partition %d: %v\npartitions: %+v\n%s", part, err, st, pe.activity())
		}
	} else {
		entered(bi) // b applied the partition's events, not committed
	}
	after, err := pe.store.Partitions(testCtx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if l := after[part].Lease; !strings.HasPrefix(l.Owner, "b/") || l.Epoch <= held.Epoch {
		t.Fatalf("partition %d after the pause: held by %q at epoch %d; a held it at epoch %d", part, l.Owner, l.Epoch, held.Epoch)
	}
	if moved := after[part].Checkpoint != *a.store.stalledFrom.Load(); moved != ownerCommitsFirst {
		t.Fatalf("partition %d's checkpoint moved since a's unit of work began: %v, want %v", part, moved, ownerCommitsFirst)
	}
	a.store.resumeUnits()
	want := fmt.Sprintf(`partition=%d epoch=%d`, part, held.Epoch)
	deadline := time.Now().Add(20 * time.Second)
	// Until the worker stops on its lost lease, or goes on under it.
	for !pe.logs.has("instance=a", "partition taken over by another runner", want) &&
		a.store.staleBegins.Load() == 0 && a.store.staleCommits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a's worker of partition %d neither stopped nor went on after resuming", part)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := a.store.staleCommits.Load(); n != 0 {
		t.Errorf("%d units of work committed under the lost lease after resuming", n)
	}
	if n := a.store.staleBegins.Load(); n != 0 {
		t.Errorf("%d units of work begun under the lost lease after resuming", n)
	}
	if pe.logs.has("instance=a", "event failed; retrying") {
		t.Errorf("a retried an event under its lost lease")
	}
	bi.store.resume()
	a.store.resume()
	pe.waitSpread(b, parts, "a", "b")
	_, last = pe.write("after", 8, 3)
	for _, in := range []*proofInstance{a, bi} {
		if err := in.runner.WaitFor(testCtx(t), "proof", last); err != nil {
			t.Fatalf("WaitFor on %s: %v", in.name, err)
		}
	}
	pe.checkReadModelEqualsLog(q)
	pe.checkCommits(q, parts)
}

// TestRenewDoesNotWaitForAnOpenUnitOfWork: a unit of work on a partition
// that has written its checkpoint and not committed yet (its runner
// paused there) holds the partition's checkpoint row; the other runners'
// renewals and acquisitions must not wait for it, or one stalled runner
// would stop every runner of the build from renewing its leases.
func TestRenewDoesNotWaitForAnOpenUnitOfWork(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	b := projection.Build{Name: "stalled", Version: 1}
	if _, err := e.store.Renew(ctx, b, 2, "paused", time.Minute); err != nil {
		t.Fatal(err)
	}
	held, err := e.store.Acquire(ctx, b, "paused", time.Minute, 1)
	if err != nil || len(held) != 1 {
		t.Fatalf("acquire: %v %v", held, err)
	}
	u, err := e.store.BeginPartition(ctx, held[0])
	if err != nil {
		t.Fatal(err)
	}
	defer u.Rollback(context.Background())
	if err := u.SetCheckpoint(ctx, posAt(3), 1); err != nil {
		t.Fatal(err)
	}
	// The unit of work stays open: its runner is paused.
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	m, err := e.store.Renew(rctx, b, 2, "other", time.Minute)
	if err != nil {
		t.Fatalf("renew beside an open unit of work: %v", err)
	}
	if len(m.Live) != 2 {
		t.Fatalf("live members: %v", m.Live)
	}
	got, err := e.store.Acquire(rctx, b, "other", time.Minute, 2)
	if err != nil || len(got) != 1 || got[0].Partition == held[0].Partition {
		t.Fatalf("acquire beside an open unit of work: %v %v, want the other partition", got, err)
	}
}

// TestPartitionedRebuildEndsWhenItsPartitionsAreDone: an Admin's rebuild
// of a partitioned projection returns soon after its partitions have
// applied the log, not at the next renewal of its leases (a third of the
// lease TTL, 10 s by default: 3.3 s).
func TestPartitionedRebuildEndsWhenItsPartitionsAreDone(t *testing.T) {
	e := newEnv(t)
	p := counting("quick", 1, func(p *projection.Projection) { p.Partitions = 4 })
	want, last := e.write("hist", 6, 5)
	// The rebuild catches up to the head readers see; another session's
	// open transaction (another test's) may hold it back for a while.
	deadline := time.Now().Add(20 * time.Second)
	for {
		head, err := e.events.Head(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !head.Before(last) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the head readers see is still %s, before the last write %s", head, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	adm, err := projection.NewAdmin(e.events, e.store, []projection.Projection{p})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := adm.Rebuild(testCtx(t), "quick"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	e.checkCounts("counts", want)
	t.Logf("rebuild of 30 events in 4 partitions took %s", took.Round(time.Millisecond))
	if renewal := projection.DefaultLeaseTTL / 3; took >= renewal {
		t.Fatalf("rebuild took %s, a renewal period (%s) or more", took.Round(time.Millisecond), renewal)
	}
}
