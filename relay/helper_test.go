package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// env is one test's services: a migrated Postgres store in a fresh schema,
// an in-process NATS server, and a connection to it.
type env struct {
	t      *testing.T
	pool   *pgxpool.Pool
	schema string
	store  *espg.Store
	nats   *testenv.NATSServer
	url    string // the NATS URL when nats is nil (a cluster)
	nc     *nats.Conn
	js     jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	store, err := espg.New(pool, espg.WithSchema(schema), espg.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	srv := testenv.NATS(t)
	e := &env{t: t, pool: pool, schema: schema, store: store, nats: srv}
	e.nc = e.connect()
	e.js, err = jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// sibling returns an env with its own store in its own schema, on the same
// NATS server.
func (e *env) sibling() *env {
	e.t.Helper()
	pool, schema := testenv.Postgres(e.t)
	store, err := espg.New(pool, espg.WithSchema(schema), espg.WithPollInterval(50*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := store.Migrate(testCtx(e.t)); err != nil {
		e.t.Fatal(err)
	}
	return &env{t: e.t, pool: pool, schema: schema, store: store, nats: e.nats, url: e.url, nc: e.nc, js: e.js}
}

// connect opens a NATS connection that reconnects forever, closed at the
// end of the test.
func (e *env) connect() *nats.Conn {
	e.t.Helper()
	url := e.url
	if e.nats != nil {
		url = e.nats.URL()
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	return nc
}

// relay returns a migrated relay on the env's store with fast test timings.
func (e *env) relay(nc *nats.Conn, opts ...relay.Option) *relay.Relay {
	e.t.Helper()
	base := []relay.Option{
		relay.WithSchema(e.schema),
		relay.WithLogger(testLogger(e.t)),
		relay.WithLockPollInterval(50 * time.Millisecond),
		relay.WithAckTimeout(time.Second),
		relay.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
	}
	r, err := relay.New(e.store, nc, e.pool, append(base, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := r.Migrate(testCtx(e.t)); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// running is a relay's Run in the background.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, r *relay.Relay) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	t.Cleanup(func() { run.stop(t) })
	return run
}

// stop cancels Run and checks that it returns nil promptly.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run returned %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of its context ending")
	}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("RELAY_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

var categories = []string{"account", "order", "ship.ment", "caf\u00e9 cr\u00e8me"}
var types = []string{"Opened", "Changed", "Closed v2"}

// appendEvents appends n events, one per append, to a few streams of a few
// categories and types.
func (e *env) appendEvents(ctx context.Context, n, from int) error {
	for i := from; i < from+n; i++ {
		stream := fmt.Sprintf("%s-%d", categories[i%len(categories)], i%7)
		ev := eventstore.Event{Type: types[i%len(types)], Data: fmt.Appendf(nil, `{"i":%d}`, i),
			Metadata: eventstore.Metadata{"i": fmt.Sprint(i)}}
		if i%5 == 0 {
			ev.Metadata = nil
		}
		if _, err := e.store.Append(ctx, stream, eventstore.Any, ev); err != nil {
			return fmt.Errorf("append %d: %w", i, err)
		}
	}
	return nil
}

// appendBatches appends n events in batches of 10 from several goroutines.
func (e *env) appendBatches(ctx context.Context, n, writers int) error {
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			for b := 0; b < n/writers/10; b++ {
				evs := make([]eventstore.Event, 10)
				for i := range evs {
					evs[i] = eventstore.Event{Type: types[(b+i)%len(types)], Data: []byte(`{}`)}
				}
				stream := fmt.Sprintf("%s-w%d", categories[b%len(categories)], w)
				if _, err := e.store.Append(ctx, stream, eventstore.Any, evs...); err != nil {
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

// streamRecords reads every message of the JetStream stream, in order.
func (e *env) streamRecords(ctx context.Context, name string) ([]eventstore.Record, []string) {
	e.t.Helper()
	s, err := e.js.Stream(ctx, name)
	if err != nil {
		e.t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if info.State.FirstSeq > 1 || info.State.NumDeleted > 0 {
		e.t.Fatalf("stream %s lost messages: %+v", name, info.State)
	}
	var recs []eventstore.Record
	var subjects []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatalf("get message %d: %v", seq, err)
		}
		rec, err := wire.RecordFromMsg(m.Subject, nats.Header(m.Header), m.Data)
		if err != nil {
			e.t.Fatalf("message %d: %v", seq, err)
		}
		recs = append(recs, rec)
		subjects = append(subjects, m.Subject)
	}
	return recs, subjects
}

// waitCount waits until the stream holds n messages.
func (e *env) waitCount(ctx context.Context, name string, n uint64) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got uint64
	for time.Now().Before(deadline) {
		if s, err := e.js.Stream(ctx, name); err == nil {
			if info, err := s.Info(ctx); err == nil {
				got = info.State.Msgs
				if got >= n {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("stream %s holds %d messages after 30s, want %d", name, got, n)
}

// waitPublished waits until the stream's last sequence reaches n: n
// messages were stored in a new stream, even if some have aged out since
// (a stream with a short MaxAge may hold none by the time it is looked at).
func (e *env) waitPublished(ctx context.Context, name string, n uint64) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got uint64
	for time.Now().Before(deadline) {
		if s, err := e.js.Stream(ctx, name); err == nil {
			if info, err := s.Info(ctx); err == nil {
				got = info.State.LastSeq
				if got >= n {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("stream %s stored %d messages after 30s, want %d", name, got, n)
}

// verify checks that the stream holds exactly the store's log, once each,
// in order, on the right subjects, with every field intact.
func (e *env) verify(ctx context.Context, name, prefix string) []eventstore.Record {
	e.t.Helper()
	var want []eventstore.Record
	for rec, err := range e.store.ReadAll(ctx, eventstore.ReadAllOptions{}) {
		if err != nil {
			e.t.Fatal(err)
		}
		want = append(want, rec)
	}
	got, subjects := e.streamRecords(ctx, name)
	if len(got) != len(want) {
		seen := map[string]int{}
		for _, r := range got {
			seen[r.ID.String()]++
		}
		dups := 0
		for _, n := range seen {
			if n > 1 {
				dups++
			}
		}
		e.t.Fatalf("stream %s holds %d messages (%d distinct), the log %d records", name, len(got), len(seen), len(want))
	}
	for i := range want {
		assertRecord(e.t, want[i], got[i])
		if prefix == "" {
			prefix = e.topo().SubjectPrefix
		}
		if s := wire.Subject(prefix, want[i]); subjects[i] != s {
			e.t.Fatalf("message %d on subject %q, want %q", i+1, subjects[i], s)
		}
	}
	return want
}

// topo is where a relay of the env's schema publishes by default.
func (e *env) topo() wire.Topology { return wire.DefaultTopology(e.schema) }

func assertRecord(t *testing.T, want, got eventstore.Record) {
	t.Helper()
	if got.ID != want.ID || got.StreamID != want.StreamID || got.StreamVersion != want.StreamVersion ||
		got.Position != want.Position || got.Type != want.Type || got.SchemaVersion != want.SchemaVersion ||
		string(got.Data) != string(want.Data) || !got.RecordedAt.Equal(want.RecordedAt) || len(got.Metadata) != len(want.Metadata) {
		t.Fatalf("record mismatch:\nwant %+v\ngot  %+v", want, got)
	}
	for k, v := range want.Metadata {
		if got.Metadata[k] != v {
			t.Fatalf("metadata %q: want %q, got %q", k, v, got.Metadata[k])
		}
	}
}

// waitState waits until r reports state, at most 20 seconds.
func waitState(t *testing.T, r *relay.Relay, state relay.State) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := r.Status(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if st.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay %s after 20s, want %s", st.State, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
