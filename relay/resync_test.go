package relay_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// sessionCounter is a slog handler that counts the relay's publishing
// sessions (one per "relay: publishing" log line: the first one and one per
// resynchronisation), passing every record on to next when it is not nil.
type sessionCounter struct {
	n    *atomic.Int64
	next slog.Handler
}

func newSessionCounter(t *testing.T) (*slog.Logger, *atomic.Int64) {
	n := new(atomic.Int64)
	var next slog.Handler
	if l := testLogger(t); l != nil {
		next = l.Handler()
	}
	return slog.New(sessionCounter{n: n, next: next}), n
}

func (h sessionCounter) Enabled(context.Context, slog.Level) bool { return true }

func (h sessionCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "relay: publishing" {
		h.n.Add(1)
	}
	if h.next != nil {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h sessionCounter) WithAttrs(as []slog.Attr) slog.Handler {
	if h.next != nil {
		h.next = h.next.WithAttrs(as)
	}
	return h
}

func (h sessionCounter) WithGroup(g string) slog.Handler {
	if h.next != nil {
		h.next = h.next.WithGroup(g)
	}
	return h
}

// logRecords reads the whole event log once it holds want records: the
// gap-safe log may hold fresh appends back while another test's
// transaction is open anywhere on the cluster.
func (e *env) logRecords(ctx context.Context, want int) []eventstore.Record {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var recs []eventstore.Record
		for rec, err := range e.store.ReadAll(ctx, eventstore.ReadAllOptions{}) {
			if err != nil {
				e.t.Fatal(err)
			}
			recs = append(recs, rec)
		}
		if len(recs) >= want || time.Now().After(deadline) {
			if len(recs) != want {
				e.t.Fatalf("the log holds %d records, want %d", len(recs), want)
			}
			return recs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCheckpoint waits until r's stored checkpoint is pos.
func waitCheckpoint(t *testing.T, ctx context.Context, r *relay.Relay, pos eventstore.Position) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Checkpoint == pos {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint %s after 10s, want %s", st.Checkpoint, pos)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setCheckpoint overwrites the default relay's stored checkpoint, moving it
// backwards as a relay that stopped before its batched write would leave
// it; the zero position deletes the row.
func (e *env) setCheckpoint(ctx context.Context, pos eventstore.Position) {
	e.t.Helper()
	table := pgmigrate.Quote(e.schema) + ".relay_checkpoints"
	var err error
	if pos.IsZero() {
		_, err = e.pool.Exec(ctx, `DELETE FROM `+table+` WHERE name = $1`, relay.DefaultName)
	} else {
		_, err = e.pool.Exec(ctx, `INSERT INTO `+table+` (name, tx_id, seq) VALUES ($1, $2::text::numeric, $3::text::numeric)
			ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id, seq = EXCLUDED.seq`,
			relay.DefaultName, strconv.FormatUint(pos.TxID, 10), strconv.FormatUint(pos.Seq, 10))
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// streamContent reads every message still in the stream (gaps allowed),
// with its sequence.
func (e *env) streamContent(ctx context.Context, name string) ([]eventstore.Record, []uint64) {
	e.t.Helper()
	s, err := e.js.Stream(ctx, name)
	if err != nil {
		e.t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var recs []eventstore.Record
	var seqs []uint64
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		rec, err := wire.RecordFromMsg(m.Subject, nats.Header(m.Header), m.Data)
		if err != nil {
			e.t.Fatalf("message %d: %v", seq, err)
		}
		recs = append(recs, rec)
		seqs = append(seqs, seq)
	}
	return recs, seqs
}

// resyncCase damages the JetStream stream and the relay's checkpoint
// between two runs of the relay.
type resyncCase struct {
	name string
	// stream is the stream configuration of the first run, and of the
	// second unless stream2 is set.
	stream, stream2 *relay.StreamConfig
	// between runs after the first batch is published, its checkpoint
	// stored and the relay stopped; old is the log so far.
	between func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record)
	// gap is a pause between publishing the first and the second half of
	// the first batch (to let the first half's de-duplication entries
	// expire).
	gap time.Duration
}

func purge(t *testing.T, e *env, s jetstream.Stream) {
	t.Helper()
	if err := s.Purge(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func deleteLast(t *testing.T, e *env, s jetstream.Stream) {
	t.Helper()
	ctx := testCtx(t)
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, info.State.LastSeq); err != nil {
		t.Fatal(err)
	}
}

func restartNATS(t *testing.T, e *env) {
	t.Helper()
	e.nats.Stop()
	e.nats.Start()
}

// TestRelayResyncWhenStreamLastMessageIsGone covers a stream whose last
// message is gone (purged, deleted, aged out) while the relay's checkpoint
// lags behind what the stream had stored: the relay republishes from its
// checkpoint, JetStream answers for the records still in its duplicate
// window with a duplicate ack (which leaves the stream's last message ID
// where it was), and the relay must still get every new record into the
// stream once, in order, without looping on resynchronisation.
func TestRelayResyncWhenStreamLastMessageIsGone(t *testing.T) {
	t.Parallel()
	const oldN, newN = 200, 100
	cases := []resyncCase{
		{name: "purged/checkpoint current", between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
			purge(t, e, s)
		}},
		{name: "purged/checkpoint lags", between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
			purge(t, e, s)
			e.setCheckpoint(testCtx(t), old[49].Position)
		}},
		{name: "purged/no checkpoint", between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
			purge(t, e, s)
			e.setCheckpoint(testCtx(t), eventstore.Position{})
		}},
		{name: "purged/checkpoint lags/NATS restarted", between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
			purge(t, e, s)
			e.setCheckpoint(testCtx(t), old[49].Position)
			restartNATS(t, e)
		}},
		{name: "last deleted/checkpoint current", between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
			deleteLast(t, e, s)
		}},
		{name: "last deleted/checkpoint lags", between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
			deleteLast(t, e, s)
			e.setCheckpoint(testCtx(t), old[149].Position)
		}},
		{name: "last deleted/checkpoint lags/NATS restarted", between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
			deleteLast(t, e, s)
			e.setCheckpoint(testCtx(t), old[149].Position)
			restartNATS(t, e)
		}},
		{name: "last subject purged/checkpoint lags", between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
			last := old[len(old)-1]
			if err := s.Purge(testCtx(t), jetstream.WithPurgeSubject(wire.Subject(e.topo().SubjectPrefix, last))); err != nil {
				t.Fatal(err)
			}
			e.setCheckpoint(testCtx(t), old[99].Position)
		}},
		{name: "stream deleted/checkpoint lags", between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
			if err := e.js.DeleteStream(testCtx(t), e.topo().Stream); err != nil {
				t.Fatal(err)
			}
			e.setCheckpoint(testCtx(t), old[99].Position)
		}},
		{
			// The first half of the old records left the duplicate window
			// before the second half was published: republished from
			// scratch, the first half is stored again, the second half is
			// acknowledged as duplicates, then new records follow.
			name:   "purged/half out of the duplicate window/no checkpoint",
			stream: &relay.StreamConfig{Duplicates: 1500 * time.Millisecond},
			gap:    2500 * time.Millisecond,
			between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
				purge(t, e, s)
				e.setCheckpoint(testCtx(t), eventstore.Position{})
			},
		},
		{
			// Every old message aged out (MaxAge), the checkpoint lags.
			name:    "aged out/checkpoint lags",
			stream:  &relay.StreamConfig{MaxAge: time.Second, Duplicates: time.Second},
			stream2: &relay.StreamConfig{Duplicates: time.Second},
			between: func(t *testing.T, e *env, s jetstream.Stream, old []eventstore.Record) {
				deadline := time.Now().Add(10 * time.Second)
				for {
					info, err := s.Info(testCtx(t))
					if err != nil {
						t.Fatal(err)
					}
					if info.State.Msgs == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("stream still holds %d messages 10s after MaxAge 1s", info.State.Msgs)
					}
					time.Sleep(50 * time.Millisecond)
				}
				e.setCheckpoint(testCtx(t), old[99].Position)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testResync(t, tc, oldN, newN)
		})
	}
}

