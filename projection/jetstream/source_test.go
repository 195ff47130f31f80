package jetstream_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/runnertest"
	"github.com/chronicle-go/chronicle/projection"
	projjs "github.com/chronicle-go/chronicle/projection/jetstream"
	"github.com/chronicle-go/chronicle/relay/wire"
)

func TestEndToEndThroughRelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.startRelay()
	src := e.source()
	r := e.runner(src, []projection.Projection{counting("counts")})
	run(t, r)
	want, last := e.write("acct", 20, 500) // 10,000 events from 20 writers
	waitFor(t, r, "counts", last)
	e.checkCounts(want)
	// They came through JetStream, not the store.
	cons, err := e.js.Consumer(ctx, e.topo().Stream, src.ConsumerName(projection.Build{Name: "counts", Version: 1}))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer < 5000 {
		t.Fatalf("consumer delivered %d messages; the events did not come through JetStream", info.Delivered.Consumer)
	}
}

// noAck is a source whose deliveries are never acked: the process dies
// after its commits and before its acks.
type noAck struct{ projection.Source }

func (s noAck) Open(ctx context.Context, req projection.SourceRequest) (projection.Feed, error) {
	f, err := s.Source.Open(ctx, req)
	if err != nil {
		return nil, err
	}
	out := &wrapFeed{Feed: f, ch: make(chan projection.Delivery)}
	go func() {
		defer close(out.ch)
		for d := range f.Deliveries() {
			d.Acker = droppedAck{}
			out.ch <- d
		}
	}()
	return out, nil
}

type droppedAck struct{}

func (droppedAck) Ack() error              { return nil }
func (droppedAck) Nak(time.Duration) error { return nil }
func (droppedAck) Term(string) error       { return nil }
func (droppedAck) InProgress() error       { return nil }

type wrapFeed struct {
	projection.Feed
	ch chan projection.Delivery
}

func (f *wrapFeed) Deliveries() <-chan projection.Delivery { return f.ch }
func (f *wrapFeed) Close() error {
	err := f.Feed.Close()
	for range f.ch {
	}
	return err
}

func TestDeathAfterCommitBeforeAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.startRelay()
	src := e.source(projjs.WithAckWait(500 * time.Millisecond))
	r1 := e.runner(noAck{src}, []projection.Projection{counting("counts")})
	stop1 := run(t, r1)
	// Live, so the consumer exists and the writes below go through it.
	runnertest.Ready(t, r1)
	want, last := e.write("acct", 4, 100)
	waitFor(t, r1, "counts", last)
	stop1() // dies with every message committed and none acked
	cons, err := e.js.Consumer(ctx, e.topo().Stream, src.ConsumerName(projection.Build{Name: "counts", Version: 1}))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending == 0 && info.NumRedelivered == 0 {
		t.Fatalf("consumer shows no unacked messages: %+v", info)
	}
	// The next process gets every message again and applies none twice.
	r2 := e.runner(src, []projection.Projection{counting("counts")})
	run(t, r2)
	more, last := e.write("more", 2, 50)
	waitFor(t, r2, "counts", last)
	for k, v := range more {
		want[k] = v
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err = cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Every message acked, after more deliveries than messages: the
		// redeliveries came and were acked (and skipped). The consumer
		// starts after what the first runner caught up from the store.
		msgs := info.Delivered.Stream - (info.Config.OptStartSeq - 1)
		if info.NumAckPending == 0 && info.Delivered.Stream == 500 && info.Delivered.Consumer > msgs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redeliveries not acked: %+v", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.checkCounts(want)
}

func TestPoisonThroughJetStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.startRelay()
	sub, err := e.nc.SubscribeSync(projjs.DefaultDeadLetterPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	r := e.runner(e.source(), []projection.Projection{counting("counts", func(p *projection.Projection) { p.MaxAttempts = 2 })},
		projection.WithDeadLetterPublisher(projjs.NewDeadLetterPublisher(e.nc, "")))
	run(t, r)
	if _, err := e.events.Append(ctx, "acct-1", eventstore.NoStream, eventstore.Event{Type: "Counted"}); err != nil {
		t.Fatal(err)
	}
	poison, err := e.events.Append(ctx, "acct-2", eventstore.NoStream, eventstore.Event{Type: "Poison"})
	if err != nil {
		t.Fatal(err)
	}
	last, err := e.events.Append(ctx, "acct-1", eventstore.Exact(1), eventstore.Event{Type: "Counted"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, "counts", last.Position)
	e.checkCounts(map[string]int64{"acct-1": 2})
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var dl projjs.DeadLetterMessage
	if err := json.Unmarshal(msg.Data, &dl); err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "chronicle.deadletters.counts" || dl.StreamID != "acct-2" || dl.Type != "Poison" ||
		dl.Position != poison.Position.String() || dl.Attempts != 2 || dl.Error == "" {
		t.Fatalf("dead-letter message on %s: %+v", msg.Subject, dl)
	}
	dls, err := r.DeadLetters(ctx, "counts")
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %+v, %v", dls, err)
	}
}

func TestStartsAfterCheckpointAndFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.startRelay()
	// History before the projection exists: caught up from the store.
	want, last := e.write("acct", 3, 40)
	if _, err := e.events.Append(ctx, "other-1", eventstore.NoStream, eventstore.Event{Type: "Counted"}); err != nil {
		t.Fatal(err)
	}
	// Wait for the relay to publish that history, so the consumer has
	// something to skip.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := e.js.Stream(ctx, e.topo().Stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs >= 121 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay published %d of 121 events in 10s", info.State.Msgs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	src := e.source()
	var applied atomic.Int64
	p := counting("counts", func(p *projection.Projection) {
		p.Categories = []string{"acct"}
		h := p.Handler
		p.Handler = projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
			applied.Add(1)
			return h.Handle(ctx, tx, ev)
		})
	})
	r := e.runner(src, []projection.Projection{p})
	run(t, r)
	waitFor(t, r, "counts", last)
	more, last := e.write("acct", 3, 60) // appends 60 more to acct-0..2
	waitFor(t, r, "counts", last)
	for k, v := range more {
		want[k] += v
	}
	e.checkCounts(want)
	cons, err := e.js.Consumer(ctx, e.topo().Stream, src.ConsumerName(projection.Build{Name: "counts", Version: 1}))
	if err != nil {
		t.Fatal(err)
	}
	info := cons.CachedInfo()
	if info.Config.FilterSubject != wire.FilterSubject(e.topo().SubjectPrefix, "acct", "") {
		t.Fatalf("filter %q", info.Config.FilterSubject)
	}
	if info.Config.OptStartSeq <= 1 {
		t.Fatalf("consumer starts at %d: it should skip the history caught up from the store", info.Config.OptStartSeq)
	}
	if applied.Load() != 300 {
		t.Fatalf("handler ran %d times, want 300", applied.Load())
	}
}

var _ = nats.Connect

func TestHaltThroughJetStreamResumesAfterDiscard(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	e.startRelay()
	r := e.runner(e.source(projjs.WithAckWait(time.Second)), []projection.Projection{counting("counts", func(p *projection.Projection) {
		p.MaxAttempts, p.OnFailure = 2, projection.Halt
	})})
	run(t, r)
	if _, err := e.events.Append(ctx, "acct-1", eventstore.NoStream, eventstore.Event{Type: "Counted"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.events.Append(ctx, "acct-2", eventstore.NoStream, eventstore.Event{Type: "Poison"}); err != nil {
		t.Fatal(err)
	}
	last, err := e.events.Append(ctx, "acct-1", eventstore.Exact(1), eventstore.Event{Type: "Counted"})
	if err != nil {
		t.Fatal(err)
	}
	var dls []projection.DeadLetter
	deadline := time.Now().Add(20 * time.Second)
	for len(dls) == 0 && time.Now().Before(deadline) {
		dls, _ = r.DeadLetters(ctx, "counts")
		time.Sleep(10 * time.Millisecond)
	}
	if len(dls) != 1 {
		t.Fatal("no dead letter")
	}
	time.Sleep(1500 * time.Millisecond) // past the ack wait: redeliveries must not get past the halt
	e.checkCounts(map[string]int64{"acct-1": 1})
	if err := r.DiscardDeadLetter(ctx, "counts", dls[0].EventID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, "counts", last.Position)
	e.checkCounts(map[string]int64{"acct-1": 2})
}
