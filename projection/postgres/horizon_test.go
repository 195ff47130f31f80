package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// A slow projection catching up must not hold every reader of the log back:
// its units of work are bounded in time, and its checkpoint is written last,
// so no transaction it opens keeps a transaction ID for a whole batch.
func TestSlowCatchUpDoesNotHoldTheLogBack(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	_, last := e.write("hist", 10, 150) // 1,500 events of history

	slow := projection.Projection{
		Name:      "slow",
		Tables:    []string{"slow"},
		BatchSize: 1000,
		Setup: func(ctx context.Context, tx projection.Tx) error {
			_, err := projpg.From(tx).Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tx.Table("slow")+` (stream_id text PRIMARY KEY, n bigint NOT NULL)`)
			return err
		},
		Handler: projpg.Handler(func(ctx context.Context, tx *projpg.Tx, ev projection.Event) error {
			// A write at once (the worst case: the transaction gets its ID
			// at the first event), then 2 ms of work.
			if _, err := tx.Exec(ctx, `INSERT INTO `+tx.Table("slow")+` AS s VALUES ($1, 1)
				ON CONFLICT (stream_id) DO UPDATE SET n = s.n + 1`, ev.Record.StreamID); err != nil {
				return err
			}
			time.Sleep(2 * time.Millisecond)
			return nil
		}),
	}
	r := e.runner([]projection.Projection{slow}, projection.WithCatchUpBatchSize(1000))
	run(t, r)

	// While it catches up (about 3 s), measure how long each append takes
	// to become visible to readers, and how long the event store's status
	// names one of the projection's transactions as the oldest open one.
	var lat []time.Duration
	var held time.Duration
	end := time.Now().Add(2500 * time.Millisecond)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for time.Now().Before(end) {
			st, err := e.events.Status(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			if o := st.Oldest; o != nil && strings.Contains(o.Query, e.schema) && o.Age > held {
				held = o.Age
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	for i := 0; time.Now().Before(end); i++ {
		res, err := e.events.Append(ctx, "probe", eventstore.Any, eventstore.Event{Type: "Probe"})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			h, err := e.events.Head(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !h.Before(res.Position) {
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("append %d not visible after 10s", i)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		time.Sleep(20 * time.Millisecond)
	}
	<-watched
	slices.Sort(lat)
	p90 := lat[len(lat)*9/10]
	t.Logf("%d probes: median %s, p90 %s, max %s; the projection's transaction seen open for %s",
		len(lat), lat[len(lat)/2], p90, lat[len(lat)-1], held)
	if p90 > time.Second {
		t.Errorf("append-to-visible latency p90 = %s while a slow projection catches up, want < 1s", p90)
	}
	if held > time.Second {
		t.Errorf("the event store's status named the projection's transaction as the oldest open one for %s, want < 1s", held)
	}
	waitFor(t, r, "slow", last)
}
