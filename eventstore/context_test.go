package eventstore_test

import (
	"context"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/google/uuid"
)

func TestContextMetadata(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if md := eventstore.MetadataFrom(ctx); md != nil {
		t.Fatalf("empty context: %v", md)
	}
	extra := eventstore.Metadata{"user": "ada", "tenant": "t1"}
	ctx = eventstore.WithMetadata(ctx, extra)
	extra["user"] = "changed"
	ctx = eventstore.WithCorrelationID(ctx, "corr")
	child := eventstore.WithCausationID(ctx, "cause")
	child = eventstore.WithMetadata(child, eventstore.Metadata{"tenant": "t2"})

	md := eventstore.MetadataFrom(child)
	want := eventstore.Metadata{"user": "ada", "tenant": "t2", "correlation_id": "corr", "causation_id": "cause"}
	if len(md) != len(want) {
		t.Fatalf("metadata = %v, want %v", md, want)
	}
	for k, v := range want {
		if md[k] != v {
			t.Fatalf("metadata[%q] = %q, want %q (all: %v)", k, md[k], v, md)
		}
	}
	md["user"] = "mutated"
	if eventstore.MetadataFrom(child)["user"] != "ada" {
		t.Fatal("MetadataFrom did not return a copy")
	}
	if p := eventstore.MetadataFrom(ctx); p.CausationID() != "" || p["tenant"] != "t1" {
		t.Fatalf("parent context changed by child: %v", p)
	}
}

func TestCausedBy(t *testing.T) {
	t.Parallel()
	first := eventstore.Record{ID: uuid.New()}
	ctx := eventstore.CausedBy(eventstore.WithMetadata(context.Background(), eventstore.Metadata{"user": "u"}), first)
	md := eventstore.MetadataFrom(ctx)
	if md.CausationID() != first.ID.String() || md.CorrelationID() != first.ID.String() || md["user"] != "u" {
		t.Fatalf("caused by a first event: %v", md)
	}
	second := eventstore.Record{ID: uuid.New(), Metadata: eventstore.Metadata{eventstore.CorrelationIDKey: "c0"}}
	md = eventstore.MetadataFrom(eventstore.CausedBy(ctx, second))
	if md.CausationID() != second.ID.String() || md.CorrelationID() != "c0" {
		t.Fatalf("caused by a correlated event: %v", md)
	}
}