func testResync(t *testing.T, tc resyncCase, oldN, newN int) {
	testResyncOn(t, newEnv(t), tc, oldN, newN)
}

// testResyncOn is testResync on e's NATS server or cluster.
func testResyncOn(t *testing.T, e *env, tc resyncCase, oldN, newN int) {
	ctx := testCtx(t)
	name := e.topo().Stream
	var cfg1, cfg2 relay.StreamConfig
	if tc.stream != nil {
		cfg1, cfg2 = *tc.stream, *tc.stream
	}
	if tc.stream2 != nil {
		cfg2 = *tc.stream2
	}

	// First run: publish the old records and store the checkpoint.
	r1 := e.relay(e.connect(), relay.WithStream(cfg1), relay.WithWindow(32))
	run1 := start(t, r1)
	if err := e.appendEvents(ctx, oldN/2, 0); err != nil {
		t.Fatal(err)
	}
	// The stream is new: its last sequence counts what was published
	// (with MaxAge 1s, what it still holds may already be nothing).
	e.waitPublished(ctx, name, uint64(oldN/2))
	time.Sleep(tc.gap)
	if err := e.appendEvents(ctx, oldN-oldN/2, oldN/2); err != nil {
		t.Fatal(err)
	}
	old := e.logRecords(ctx, oldN)
	waitCheckpoint(t, ctx, r1, old[len(old)-1].Position)
	run1.stop(t)

	s, err := e.js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	tc.between(t, e, s, old)
	var before uint64 // the stream's last sequence before the second run
	if s, err := e.js.Stream(ctx, name); err == nil {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before = info.State.LastSeq
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatal(err)
	}

	// Second run: new records must all reach the stream, once, in order,
	// soon, with few resynchronisations.
	logger, sessions := newSessionCounter(t)
	// A generous ack timeout: on a loaded machine a timed-out ack would add
	// a resynchronisation this test does not mean to count.
	r2 := e.relay(e.connect(), relay.WithStream(cfg2), relay.WithWindow(32), relay.WithLogger(logger),
		relay.WithAckTimeout(5*time.Second))
	began := time.Now()
	start(t, r2)
	if err := e.appendEvents(ctx, newN, oldN); err != nil {
		t.Fatal(err)
	}
	all := e.logRecords(ctx, oldN+newN)
	fresh := all[len(old):]
	lastOld := old[len(old)-1].Position
	var got []eventstore.Record
	var restored int
	for {
		recs, seqs := e.streamContent(ctx, name)
		got, restored = got[:0], 0
		for i, rec := range recs {
			if seqs[i] <= before {
				continue
			}
			if lastOld.Before(rec.Position) {
				got = append(got, rec)
			} else {
				restored++
			}
		}
		if len(got) >= len(fresh) {
			// Everything the stream holds is in strictly increasing
			// position: consumers may de-duplicate by position.
			for i := 1; i < len(recs); i++ {
				if !recs[i-1].Position.Before(recs[i].Position) {
					t.Fatalf("stream message %d at position %s follows message %d at position %s",
						seqs[i], recs[i].Position, seqs[i-1], recs[i-1].Position)
				}
			}
			break
		}
		if time.Since(began) > 10*time.Second {
			st, _ := r2.Status(ctx)
			t.Fatalf("after 10s the stream holds %d of %d new records (and %d old ones again) after %d publishing sessions; status %+v",
				len(got), len(fresh), restored, sessions.Load(), st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(got) != len(fresh) {
		t.Fatalf("stream holds %d new records, the log %d", len(got), len(fresh))
	}
	for i := range fresh {
		assertRecord(t, fresh[i], got[i])
	}
	// One session, plus at most one resynchronisation per place where the
	// republished records go from duplicates to records the stream stores.
	if n := sessions.Load(); n > 2 {
		t.Errorf("%d publishing sessions (%d resynchronisations), want at most 2", n, n-1)
	}
	t.Logf("%d new records in %s, %d old records stored again, %d publishing sessions",
		len(got), time.Since(began).Round(time.Millisecond), restored, sessions.Load())
	waitCheckpoint(t, ctx, r2, all[len(all)-1].Position)
	if st, err := r2.Status(ctx); err != nil || st.State != relay.StateLeading {
		t.Fatalf("status %+v, %v", st, err)
	}
}
