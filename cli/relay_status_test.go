package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

type relayStatusJSON struct {
	Name       string  `json:"name"`
	Stream     string  `json:"stream"`
	Checkpoint string  `json:"checkpoint"`
	LagEvents  int64   `json:"lag_events"`
	HeldBack   int64   `json:"held_back"`
	LagSeconds float64 `json:"lag_seconds"`
}

// TestRelayStatusShowsTheRelaysRealStream: relay status shows the stream
// the relay publishes to, as it recorded it, not the CLI's default.
func TestRelayStatusShowsTheRelaysRealStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ns := testenv.NATS(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	last := e.append("account-1", ev("Opened", `{}`))
	e.visible(last.Position)
	stream := strings.ToUpper(testenv.Name("real"))
	r, err := relay.New(e.es, nc, e.pool, relay.WithSchema(e.schema),
		relay.WithTopology(wire.Topology{Stream: stream, SubjectPrefix: "real.events"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay Run: %v", err)
		}
	}()
	app := e.app()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Until the relay leads, the status is unhealthy (exit 3).
		st := jsonValue[relayStatusJSON](t, e.run(app, "relay", "status", "--json").stdout)
		if st.Checkpoint == last.Position.String() {
			if st.Stream != stream {
				t.Fatalf("relay status shows stream %q, the relay publishes to %q", st.Stream, stream)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay did not publish: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRelayStatusCountsHeldBackEvents: events committed but held back from
// readers by an older open transaction are not published yet: relay status
// counts them in its lag, with the age of the oldest.
func TestRelayStatusCountsHeldBackEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t, 30*time.Second)
	holder, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.Background()) }()
	if _, err := holder.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	e.append("account-1", ev("Opened", `{}`), ev("Deposited", `{}`))
	st := jsonValue[relayStatusJSON](t, mustUnhealthy(t, e.run(e.app(), "relay", "status", "--json"), "no relay leads").stdout)
	if st.LagEvents != 2 || st.HeldBack != 2 || st.LagSeconds <= 0 {
		t.Fatalf("relay status while 2 events are held back: %+v; want a lag of 2 events, 2 held back and their age", st)
	}
	out := mustUnhealthy(t, e.run(e.app(), "relay", "status")).stdout
	contains(t, out, "HELD BACK")
}
