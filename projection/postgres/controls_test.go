package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// A handler's transaction has none of the runner's controls: it cannot
// move the checkpoint nor end the transaction, so no event is skipped.
func TestHandlerCannotMoveTheCheckpointNorCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	first, err := e.events.Append(ctx, "acct-1", eventstore.NoStream, eventstore.Event{Type: "Counted"})
	if err != nil {
		t.Fatal(err)
	}
	far := eventstore.Position{TxID: first.Position.TxID + 1_000_000, Seq: first.Position.Seq + 1_000_000}
	var once sync.Once
	p := counting("counts", 1, func(p *projection.Projection) {
		inner := p.Handler
		p.Handler = projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, ev projection.Event) error {
			var err error
			once.Do(func() {
				type controls interface {
					SetCheckpoint(context.Context, eventstore.Position, int) error
					Commit(context.Context) error
				}
				if u, ok := any(projpg.From(tx)).(controls); ok {
					_ = u.SetCheckpoint(ctx, far, 0)
					_ = u.Commit(ctx)
				}
				pg, perr := projpg.From(tx).Pgx(ctx)
				if perr != nil {
					err = perr
					return
				}
				if pg.Commit(ctx) == nil {
					t.Error("a handler committed the runner's transaction")
				}
			})
			if err != nil {
				return err
			}
			return inner.Handle(ctx, tx, ev)
		})
	})
	r := e.runner([]projection.Projection{p})
	run(t, r)
	var last eventstore.AppendResult
	for range 3 {
		if last, err = e.events.Append(ctx, "acct-1", eventstore.Any, eventstore.Event{Type: "Counted"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, r, "counts", last.Position)
	e.checkCounts("counts", map[string]int64{"acct-1": 4})
}
