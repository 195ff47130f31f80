package relay_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

func TestRelayPublishesEveryRecordOnceInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	if err := e.appendEvents(ctx, 300, 0); err != nil {
		t.Fatal(err)
	}
	r := e.relay(e.nc, relay.WithStream(relay.StreamConfig{Topology: wire.Topology{Stream: "EVENTS", SubjectPrefix: "svc.ev"}}), relay.WithWindow(16))
	start(t, r)
	e.waitCount(ctx, "EVENTS", 300)
	// Live: records appended while the relay runs.
	if err := e.appendEvents(ctx, 100, 300); err != nil {
		t.Fatal(err)
	}
	e.waitCount(ctx, "EVENTS", 400)
	want := e.verify(ctx, "EVENTS", "svc.ev")

	// Consumers can filter by category and type.
	s, err := e.js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ category, typ string }{{"order", ""}, {"", "Closed v2"}, {"ship.ment", "Closed v2"}} {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(wire.FilterSubject("svc.ev", tc.category, tc.typ)))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		var expect uint64
		for _, rec := range want {
			if (tc.category == "" || rec.Category() == tc.category) && (tc.typ == "" || rec.Type == tc.typ) {
				expect++
			}
		}
		if n != expect || expect == 0 {
			t.Errorf("filter %q/%q: %d messages, want %d", tc.category, tc.typ, n, expect)
		}
	}

	// The checkpoint catches up with the last record.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Checkpoint == want[len(want)-1].Position && st.Published == 400 && st.PublishedTotal == 400 {
			if st.State != relay.StateLeading || st.Name != relay.DefaultName || st.Stream != "EVENTS" {
				t.Fatalf("status %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v, want checkpoint %s and 400 published", st, want[len(want)-1].Position)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRelayRestartHalfway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	if err := e.appendBatches(ctx, 3000, 3); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 3; round++ {
		r := e.relay(e.nc, relay.WithWindow(64))
		run := start(t, r)
		e.waitCount(ctx, e.topo().Stream, uint64(500*(round+1)))
		run.stop(t)
		if err := e.appendEvents(ctx, 50, round*50); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.relay(e.nc).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// An ack that times out on a loaded machine is not counted, though its
	// message is stored: the count may fall a little short of 1500.
	if st.State != relay.StateStopped || st.Checkpoint.IsZero() || st.PublishedTotal < 1400 {
		t.Fatalf("status after three halves: %+v", st)
	}
	start(t, e.relay(e.nc))
	e.waitCount(ctx, e.topo().Stream, 3150)
	e.verify(ctx, e.topo().Stream, "")
}

func TestRelayCatchesUpAfterNATSOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	// A backlog, so that NATS goes away with a full window in flight.
	if err := e.appendBatches(ctx, 6000, 3); err != nil {
		t.Fatal(err)
	}
	r := e.relay(e.connect(), relay.WithAckTimeout(500*time.Millisecond))
	start(t, r)
	e.waitCount(ctx, e.topo().Stream, 300)

	// Appends go on while NATS is down, and never wait for it.
	done := make(chan error, 1)
	go func() { done <- e.appendBatches(ctx, 1500, 3) }()
	e.nats.Stop()
	stopped := time.Now()
	if err := e.appendEvents(ctx, 100, 0); err != nil {
		t.Fatalf("append while NATS is down: %v", err)
	}
	if d := time.Since(stopped); d > 5*time.Second {
		t.Fatalf("100 appends took %s while NATS was down", d)
	}
	if err := <-done; err != nil {
		t.Fatalf("append while NATS is down: %v", err)
	}
	if d := time.Since(stopped); d < 1500*time.Millisecond {
		time.Sleep(1500*time.Millisecond - d)
	}
	st, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastError == nil || st.State != relay.StateLeading {
		t.Errorf("status while NATS is down: %+v, want leading with an error", st)
	}
	e.nats.Start()
	// The catch-up and the check read thousands of messages: on a loaded
	// machine they get a deadline of their own, not what the backlog left.
	ctx = testCtx(t)
	e.waitCount(ctx, e.topo().Stream, 7600)
	e.verify(ctx, e.topo().Stream, "")
}

func TestTwoRelaysOneLeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	if err := e.appendBatches(ctx, 1200, 2); err != nil {
		t.Fatal(err)
	}
	r1, r2 := e.relay(e.connect()), e.relay(e.connect())
	run1 := start(t, r1)
	run2 := start(t, r2)
	e.waitCount(ctx, e.topo().Stream, 1200)
	// Whichever leads, the other must have started and be waiting.
	for _, r := range []*relay.Relay{r1, r2} {
		if st, err := r.Status(ctx); err == nil && st.State != relay.StateLeading {
			waitState(t, r, relay.StateWaiting)
		}
	}
	s1, err := r1.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader, follower, stopLeader := r1, r2, run1
	if s2.State == relay.StateLeading {
		leader, follower, stopLeader = r2, r1, run2
		s1, s2 = s2, s1
	}
	if s1.State != relay.StateLeading || s2.State != relay.StateWaiting || s2.Published != 0 {
		t.Fatalf("want one leader and one waiting relay; got %+v and %+v", s1, s2)
	}
	e.verify(ctx, e.topo().Stream, "")

	stopLeader.stop(t)
	if err := e.appendEvents(ctx, 200, 0); err != nil {
		t.Fatal(err)
	}
	e.waitCount(ctx, e.topo().Stream, 1400)
	e.verify(ctx, e.topo().Stream, "")
	st, err := follower.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != relay.StateLeading || st.Published != 200 {
		t.Fatalf("the second relay did not take over: %+v", st)
	}
	if st, _ := leader.Status(ctx); st.State != relay.StateStopped {
		t.Fatalf("stopped leader reports %s", st.State)
	}
}

