package jetstream_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/projection/jetstream"
	"github.com/chronicle-go/chronicle/projection/postgres"
	"github.com/chronicle-go/chronicle/relay"
)

// applying records every event it applies by ID, counting repeats.
func applying(name string) projection.Projection {
	return projection.Projection{
		Name:   name,
		Tables: []string{"applied"},
		Setup: func(ctx context.Context, tx projection.Tx) error {
			_, err := postgres.From(tx).Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tx.Table("applied")+` (
				event_id uuid PRIMARY KEY, times bigint NOT NULL)`)
			return err
		},
		Handler: postgres.Handler(func(ctx context.Context, tx *postgres.Tx, ev projection.Event) error {
			tx.Queue(`INSERT INTO `+tx.Table("applied")+` AS a (event_id, times) VALUES ($1, 1)
				ON CONFLICT (event_id) DO UPDATE SET times = a.times + 1`, ev.Record.ID)
			return nil
		}),
	}
}

// streamLeader returns the server leading the stream, or "" while it has
// none or its info cannot be read.
func streamLeader(t *testing.T, e *env, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, name)
	if err != nil || s.CachedInfo().Cluster == nil {
		return ""
	}
	return s.CachedInfo().Cluster.Leader
}

// TestClusterLeaderKilledWhileRelayPublishesAndRunnersConsume: on a
// three-node JetStream cluster with an R3 stream, the node leading the
// stream is killed while writers append, the relay publishes and a runner
// consumes, then restarted. The stream has a new leader within a bounded
// time; every event is applied exactly once, in per-stream order; the
// relay's checkpoint reaches the head; no dead letter.
//
// Before ADR 0021 the relay chained messages with Nats-Expected-Last-Msg-Id
// on R3 streams too, and in most runs nats-server failed a message on every
// replica after the leader change ("last msgid mismatch"), which left the
// stream without a leader for good.
//
// It does not run in parallel with the package's other tests: three
// servers, a relay and a runner under -race are load enough, and elections
// on a starved machine take longer than the bound this test sets.
func TestClusterLeaderKilledWhileRelayPublishesAndRunnersConsume(t *testing.T) {
	cl := testenv.NATSCluster(t)
	e := newEnvOn(t, cl.URL())
	rl := e.startRelay(relay.WithStream(relay.StreamConfig{Replicas: 3}), relay.WithBackoff(50*time.Millisecond, time.Second))
	r := e.runner(e.source(jetstream.WithHeartbeat(time.Second)), []projection.Projection{counting("counts"), applying("applied")},
		projection.WithBackoff(50*time.Millisecond, time.Second))
	run(t, r)

	// Writers append continuously until stopped. They are stopped by a
	// flag, not by cancelling their appends: an append cancelled while it
	// commits may still commit after its caller gave up, and move the head
	// after the test read it.
	ctx := testCtx(t)
	var stop atomic.Bool
	var wg sync.WaitGroup
	const writers = 4
	last := make([]eventstore.Position, writers)
	for w := 0; w < writers; w++ {
		id := fmt.Sprintf("acct-%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				res, err := e.events.Append(ctx, id, eventstore.Any, eventstore.Event{Type: "Counted"}, eventstore.Event{Type: "Counted"})
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("append to %s: %v", id, err)
					}
					return
				}
				last[w] = res.Position
				time.Sleep(20 * time.Millisecond) // at most 400 events a second: the consumers keep up under -race
			}
		}()
	}
	t.Cleanup(func() { stop.Store(true); wg.Wait() }) // when the test fails early
	// Let some events flow through before killing the leader.
	waitStatus(t, r, "counts", 30*time.Second, func(st projection.Status) bool { return (eventstore.Position{}).Before(st.Checkpoint) })

	info, err := e.js.Stream(testCtx(t), e.topo().Stream)
	if err != nil {
		t.Fatal(err)
	}
	si, err := info.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if si.Config.Replicas != 3 || si.Cluster == nil {
		t.Fatalf("stream %s: replicas %d, cluster %+v, want R3 on the cluster", si.Config.Name, si.Config.Replicas, si.Cluster)
	}
	leader := cl.Node(si.Cluster.Leader)
	if leader < 0 {
		t.Fatalf("stream leader %q is not a node of the cluster", si.Cluster.Leader)
	}
	t.Logf("killing node %d (%s), the stream's leader", leader, si.Cluster.Leader)
	cl.Kill(leader)
	killed := time.Now()
	// The stream must have a new leader soon: a leader change must never
	// leave an R3 stream unavailable.
	const electionBound = 15 * time.Second
	for {
		if l := streamLeader(t, e, e.topo().Stream); l != "" && l != si.Cluster.Leader {
			t.Logf("%s leads the stream %s after the kill", l, time.Since(killed).Round(time.Millisecond))
			break
		}
		if time.Since(killed) > electionBound {
			t.Fatalf("the stream has no new leader %s after its leader was killed", electionBound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Until(killed.Add(2 * time.Second))) // keep appending with the node down
	cl.Start(leader)
	cl.WaitReady(30 * time.Second)
	time.Sleep(time.Second) // and a little after it is back
	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	want := map[string]int64{}
	var total int64
	for w := 0; w < writers; w++ {
		id := fmt.Sprintf("acct-%d", w)
		sinfo, err := e.events.StreamInfo(testCtx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = sinfo.Version
		total += sinfo.Version
	}
	var head eventstore.Position // the last position appended in the test's schema
	for _, p := range last {
		if head.Before(p) {
			head = p
		}
	}
	caught := time.Now()
	waitFor(t, r, "counts", head)
	waitFor(t, r, "applied", head)
	t.Logf("%d events; the runner applied the last of them %s after the writers stopped", total, time.Since(caught).Round(time.Millisecond))
	e.checkCounts(want)

	var rows, once int64
	if err := e.pool.QueryRow(testCtx(t), `SELECT count(*), count(*) FILTER (WHERE times = 1) FROM `+
		pgmigrate.Quote(e.schema)+`.applied`).Scan(&rows, &once); err != nil {
		t.Fatal(err)
	}
	if rows != total || once != total {
		t.Errorf("applied %d distinct events (%d exactly once), want %d each exactly once", rows, once, total)
	}
	sts, err := r.Status(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.DeadLetters != 0 || st.LastError != "" {
			t.Errorf("projection %s: %d dead letters, last error %q", st.Name, st.DeadLetters, st.LastError)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		rs, err := rl.Status(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if rs.Checkpoint == head {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay checkpoint %v has not reached the head %v (last error %v)", rs.Checkpoint, head, rs.LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
