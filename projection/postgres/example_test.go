package postgres_test

import (
	"context"
	"encoding/json"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// A Postgres read model: the handler queues its statements in the
// transaction that also stores the checkpoint, and readers query the
// stable view "chronicle"."balances", which points at balances_v1 (and at
// balances_v2 once version 2 has been rebuilt beside it).
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://localhost/app")
	if err != nil {
		log.Fatal(err)
	}
	events, _ := espg.New(pool)
	store, _ := projpg.New(pool)
	if err := store.Migrate(ctx); err != nil { // once, at deploy time
		log.Fatal(err)
	}
	balances := projection.Projection{
		Name:       "balances",
		Version:    1,
		Categories: []string{"account"},
		Tables:     []string{"balances"},
		Setup: func(ctx context.Context, tx projection.Tx) error {
			_, err := projpg.From(tx).Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tx.Table("balances")+
				` (account text PRIMARY KEY, amount bigint NOT NULL)`)
			return err
		},
		Handler: projpg.Handler(func(ctx context.Context, tx *projpg.Tx, ev projection.Event) error {
			var d struct{ Amount int64 }
			if err := json.Unmarshal(ev.Record.Data, &d); err != nil {
				return err
			}
			tx.Queue(`INSERT INTO `+tx.Table("balances")+` AS b VALUES ($1, $2)
				ON CONFLICT (account) DO UPDATE SET amount = b.amount + EXCLUDED.amount`, ev.Record.StreamID, d.Amount)
			return nil
		}),
		OnFailure:   projection.Halt,
		MaxAttempts: 5,
	}
	runner, err := projection.NewRunner(events, store, []projection.Projection{balances},
		projection.WithLogStatus(projpg.LogStatus(events)))
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(runner.Run(ctx))
}
