package jetstream_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
	projjs "github.com/chronicle-go/chronicle/projection/jetstream"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// waitStatus waits until the projection's status satisfies ok, at most d.
func waitStatus(t *testing.T, r *projection.Runner, name string, d time.Duration, ok func(projection.Status) bool) projection.Status {
	t.Helper()
	deadline := time.Now().Add(d)
	var last projection.Status
	for time.Now().Before(deadline) {
		sts, err := r.Status(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			if st.Name == name {
				last = st
				if ok(st) {
					return st
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("projection %s after %s: %+v", name, d, last)
	return last
}

// wipeableNATS is an in-process NATS server with JetStream that a test can
// restart without its store, as a server that lost its disk.
type wipeableNATS struct {
	t    *testing.T
	opts server.Options
	srv  *server.Server
}

func newWipeableNATS(t *testing.T, maxPayload int32) *wipeableNATS {
	t.Helper()
	n := &wipeableNATS{t: t, opts: server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), MaxPayload: maxPayload, NoLog: true, NoSigs: true}}
	n.start()
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { n.srv.Shutdown() })
	return n
}

func (n *wipeableNATS) start() {
	n.t.Helper()
	for attempt := 0; ; attempt++ {
		opts := n.opts
		srv, err := server.NewServer(&opts)
		if err == nil {
			go srv.Start()
			if srv.ReadyForConnections(10 * time.Second) {
				n.srv = srv
				return
			}
			srv.Shutdown()
		}
		if attempt == 50 {
			n.t.Fatalf("start NATS server: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the port may be in TIME_WAIT
	}
}

// restartWiped stops the server, deletes its store and starts it again on
// the same port.
func (n *wipeableNATS) restartWiped() {
	n.t.Helper()
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	if err := os.RemoveAll(n.opts.StoreDir); err != nil {
		n.t.Fatal(err)
	}
	n.start()
}

// logBuffer collects log lines for a test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNATSLosingItsDataIsReportedAndRecovered: when NATS comes back
// without its data (the stream and every consumer gone) while the relay
// recreates the stream at once, the source says so within seconds (a
// warning naming the projection and the stream, and an error the runner
// shows as LastError while it catches up) and the projection goes on from
// its checkpoint. It used to wait up to 30 seconds (nats.go's default pull
// expiry and heartbeat) with no word.
func TestNATSLosingItsDataIsReportedAndRecovered(t *testing.T) {
	t.Parallel()
	srv := newWipeableNATS(t, 0)
	e := newEnvOn(t, srv.srv.ClientURL())
	e.startRelay()
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	r := e.runner(e.source(projjs.WithLogger(log)), []projection.Projection{counting("counts")})
	run(t, r)
	want, last := e.write("acct", 2, 5)
	waitFor(t, r, "counts", last)

	// Keep appending, so that the relay recreates the stream at once and
	// only the projection's consumer is missing.
	// The writer stops on a channel, not by cancelling its appends: with
	// group commit an append whose context ends after it was sent has an
	// unknown outcome and may commit after the call returned (ADR 0013),
	// so the stream's version could not be read once the writer stopped.
	stop := make(chan struct{})
	stopWriting := func() { close(stop) }
	writing := make(chan struct{})
	ctx := testCtx(t)
	go func() {
		defer close(writing)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = e.events.Append(ctx, "acct-9", eventstore.Any, eventstore.Event{Type: "Counted"})
			time.Sleep(20 * time.Millisecond)
		}
	}()
	srv.restartWiped()
	wiped := time.Now()
	for !strings.Contains(logs.String(), "projection=counts") || !strings.Contains(logs.String(), "stream="+e.topo().Stream) {
		if time.Since(wiped) > 6*time.Second {
			t.Errorf("6s after NATS lost its data, the source has not said so; logs:\n%s", logs.String())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopWriting()
	<-writing
	// Every append returned with its outcome known: count what the store
	// holds.
	info, err := e.events.StreamInfo(testCtx(t), "acct-9")
	if err != nil {
		t.Fatal(err)
	}
	want["acct-9"] = info.Version
	// The relay recreated the stream; the projection recreates its
	// consumer from its checkpoint and goes on.
	more, last := e.write("acct", 2, 5)
	for k, v := range more {
		want[k] += v
	}
	waitFor(t, r, "counts", last)
	e.checkCounts(want)
}

// TestSourceRefusesAnotherStoresMessages: a projection whose source reads
// a stream another store's relay publishes to stops with an error naming
// both stores, and applies nothing.
func TestSourceRefusesAnotherStoresMessages(t *testing.T) {
	t.Parallel()
	a := newEnv(t)
	b := newEnvOn(t, a.nats.URL())
	shared := wire.Topology{Stream: "SHARED", SubjectPrefix: "shared.events"}
	b.startRelay(relay.WithTopology(shared))
	b.write("acct", 1, 3)
	r := a.runner(a.source(projjs.WithTopology(shared)), []projection.Projection{counting("counts")})
	run(t, r)
	st := waitStatus(t, r, "counts", 15*time.Second, func(st projection.Status) bool { return st.LastError != "" })
	ida, _ := a.events.StoreID(testCtx(t))
	idb, _ := b.events.StoreID(testCtx(t))
	for _, s := range []string{ida.String(), idb.String(), "SHARED"} {
		if !strings.Contains(st.LastError, s) {
			t.Errorf("LastError %q does not name %s", st.LastError, s)
		}
	}
	a.checkCounts(map[string]int64{})
}

// TestOversizedEventResolvedFromTheStore: an event larger than the NATS
// server's max_payload used to wedge the relay (it retried for ever and
// published nothing after it). It is published without its data, and the
// projection reads it from the event store; the events after it follow.
func TestOversizedEventResolvedFromTheStore(t *testing.T) {
	t.Parallel()
	srv := newWipeableNATS(t, 8<<10)
	e := newEnvOn(t, srv.srv.ClientURL())
	e.startRelay()
	ctx := testCtx(t)
	big := fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 20<<10))
	var seen = make(chan int, 10)
	p := counting("counts")
	inner := p.Handler
	p.Handler = projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
		seen <- len(ev.Record.Data)
		return inner.Handle(ctx, tx, ev)
	})
	r := e.runner(e.source(), []projection.Projection{p})
	run(t, r)
	waitStatus(t, r, "counts", 10*time.Second, func(st projection.Status) bool { return st.State == projection.Running })
	if _, err := e.events.Append(ctx, "acct-1", eventstore.Any, eventstore.Event{Type: "Counted", Data: []byte(big)}); err != nil {
		t.Fatal(err)
	}
	res, err := e.events.Append(ctx, "acct-1", eventstore.Any, eventstore.Event{Type: "Counted", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, "counts", res.Position)
	e.checkCounts(map[string]int64{"acct-1": 2})
	var sizes []int
	for len(seen) > 0 {
		sizes = append(sizes, <-seen)
	}
	if len(sizes) < 2 || sizes[len(sizes)-2] < 20<<10 {
		t.Fatalf("the handler saw data of sizes %v, want the big event whole", sizes)
	}
	st, err := e.js.Stream(ctx, e.topo().Stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := wire.Elided(m.Header); !ok || n < len(big) || len(m.Data) != 0 {
		t.Fatalf("message 1: elided %d %v, body %d bytes; want elided at least %d bytes", n, ok, len(m.Data), len(big))
	}
}
