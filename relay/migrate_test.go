package relay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// TestMigrateAndReadCheckpointNeedOnlyPostgres migrates and reads a
// relay's checkpoint with a pool alone, before and after a relay runs.
func TestMigrateAndReadCheckpointNeedOnlyPostgres(t *testing.T) {
	t.Parallel()
	pool, schema := testenv.Postgres(t)
	ctx := testCtx(t)
	if _, err := relay.ReadCheckpoint(ctx, pool, relay.WithSchema(schema)); err == nil || !strings.Contains(err.Error(), "Migrate") {
		t.Fatalf("ReadCheckpoint before Migrate: %v, want an error saying to run Migrate", err)
	}
	for range 2 { // idempotent
		if err := relay.Migrate(ctx, pool, schema); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := relay.ReadCheckpoint(ctx, pool, relay.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if cp.Name != relay.DefaultName || !cp.Position.IsZero() || !cp.At.IsZero() || cp.PublishedTotal != 0 {
		t.Fatalf("checkpoint of a relay that never ran: %+v", cp)
	}

	if err := relay.Migrate(ctx, pool, "Bad-Schema"); err == nil || !strings.Contains(err.Error(), "Bad-Schema") {
		t.Fatalf("Migrate with a bad schema: %v", err)
	}
	if err := relay.Migrate(ctx, nil, schema); err == nil {
		t.Fatal("Migrate with a nil pool: no error")
	}
	if _, err := relay.ReadCheckpoint(ctx, pool, relay.WithSchema("Bad-Schema")); err == nil {
		t.Fatal("ReadCheckpoint with a bad schema: no error")
	}
}

func TestReadCheckpointMatchesStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	if err := e.appendEvents(ctx, 50, 0); err != nil {
		t.Fatal(err)
	}
	r := e.relay(e.nc, relay.WithName("second"))
	run := start(t, r)
	e.waitCount(ctx, e.topo().Stream, 50)
	run.stop(t)
	st, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := relay.ReadCheckpoint(ctx, e.pool, relay.WithSchema(e.schema), relay.WithName("second"), relay.WithWindow(3))
	if err != nil {
		t.Fatal(err)
	}
	if cp.Name != "second" || cp.Position != st.Checkpoint || cp.PublishedTotal != 50 || !cp.At.Equal(st.CheckpointAt) || cp.Position.IsZero() {
		t.Fatalf("ReadCheckpoint %+v, Status %+v", cp, st)
	}
	if other, err := relay.ReadCheckpoint(ctx, e.pool, relay.WithSchema(e.schema)); err != nil || !other.Position.IsZero() {
		t.Fatalf("checkpoint of the default relay, which never ran: %+v, %v", other, err)
	}
}

func TestTopologyKeepsTheOtherFields(t *testing.T) {
	t.Parallel()
	base := relay.StreamConfig{Topology: wire.Topology{Stream: "BANK", SubjectPrefix: "bank.events"}, MaxAge: time.Hour,
		Duplicates: time.Minute, Replicas: 3, Retention: jetstream.InterestPolicy, Storage: jetstream.MemoryStorage}
	got := relay.ResolveStream(relay.WithStream(base), relay.WithTopology(wire.Topology{Stream: "OTHER", SubjectPrefix: "other.ev"}))
	want := base
	want.Stream, want.SubjectPrefix = "OTHER", "other.ev"
	if got != want {
		t.Fatalf("ResolveStream = %+v, want %+v", got, want)
	}
	def := relay.ResolveStream()
	if def.Stream != wire.DefaultStreamName || def.SubjectPrefix != wire.DefaultSubjectPrefix || def.Replicas != 1 {
		t.Fatalf("ResolveStream() = %+v, want the defaults", def)
	}
	if got := relay.ResolveStream(relay.WithStream(base), relay.WithTopology(wire.Topology{})); got.Stream != "BANK" || got.MaxAge != time.Hour {
		t.Fatalf("an empty topology: %+v", got)
	}
	billing := relay.ResolveStream(relay.WithSchema("billing"))
	if billing.Topology != (wire.Topology{Stream: "CHRONICLE_BILLING", SubjectPrefix: "chronicle_billing.events"}) {
		t.Fatalf("schema billing: %+v", billing.Topology)
	}
}
