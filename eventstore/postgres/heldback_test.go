package postgres_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

// A follower held back by an open transaction reads again soon, not at its
// next poll; that must hold even when the transaction ends between the
// follower's read (which saw the record held back) and its check for
// records held back (which then sees none). The transaction ends at random
// moments; each round gives the race a few percent chance, so a follower
// that waits for its poll after losing it fails within a few rounds.
func TestFollowHeldBackNeverWaitsForThePoll(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t, espg.WithPollInterval(20*time.Second))
	c, cancel := context.WithTimeout(ctx(t), 60*time.Second)
	defer cancel()
	got := make(chan eventstore.Record, 100)
	go func() {
		for r, err := range s.Follow(c, eventstore.ReadAllOptions{}) {
			if err != nil {
				return
			}
			got <- r
		}
	}()
	waitListening(t, pool, s.Channel())
	for round := range 150 {
		tx, err := pool.Begin(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(c, "SELECT pg_current_xact_id()"); err != nil {
			t.Fatal(err)
		}
		res := mustAppend(t, s, "held-1", eventstore.Any, events(1)...)
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		if err := tx.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r.Position != res.Position {
				t.Fatalf("round %d: got %s, want %s", round, r.Position, res.Position)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("round %d: the record held back by a transaction that ended was not read within 2s; the follower waits for its 20s poll", round)
		}
	}
}
