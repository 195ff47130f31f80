package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/relay"
)

// newClusterEnv is newEnv on a three-node JetStream cluster: e.nats is nil,
// e.nc reconnects to any node.
func newClusterEnv(t *testing.T, cl *testenv.JetStreamCluster) *env {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	store, err := espg.New(pool, espg.WithSchema(schema), espg.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pool: pool, schema: schema, store: store, url: cl.URL()}
	e.nc = e.connect()
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	return e
}

// streamLeader returns the name of the server leading the stream, or ""
// while it has none (or its info cannot be read).
func (e *env) streamLeader(ctx context.Context, name string) (string, uint64) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := e.js.Stream(rctx, name)
	if err != nil {
		return "", 0
	}
	info := s.CachedInfo()
	if info.Cluster == nil {
		return "", info.State.LastSeq
	}
	return info.Cluster.Leader, info.State.LastSeq
}

// stepDown asks the stream's leader to step down, as an operator or a
// rolling upgrade of the servers would.
func (e *env) stepDown(ctx context.Context, name string) error {
	resp, err := e.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+name, nil)
	if err != nil {
		return err
	}
	var r struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return err
	}
	if r.Error != nil {
		return errors.New(r.Error.Description)
	}
	if !r.Success {
		return errors.New("step down: no success")
	}
	return nil
}

// TestRelayOnReplicatedStreamThroughLeaderChanges: the leader of an R3
// stream steps down several times while the log grows and the relay
// publishes with a full window. Every change of leader loses the publishes
// in flight to the old leader while later ones reach the new leader; the
// stream must get a new leader within a few seconds each time, and end up
// holding the log once, in order.
//
// Before ADR 0021 the relay chained messages with Nats-Expected-Last-Msg-Id,
// which nats-server checks on each replica as it applies a message: the
// first message after a lost one failed that check on every replica, each
// replica stopped applying entries, and the stream stayed without a leader.
//
// It does not run in parallel with the package's other tests, some of which
// depend on timing (a one-second MaxAge) that three servers under -race
// would upset.
func TestRelayOnReplicatedStreamThroughLeaderChanges(t *testing.T) {
	cl := testenv.NATSCluster(t)
	e := newClusterEnv(t, cl)
	ctx := testCtx(t)
	name := e.topo().Stream
	r := e.relay(e.nc, relay.WithStream(relay.StreamConfig{Replicas: 3}), relay.WithAckTimeout(2*time.Second))
	start(t, r)
	select {
	case <-r.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("relay not ready after 30s")
	}

	// The writer stops on a flag, not by cancelling its appends: an append
	// cancelled while it commits may still commit after the test read the
	// head.
	var stop atomic.Bool
	var appended atomic.Int64
	written := make(chan error, 1)
	go func() {
		defer close(written)
		// About 250 events a second: enough to keep publishes in flight,
		// few enough to read the stream back message by message.
		for i := 0; !stop.Load(); i += 5 {
			if err := e.appendEvents(ctx, 5, i); err != nil {
				written <- err
				return
			}
			appended.Add(5)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	const changes = 3
	for c := 0; c < changes; c++ {
		// Wait until the relay publishes on the current leader.
		leader, last := "", uint64(0)
		deadline := time.Now().Add(20 * time.Second)
		for {
			var seq uint64
			leader, seq = e.streamLeader(ctx, name)
			if leader != "" && last > 0 && seq > last+10 {
				break
			}
			if leader != "" && last == 0 {
				last = seq
			}
			if time.Now().After(deadline) {
				st, _ := r.Status(ctx)
				t.Fatalf("change %d: the stream has leader %q and last sequence %d (%d before) after 20s; relay %+v",
					c, leader, seq, last, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := e.stepDown(ctx, name); err != nil {
			t.Fatalf("change %d: step down %s: %v", c, leader, err)
		}
		stepped := time.Now()
		for {
			if l, _ := e.streamLeader(ctx, name); l != "" && l != leader {
				t.Logf("change %d: %s took over from %s in %s", c, l, leader, time.Since(stepped).Round(time.Millisecond))
				break
			}
			if time.Since(stepped) > 10*time.Second {
				t.Fatalf("change %d: the stream has no new leader 10s after %s stepped down", c, leader)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stop.Store(true)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	// The log may hold fresh appends back while another test's transaction
	// is open (the gap-safe log): wait until it shows every append, then
	// until the relay's checkpoint reaches the last one.
	all := e.logRecords(ctx, int(appended.Load()))
	waitCheckpoint(t, ctx, r, all[len(all)-1].Position)
	if st, err := r.Status(ctx); err == nil {
		t.Logf("relay: %d records published, last error %v", st.Published, st.LastError)
	}
	e.verify(ctx, name, "")
}

// TestRelayResyncOnReplicatedStream: the cases of
// TestRelayResyncWhenStreamLastMessageIsGone where the relay republishes
// records the stream still knows, on an R3 stream. The stream leader
// answers the republished records with duplicate acknowledgements (before
// it checks their expected last sequence); the first new record then names
// a sequence one too high, is refused, and the relay resynchronises once:
// every new record reaches the stream once, in order, within two
// publishing sessions (ADR 0021).
func TestRelayResyncOnReplicatedStream(t *testing.T) {
	cl := testenv.NATSCluster(t)
	r3 := &relay.StreamConfig{Replicas: 3}
	cases := []resyncCase{
		{name: "purged/checkpoint lags", stream: r3, between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
			purge(t, e, s)
			e.setCheckpoint(testCtx(t), old[49].Position)
		}},
		{name: "last deleted/checkpoint lags", stream: r3, between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
			deleteLast(t, e, s)
			e.setCheckpoint(testCtx(t), old[149].Position)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testResyncOn(t, newClusterEnv(t, cl), tc, 200, 100)
		})
	}
}
