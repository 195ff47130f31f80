package console_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/chronicle-go/chronicle/console"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay"
)

// The overview shows that no relay leads, with the relay's lag (every
// event, none published); once a relay runs, its leader's pid and a lag
// of zero at the last event's position. Without a log reader, no lag.
func TestRelayLeaderAndLag(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, schema, es, ps := newStores(t, true)
	r, err := projection.NewRunner(es, ps, []projection.Projection{{Name: "noop",
		Handler: projection.HandlerFunc(func(context.Context, projection.Tx, projection.Event) error { return nil })}})
	if err != nil {
		t.Fatal(err)
	}
	var last eventstore.AppendResult
	for _, s := range []string{"acct-1", "acct-2", "acct-3"} {
		if last, err = es.Append(ctx, s, eventstore.NoStream, eventstore.Event{Type: "Opened", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	ropts := []relay.Option{relay.WithSchema(schema), relay.WithLockPollInterval(50 * time.Millisecond), relay.WithBackoff(20*time.Millisecond, 200*time.Millisecond)}
	h, err := console.New(r.Admin(), console.WithLog(es), console.WithRelay(pool, ropts...))
	if err != nil {
		t.Fatal(err)
	}
	var o console.Overview
	if code := getJSON(t, h, "/api/overview", &o); code != http.StatusOK || o.Relay == nil || o.Relay.Leader || o.Relay.Lag == nil ||
		o.Relay.Lag.Events != 3 || o.Relay.Lag.Capped || o.Relay.Lag.Checkpoint != "" || o.Relay.Lag.Seconds <= 0 || o.Relay.LagError != "" {
		t.Fatalf("relay before any ran: %d %+v", code, o.Relay)
	}

	// Without a log reader: the leadership, no lag.
	plain, err := console.New(r.Admin(), console.WithRelay(pool, ropts...))
	if err != nil {
		t.Fatal(err)
	}
	if po, err := plain.Overview(ctx); err != nil || po.Relay == nil || po.Relay.Lag != nil || po.Relay.LagError != "" {
		t.Fatalf("relay without a log reader: %+v, %v", po.Relay, err)
	}

	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	rl, err := relay.New(es, nc, pool, ropts...)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("relay Run: %v", err)
		}
	})
	for {
		if o, err = h.Overview(ctx); err != nil {
			t.Fatal(err)
		}
		if o.Relay.Leader && o.Relay.Lag != nil && o.Relay.Lag.Events == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("relay running: %+v, lag %+v", o.Relay, o.Relay.Lag)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if o.Relay.PID == 0 || o.Relay.Lag.Checkpoint != last.Position.String() || o.Relay.Lag.CheckpointAt == nil || o.Relay.Lag.Seconds != 0 {
		t.Fatalf("relay leading, all published: %+v, lag %+v", o.Relay, o.Relay.Lag)
	}
}

// A relay checkpoint after the head of the log (written for another
// store) is shown as an error in place of the lag, which counting after it
// would show as none; the rest of the overview is shown.
func TestRelayCheckpointAhead(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pool, schema, es, ps := newStores(t, true)
	if _, err := es.Append(ctx, "acct-1", eventstore.NoStream, eventstore.Event{Type: "Opened", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema}.Sanitize()+`.relay_checkpoints (name, tx_id, seq) VALUES ($1, 999999999999, 1)`,
		relay.DefaultName); err != nil {
		t.Fatal(err)
	}
	r, err := projection.NewRunner(es, ps, []projection.Projection{{Name: "noop",
		Handler: projection.HandlerFunc(func(context.Context, projection.Tx, projection.Event) error { return nil })}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := console.New(r.Admin(), console.WithLog(es), console.WithRelay(pool, relay.WithSchema(schema)))
	if err != nil {
		t.Fatal(err)
	}
	o, err := h.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o.Relay == nil || o.Relay.Lag != nil || !strings.Contains(o.Relay.LagError, "after the head") || len(o.Projections) != 1 {
		t.Fatalf("relay with a checkpoint ahead of the log: %+v", o.Relay)
	}
}
