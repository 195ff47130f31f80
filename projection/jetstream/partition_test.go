package jetstream_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
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

// bucketed is the env's topology with buckets.
func (e *env) bucketed(buckets int) wire.Topology {
	t := e.topo()
	t.Buckets = buckets
	return t
}

// jsInstance is one service instance running a projection over
// JetStream: its own pool, NATS connection, source and runner.
type jsInstance struct {
	name   string
	pool   *pgxpool.Pool
	runner *projection.Runner
	src    *projjs.Source
	stop   func()
}

func (e *env) jsInstance(name, url string, topo wire.Topology, p projection.Projection, ttl time.Duration) *jsInstance {
	e.t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.DatabaseURL())
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.MaxConns = 12
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
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	js, err := njs.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	src, err := projjs.NewSource(js, es, projjs.WithTopology(topo), projjs.WithAckWait(2*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := projection.NewRunner(es, ps, []projection.Projection{p}, projection.WithSource(src),
		projection.WithBackoff(time.Millisecond, 20*time.Millisecond), projection.WithHaltPoll(20*time.Millisecond),
		projection.WithOwner(name), projection.WithLeaseTTL(ttl), projection.WithHeartbeat(200*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	return &jsInstance{name: name, pool: pool, runner: r, src: src, stop: run(e.t, r)}
}

// waitSpread waits until exactly the named owners hold every partition of
// b, each n/len or n/len+1 of them.
func (e *env) waitSpread(b projection.Build, n int, owners ...string) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		states, err := e.store.Partitions(testCtx(e.t), b)
		if err != nil {
			e.t.Fatal(err)
		}
		got, free := runnertest.Spread(states)
		if len(states) == n && runnertest.Even(got, free, n, owners...) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("partitions not spread over %v within 20s: %v, %d free", owners, got, free)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPartitionedRunnersOverJetStream: two instances (separate pools and
// NATS connections) run a projection in 8 partitions over a bucketed
// topology while writers append; each partition is read from its own
// filtered consumer; one instance is stopped mid-way and the other takes
// its partitions over. Every event is applied exactly once, in per-stream
// order, and WaitFor returns although most partitions are idle at the end.
func TestPartitionedRunnersOverJetStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testPartitionedRunnersOverJetStream(t, e, e.nats.URL(), 1, time.Second)
}

// TestPartitionedRunnersOverJetStreamCluster is the same on a three-node
// JetStream cluster with an R3 stream (no node is killed: the relay's
// behaviour across a leader change is the cluster test's subject). It runs
// only with CHRONICLE_TEST_NATS_CLUSTER set, as the cluster test does: on
// a loaded 2-core machine under -race it takes a minute, and the runners'
// renewals stall for seconds (leases are lost and taken again, which the
// fence makes harmless).
func TestPartitionedRunnersOverJetStreamCluster(t *testing.T) {
	if os.Getenv("CHRONICLE_TEST_NATS_CLUSTER") == "" {
		t.Skip("set CHRONICLE_TEST_NATS_CLUSTER=1 to run the 3-node JetStream cluster tests")
	}
	t.Parallel()
	cl := testenv.NATSCluster(t)
	e := newEnvOn(t, cl.URL())
	// Three servers under -race load a small machine: a renewal of the
	// leases (every third of the TTL) then takes most of a second.
	testPartitionedRunnersOverJetStream(t, e, cl.URL(), 3, 3*time.Second)
}

func testPartitionedRunnersOverJetStream(t *testing.T, e *env, url string, replicas int, ttl time.Duration) {
	const n = 8
	topo := e.bucketed(16)
	e.startRelay(relay.WithStream(relay.StreamConfig{Topology: topo, Replicas: replicas}))
	p := counting("spread", func(p *projection.Projection) { p.Partitions = n })
	b := projection.Build{Name: "spread", Version: 1}

	// The partitions' consumers deliver while the writers run (their
	// counts start again whenever a consumer is re-created: keep the
	// largest sum seen).
	var (
		delivered atomic.Uint64
		watching  sync.WaitGroup
	)
	stopWatching := make(chan struct{})
	watching.Add(1)
	go func() {
		defer watching.Done()
		for {
			select {
			case <-stopWatching:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var sum uint64
			for part := range n {
				c, err := e.js.Consumer(testCtx(t), topo.Stream, e.source(projjs.WithTopology(topo)).PartitionConsumerName(b, part))
				if err != nil {
					continue
				}
				if info, err := c.Info(testCtx(t)); err == nil {
					sum += info.Delivered.Consumer
				}
			}
			if sum > delivered.Load() {
				delivered.Store(sum)
			}
		}
	}()
	stopWriting, total := e.writers(2, 6, 5)

	a := e.jsInstance("a", url, topo, p, ttl)
	e.waitSpread(b, n, "a")
	bi := e.jsInstance("b", url, topo, p, ttl)
	e.waitSpread(b, n, "a", "b")
	time.Sleep(500 * time.Millisecond) // both apply while the writers run

	// Stop b: its leases are left to expire and a takes them over.
	stopped := time.Now()
	bi.stop()
	e.waitSpread(b, n, "a")
	t.Logf("b's partitions taken over in %s (lease TTL %s)", time.Since(stopped).Round(time.Millisecond), ttl)
	// Keep writing until the partitions' consumers have delivered: on a
	// loaded machine the workers may still be catching up from
	// PostgreSQL (as they do after each takeover).
	for deadline := time.Now().Add(30 * time.Second); delivered.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	stopWriting()
	close(stopWatching)
	watching.Wait()

	// One stream of one partition at the end: the others are idle.
	res, err := e.events.Append(testCtx(t), "last-0", eventstore.NoStream, eventstore.Event{Type: "Counted"})
	if err != nil {
		t.Fatal(err)
	}
	total.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.runner.WaitFor(ctx, "spread", res.Position); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}

	rows, err := e.pool.Query(testCtx(t), `SELECT stream_id, n, last_version, bad FROM `+pgmigrate.Quote(e.schema)+`.counts`)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for rows.Next() {
		var s string
		var c, last, bad int64
		if err := rows.Scan(&s, &c, &last, &bad); err != nil {
			t.Fatal(err)
		}
		sum += c
		if bad != 0 || last != c {
			t.Errorf("stream %s: %d applied, last version %d, %d out of order", s, c, last, bad)
		}
	}
	rows.Close()
	if sum != total.Load() {
		t.Errorf("applied %d events, appended %d", sum, total.Load())
	}

	// The live records came over the partitions' own consumers.
	st, err := e.js.Stream(testCtx(t), topo.Stream)
	if err != nil {
		t.Fatal(err)
	}
	for part := range n {
		name := a.src.PartitionConsumerName(b, part)
		var info *njs.ConsumerInfo
		for deadline := time.Now().Add(10 * time.Second); ; {
			// A partition's consumer is re-created when its worker
			// starts again: look again a moment later.
			c, err := st.Consumer(testCtx(t), name)
			if err == nil {
				info, err = c.Info(testCtx(t))
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer %s of partition %d: %v", name, part, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		want, _ := topo.PartitionBuckets(part, n)
		if len(info.Config.FilterSubjects) == 0 && info.Config.FilterSubject == "" {
			t.Errorf("consumer %s has no filter", name)
		}
		for _, f := range append(info.Config.FilterSubjects, info.Config.FilterSubject) {
			if f == "" {
				continue
			}
			bucket, _ := strconv.Atoi(strings.Split(strings.TrimPrefix(f, topo.SubjectPrefix+"."), ".")[0])
			if bucket%n != part || len(want) == 0 {
				t.Errorf("consumer %s of partition %d filters on %s", name, part, f)
			}
		}
	}
	if delivered.Load() == 0 {
		t.Error("the partitions' consumers delivered nothing while the writers ran")
	}
	t.Logf("%d events, up to %d deliveries at once over the partitions' consumers", total.Load(), delivered.Load())
}

// TestRelayPublishesBucketSubjects: on a bucketed topology, each message's
// subject carries the bucket of its stream, the same as
// projection.PartitionOf with the bucket count.
func TestRelayPublishesBucketSubjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	topo := e.bucketed(8)
	e.startRelay(relay.WithTopology(topo))
	_, _ = e.write("acct", 20, 2)
	st, err := e.js.Stream(ctx, topo.Stream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream holds %d messages, want 40", info.State.Msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for seq := uint64(1); seq <= 40; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		id := m.Header.Get(wire.HeaderStream)
		want := fmt.Sprintf("%s.%d.acct.Counted", topo.SubjectPrefix, projection.PartitionOf(id, 8))
		if m.Subject != want {
			t.Errorf("message %d of stream %s: subject %s, want %s", seq, id, m.Subject, want)
		}
	}
}

// TestPartitionConsumerReceivesOnlyItsPartition: the feed of one partition
// of four delivers every record of that partition's streams, in order,
// and nothing of the other partitions.
func TestPartitionConsumerReceivesOnlyItsPartition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	topo := e.bucketed(16)
	e.startRelay(relay.WithTopology(topo))
	src := e.source(projjs.WithTopology(topo))
	_, last := e.write("acct", 24, 3)
	for part := range 4 {
		want := 0
		for s := range 24 {
			if projection.PartitionOf(fmt.Sprintf("acct-%d", s), 4) == part {
				want += 3
			}
		}
		fctx, cancel := context.WithCancel(ctx)
		feed, err := src.Open(fctx, projection.SourceRequest{Build: projection.Build{Name: "part", Version: 1},
			Categories: []string{"acct"}, Partitions: 4, Partition: part})
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		var prev eventstore.Position
		versions := map[string]int64{}
		for got < want {
			select {
			case d, ok := <-feed.Deliveries():
				if !ok {
					t.Fatalf("partition %d: feed ended: %v", part, feed.Err())
				}
				rec := d.Record
				if p := projection.PartitionOf(rec.StreamID, 4); p != part {
					t.Fatalf("partition %d's consumer delivered stream %s of partition %d", part, rec.StreamID, p)
				}
				if !prev.Before(rec.Position) || rec.StreamVersion != versions[rec.StreamID]+1 {
					t.Fatalf("partition %d: %s version %d at %s out of order (after %s)", part, rec.StreamID, rec.StreamVersion, rec.Position, prev)
				}
				prev, versions[rec.StreamID] = rec.Position, rec.StreamVersion
				_ = d.Acker.Ack()
				got++
			case <-time.After(10 * time.Second):
				t.Fatalf("partition %d: %d of %d records delivered", part, got, want)
			}
		}
		// Nothing more: the rest of the log is other partitions'.
		select {
		case d := <-feed.Deliveries():
			t.Fatalf("partition %d: extra delivery of %s at %s (last %s)", part, d.Record.StreamID, d.Record.Position, last)
		case <-time.After(200 * time.Millisecond):
		}
		cancel()
		_ = feed.Close()
	}
	// Retiring the build deletes its partitions' consumers.
	if err := src.Retire(ctx, projection.Build{Name: "part", Version: 1}); err != nil {
		t.Fatal(err)
	}
	st, err := e.js.Stream(ctx, topo.Stream)
	if err != nil {
		t.Fatal(err)
	}
	names := st.ConsumerNames(ctx)
	for name := range names.Name() {
		t.Errorf("consumer %s left after Retire", name)
	}
}

// TestUnpartitionedOnBucketedTopology: a projection without partitions
// reads every bucket of a bucketed topology.
func TestUnpartitionedOnBucketedTopology(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topo := e.bucketed(4)
	e.startRelay(relay.WithTopology(topo))
	r := e.runner(e.source(projjs.WithTopology(topo)), []projection.Projection{counting("counts")})
	run(t, r)
	runnertest.Ready(t, r) // the consumer is open: the records below come over it
	want, last := e.write("acct", 10, 7)
	waitFor(t, r, "counts", last)
	e.checkCounts(want)
	cons, err := e.js.Consumer(testCtx(t), topo.Stream, e.source(projjs.WithTopology(topo)).ConsumerName(projection.Build{Name: "counts", Version: 1}))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if f := info.Config.FilterSubject; f != topo.SubjectPrefix+".*.*.*" {
		t.Errorf("filter %q, want every bucket", f)
	}
	if info.Delivered.Stream != 70 {
		t.Errorf("the consumer delivered up to message %d, want 70", info.Delivered.Stream)
	}
}

// TestSourceRefusesAnotherLayout: a bucketed source on a stream published
// without buckets (and the reverse) refuses to open rather than filter
// nothing.
func TestSourceRefusesAnotherLayout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.startRelay()
	_, last := e.write("acct", 1, 1)
	// Wait until the stream holds it.
	for deadline := time.Now().Add(10 * time.Second); ; {
		st, err := e.js.Stream(ctx, e.topo().Stream)
		if err == nil && st.CachedInfo().State.Msgs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not publish %s", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	src := e.source(projjs.WithTopology(e.bucketed(4)))
	_, err := src.Open(ctx, projection.SourceRequest{Build: projection.Build{Name: "x", Version: 1}})
	if err == nil || !strings.Contains(err.Error(), "bucket") {
		t.Fatalf("Open on a stream without buckets: %v, want a layout error", err)
	}
}

// TestPausedOwnerOverJetStreamNeverAppliesTwice: an instance stalls in a
// handler, with its partition's consumer open and deliveries in hand,
// while its leases expire; another instance takes the partitions over and
// re-creates their consumers after the committed checkpoints. The stalled
// unit of work, resumed, cannot commit (the lease's epoch fences it), and
// every event is applied exactly once, in order.
func TestPausedOwnerOverJetStreamNeverAppliesTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 4
	topo := e.bucketed(8)
	e.startRelay(relay.WithTopology(topo))
	gate := make(chan struct{})
	entered := make(chan struct{})
	var stall atomic.Bool
	stall.Store(true)
	p := counting("paused", func(p *projection.Projection) {
		p.Partitions = n
		inner := p.Handler
		p.Handler = projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
			// The first call on stream stall-0 (in instance a) stalls,
			// ignoring its context, as a paused process would.
			if ev.Record.StreamID == "stall-0" && stall.CompareAndSwap(true, false) {
				close(entered)
				<-gate
			}
			return inner.Handle(ctx, tx, ev)
		})
	})
	b := projection.Build{Name: "paused", Version: 1}
	a := e.jsInstance("a", e.nats.URL(), topo, p, 600*time.Millisecond)
	e.waitSpread(b, n, "a")
	runnertest.Ready(t, a.runner)
	// The stalled event comes over a's partition consumer: wait until it
	// exists.
	part := projection.PartitionOf("stall-0", n)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, err := e.js.Consumer(testCtx(t), topo.Stream, a.src.PartitionConsumerName(b, part)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer of partition %d was not created", part)
		}
		time.Sleep(20 * time.Millisecond)
	}
	want, _ := e.write("stall", 1, 3)
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler never saw stall-0")
	}
	q := pgmigrate.Quote(e.schema)
	if _, err := e.pool.Exec(testCtx(t), `UPDATE `+q+`.projection_leases SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	bi := e.jsInstance("b", e.nats.URL(), topo, p, 600*time.Millisecond)
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
	e.checkCounts(want)
}

// TestPartitionCountChangeOverJetStream: changing the partition count is a
// new build (a version bump); the new build rebuilds from PostgreSQL,
// switches, runs on its own partitions' consumers, and the old build's
// partition consumers are deleted.
func TestPartitionCountChangeOverJetStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topo := e.bucketed(8)
	e.startRelay(relay.WithTopology(topo))
	v1 := counting("resized", func(p *projection.Projection) { p.Partitions = 2 })
	a := e.jsInstance("a", e.nats.URL(), topo, v1, time.Second)
	want, last := e.write("before", 8, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.runner.WaitFor(ctx, "resized", last); err != nil {
		t.Fatal(err)
	}
	b1 := projection.Build{Name: "resized", Version: 1}
	waitConsumers := func(b projection.Build, parts []int, exist bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; {
			ok := true
			for _, part := range parts {
				_, err := e.js.Consumer(testCtx(t), topo.Stream, a.src.PartitionConsumerName(b, part))
				ok = ok && (err == nil) == exist
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumers of %s partitions %v: want exist=%v within 20s", b, parts, exist)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitConsumers(b1, []int{0, 1}, true)
	a.stop()

	v2 := counting("resized", func(p *projection.Projection) { p.Version, p.Partitions = 2, 4 })
	bi := e.jsInstance("b", e.nats.URL(), topo, v2, time.Second)
	more, last := e.write("after", 8, 3)
	for k, v := range more {
		want[k] = v
	}
	if err := bi.runner.WaitFor(ctx, "resized", last); err != nil {
		t.Fatal(err)
	}
	e.checkCounts(want)
	waitConsumers(projection.Build{Name: "resized", Version: 2}, []int{0, 1, 2, 3}, true)
	waitConsumers(b1, []int{0, 1}, false)
}

// TestPartitionedInstancesKilledAndRestartedOverJetStream: three instances
// share a projection in 16 partitions over a bucketed topology while
// writers append; every few hundred milliseconds one instance, at random,
// is killed (its context ended, its leases left to expire) or started
// again. The read model ends equal to the log: every event applied once,
// in per-stream order.
func TestPartitionedInstancesKilledAndRestartedOverJetStream(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts instances for seconds")
	}
	t.Parallel()
	e := newEnv(t)
	const n = 16
	topo := e.bucketed(32)
	e.startRelay(relay.WithTopology(topo))
	p := counting("chaos", func(p *projection.Projection) { p.Partitions = n })
	ttl := time.Second

	stopWriting, total := e.writers(4, 4, 3)
	names := []string{"a", "b", "c"}
	live := map[string]*jsInstance{}
	for _, name := range names {
		live[name] = e.jsInstance(name, e.nats.URL(), topo, p, ttl)
	}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var kills, starts int
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		time.Sleep(time.Duration(200+rnd.IntN(400)) * time.Millisecond)
		name := names[rnd.IntN(len(names))]
		if in := live[name]; in != nil && len(live) > 1 {
			in.stop()
			in.pool.Close() // its connections back to the server
			delete(live, name)
			kills++
		} else if in == nil {
			live[name] = e.jsInstance(name, e.nats.URL(), topo, p, ttl)
			starts++
		}
	}
	stopWriting()
	res, err := e.events.Append(testCtx(t), "last-0", eventstore.NoStream, eventstore.Event{Type: "Counted"})
	if err != nil {
		t.Fatal(err)
	}
	total.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	for _, in := range live {
		if err := in.runner.WaitFor(ctx, "chaos", res.Position); err != nil {
			t.Fatalf("WaitFor on %s: %v", in.name, err)
		}
	}
	t.Logf("%d events, %d kills, %d restarts", total.Load(), kills, starts)
	rows, err := e.pool.Query(testCtx(t), `SELECT stream_id, n, last_version, bad FROM `+pgmigrate.Quote(e.schema)+`.counts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var sum int64
	for rows.Next() {
		var s string
		var c, last, bad int64
		if err := rows.Scan(&s, &c, &last, &bad); err != nil {
			t.Fatal(err)
		}
		sum += c
		if bad != 0 || last != c {
			t.Errorf("stream %s: %d applied, last version %d, %d out of order", s, c, last, bad)
		}
	}
	if sum != total.Load() {
		t.Errorf("applied %d events, appended %d", sum, total.Load())
	}
}