// TestRelayLeaderConnectionDies kills the leader's PostgreSQL session: the
// waiting relay takes over and the stream stays exact.
func TestRelayLeaderConnectionDies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	if err := e.appendEvents(ctx, 200, 0); err != nil {
		t.Fatal(err)
	}
	r1 := e.relay(e.connect(), relay.WithName("blue"))
	start(t, r1)
	e.waitCount(ctx, e.topo().Stream, 200)
	r2 := e.relay(e.connect(), relay.WithName("blue"))
	start(t, r2)
	waitState(t, r2, relay.StateWaiting)
	// End the session holding the relay's advisory lock: the leader's.
	key := uint64(pgmigrate.LockKey("relay:" + e.schema + ":blue"))
	var killed int
	if err := e.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2 AND objsubid = 1`,
		uint32(key>>32), uint32(key)).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d sessions holding the relay's lock, want 1", killed)
	}
	if err := e.appendEvents(ctx, 300, 200); err != nil {
		t.Fatal(err)
	}
	e.waitCount(ctx, e.topo().Stream, 500)
	e.verify(ctx, e.topo().Stream, "")
}

func TestRelayWithoutMigrate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r, err := relay.New(e.store, e.nc, e.pool, relay.WithSchema(e.schema))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = r.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "Migrate") {
		t.Fatalf("Run without Migrate: %v, want an error saying to run Migrate", err)
	}
	if _, err := r.Status(ctx); err == nil {
		t.Fatal("Status without Migrate: no error")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name string
		opts []relay.Option
		want string
	}{
		{"schema", []relay.Option{relay.WithSchema("Bad-Schema")}, "schema"},
		{"name", []relay.Option{relay.WithName("")}, "relay name"},
		{"window", []relay.Option{relay.WithWindow(0)}, "window"},
		{"prefix", []relay.Option{relay.WithStream(relay.StreamConfig{Topology: wire.Topology{SubjectPrefix: "a.*"}})}, "subject prefix"},
		{"work queue", []relay.Option{relay.WithStream(relay.StreamConfig{Retention: jetstream.WorkQueuePolicy})}, "work-queue"},
	}
	for _, tt := range tests {
		_, err := relay.New(e.store, e.nc, e.pool, tt.opts...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
	if _, err := relay.New(nil, nil, nil); err == nil || !strings.Contains(err.Error(), "nil store") {
		t.Errorf("New(nil...): %v", err)
	}
}

// TestRunTwice checks that a second concurrent Run is refused.
func TestRunTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.relay(e.nc)
	runUntilReady(t, r)
	if err := r.Run(context.Background()); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("second Run: %v, want a refusal", err)
	}
}

// TestRelayFromMemoryStore relays a store other than PostgreSQL: any
// Source works; the checkpoint and the lock still live in PostgreSQL.
func TestRelayFromMemoryStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	mem := memory.New()
	for i := 0; i < 50; i++ {
		if _, err := mem.Append(ctx, fmt.Sprintf("cart-%d", i%4), eventstore.Any,
			eventstore.Event{Type: "ItemAdded", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := relay.New(mem, e.nc, e.pool, relay.WithSchema(e.schema), relay.WithName("memory"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	e.waitCount(ctx, e.topo().Stream, 50)
	got, subjects := e.streamRecords(ctx, e.topo().Stream)
	i := 0
	for want, err := range mem.ReadAll(ctx, eventstore.ReadAllOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		assertRecord(t, want, got[i])
		if subjects[i] != e.topo().SubjectPrefix+".cart.ItemAdded" {
			t.Fatalf("subject %q", subjects[i])
		}
		i++
	}
	if i != 50 || len(got) != 50 {
		t.Fatalf("stream holds %d messages, store %d records", len(got), i)
	}
}

// TestRunEndsWhenNATSConnectionCloses: a closed connection never comes
// back, so Run says so instead of retrying forever.
func TestRunEndsWhenNATSConnectionCloses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	if err := e.appendEvents(ctx, 20, 0); err != nil {
		t.Fatal(err)
	}
	nc := e.connect()
	r := e.relay(nc)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	e.waitCount(ctx, e.topo().Stream, 20)
	nc.Close()
	if err := e.appendEvents(ctx, 5, 20); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "NATS connection") {
			t.Fatalf("Run returned %v, want an error about the closed NATS connection", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its NATS connection closed")
	}
	if err := r.Run(ctx); err == nil {
		t.Fatal("Run on a closed connection: no error")
	}
}
