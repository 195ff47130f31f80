package relay_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// TestOversizedEventDoesNotWedgeTheRelay: an event larger than the NATS
// server's max_payload used to stop the relay for good (it retried for ever
// and published nothing after it). It is published without its data, and
// the events after it follow.
func TestOversizedEventDoesNotWedgeTheRelay(t *testing.T) {
	t.Parallel()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), MaxPayload: 4 << 10, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(srv.Shutdown)
	e := newEnv(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.nc = nc
	if e.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	big := fmt.Sprintf(`{"pad": %q}`, strings.Repeat("x", 10<<10))
	if _, err := e.store.Append(ctx, "doc-1", eventstore.Any, eventstore.Event{Type: "Big", Data: []byte(big)}); err != nil {
		t.Fatal(err)
	}
	if err := e.appendEvents(ctx, 10, 0); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	r := e.relay(nc, relay.WithMaxEventSize(1<<20), relay.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	start(t, r)
	e.waitCount(ctx, e.topo().Stream, 11)
	s, err := e.js.Stream(ctx, e.topo().Stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := wire.Elided(m.Header); !ok || n != len(big) || len(m.Data) != 0 {
		t.Fatalf("message 1: elided %d %v, body %d bytes; want the %d bytes of data elided", n, ok, len(m.Data), len(big))
	}
	rec, err := wire.RecordFromMsg(m.Subject, m.Header, m.Data)
	if err != nil || rec.StreamID != "doc-1" || rec.StreamVersion != 1 || rec.Type != "Big" {
		t.Fatalf("message 1: %+v, %v", rec, err)
	}
	if st, err := r.Status(ctx); err != nil || st.Elided != 1 {
		t.Fatalf("Status: %+v, %v; want one elided", st, err)
	}
	// It warned at the start that the store accepts larger events than
	// the server, and named the event it published without its data.
	for _, want := range []string{"max_event_size=1048576 max_payload=4096", "event_stream=doc-1 version=1 type=Big"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs do not say %q:\n%s", want, logs.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
