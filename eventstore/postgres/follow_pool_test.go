package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
)

// As many followers as the pool has connections must all keep reading: a
// follower that holds one connection to listen and needs a second one to
// read would wait for the others forever.
func TestFollowersAsManyAsPoolConnections(t *testing.T) {
	t.Parallel()
	_, schema := testenv.Postgres(t)
	cfg, err := pgxpool.ParseConfig(testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := espg.New(pool, espg.WithSchema(schema), espg.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx(t)); err != nil {
		t.Fatal(err)
	}
	const followers = 2
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make([]int, followers)
	var wg sync.WaitGroup
	for i := range followers {
		wg.Go(func() {
			for _, err := range s.Follow(fctx, eventstore.ReadAllOptions{Limit: 3}) {
				if err != nil {
					return
				}
				got[i]++
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // let every follower listen
	// The appends share the pool too; give them a pool of their own.
	wpool, _ := testenv.Postgres(t)
	w, err := espg.New(wpool, espg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, w, "a-1", eventstore.NoStream, events(3)...)
	wg.Wait()
	for i, n := range got {
		if n != 3 {
			t.Errorf("follower %d read %d records, want 3 (err: %v)", i, n, fctx.Err())
		}
	}
}
