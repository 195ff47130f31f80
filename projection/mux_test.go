package projection_test

import (
	"context"
	"errors"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/projection"
)

func TestMuxRoutesByType(t *testing.T) {
	t.Parallel()
	var deposits, withdrawals int
	mux := projection.NewMux()
	projection.On(mux, func(_ context.Context, _ projection.Tx, e Deposited, _ eventstore.Record) error {
		deposits += e.Amount
		return nil
	})
	projection.On(mux, func(_ context.Context, _ projection.Tx, e Withdrawn, _ eventstore.Record) error {
		if e.Amount < 0 {
			return errors.New("negative")
		}
		withdrawals += e.Amount
		return nil
	})
	ctx := context.Background()
	for _, ev := range []any{Deposited{5}, Withdrawn{2}, "ignored", nil, Deposited{1}} {
		if err := mux.Handle(ctx, nil, projection.Event{Data: ev}); err != nil {
			t.Fatal(err)
		}
	}
	if deposits != 6 || withdrawals != 2 {
		t.Fatalf("deposits %d, withdrawals %d", deposits, withdrawals)
	}
	if err := mux.Handle(ctx, nil, projection.Event{Data: Withdrawn{-1}}); err == nil {
		t.Fatal("handler error lost")
	}
}

func TestDecoderSplitsAndFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	es := memory.New()
	c := newCounter()
	// An upcaster-like decoder: "Pair" becomes two events, "Bad" cannot be
	// decoded.
	dec := projection.DecoderFunc(func(rec eventstore.Record) ([]any, error) {
		switch rec.Type {
		case "Pair":
			return []any{1, 2}, nil
		case "Bad":
			return nil, errors.New("no upcaster path")
		}
		return []any{0}, nil
	})
	var seen []any
	h := projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
		seen = append(seen, ev.Data)
		return c.handler().Handle(ctx, tx, ev)
	})
	r, err := projection.NewRunner(es, projection.NewMemoryStore(), []projection.Projection{{Name: "p", Handler: h, MaxAttempts: 1}},
		projection.WithDecoder(dec), projection.WithBackoff(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, ctx, es, "s-1", "Pair", 1)
	appendN(t, ctx, es, "s-1", "Bad", 1)
	last := appendN(t, ctx, es, "s-1", "One", 1)
	run(t, r)
	if err := r.WaitFor(ctx, "p", last.Position); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 || seen[0] != 1 || seen[1] != 2 || seen[2] != 0 {
		t.Fatalf("handler saw %v", seen)
	}
	dls, err := r.DeadLetters(ctx, "p")
	if err != nil || len(dls) != 1 || dls[0].Type != "Bad" || !contains(dls[0].Error, "no upcaster path") || !contains(dls[0].Error, `stream "s-1" version 2`) {
		t.Fatalf("dead letters %+v, %v", dls, err)
	}
}

func TestMemoryRebuildSwitches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	es := memory.New()
	ps := projection.NewMemoryStore()
	tables := map[string]int{}
	p := func(v int) projection.Projection {
		return projection.Projection{Name: "p", Version: v, Tables: []string{"t"},
			Handler: projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
				tables[tx.Table("t")]++
				return nil
			})}
	}
	appendN(t, ctx, es, "s-1", "E", 10)
	r1, _ := projection.NewRunner(es, ps, []projection.Projection{p(1)})
	if err := r1.Rebuild(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if got := ps.CurrentTable("t"); got != "t_v1" || tables["t_v1"] != 10 {
		t.Fatalf("current table %q, tables %v", got, tables)
	}
	var last projection.Progress
	r2, _ := projection.NewRunner(es, ps, []projection.Projection{p(2)}, projection.WithProgress(func(pr projection.Progress) { last = pr }))
	if err := r2.Rebuild(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if got := ps.CurrentTable("t"); got != "t_v2" || tables["t_v2"] != 10 {
		t.Fatalf("current table %q, tables %v", got, tables)
	}
	if !last.Finished || !last.Rebuild || last.Applied != 10 || last.Done != last.Total || last.Build.Version != 2 {
		t.Fatalf("last progress %+v", last)
	}
	// An explicit rebuild of the same version is a new generation.
	if err := r2.Rebuild(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if got := ps.CurrentTable("t"); got != "t_v2_1" || tables["t_v2_1"] != 10 {
		t.Fatalf("current table %q, tables %v", got, tables)
	}
	// Old code cannot rebuild over newer.
	if err := r1.Rebuild(ctx, "p"); err == nil {
		t.Fatal("rebuild of version 1 over version 2 succeeded")
	}
	st, err := r2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Current.Generation != 1 || st[0].State != projection.Stopped || st[0].Lag != 0 {
		t.Fatalf("status %+v", st[0])
	}
}
