package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// TestPausedUnitOfWorkIsEndedByTheServer: a runner paused between a
// partition's fenced checkpoint write and its commit (a GC stall, a
// stopped process, a half-open connection) holds the partition's lease
// and checkpoint rows. The unit of work bounds its own idle time by its
// lease, so PostgreSQL ends the session: another runner takes the
// partition over within a few TTLs, a Setup on the build no longer waits,
// the paused runner's commit fails naming the partition, and nothing it
// wrote is applied.
func TestPausedUnitOfWorkIsEndedByTheServer(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	const ttl = time.Second
	b := projection.Build{Name: "idle", Version: 1}
	q := pgmigrate.Quote(e.schema)
	if _, err := e.pool.Exec(ctx, `CREATE TABLE `+q+`.idle_rows (n int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Renew(ctx, b, 2, "paused", ttl); err != nil {
		t.Fatal(err)
	}
	held, err := e.store.Acquire(ctx, b, "paused", ttl, 1)
	if err != nil || len(held) != 1 {
		t.Fatalf("acquire: %v %v", held, err)
	}
	part := held[0].Partition
	u, err := e.store.BeginPartition(ctx, held[0])
	if err != nil {
		t.Fatal(err)
	}
	defer u.Rollback(context.Background())
	if _, err := projpg.From(u.Handlers()).Exec(ctx, `INSERT INTO `+q+`.idle_rows VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := u.SetCheckpoint(ctx, posAt(3), 1); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	// The owner is paused from here on: it neither renews nor commits.
	// Another runner renews and rebalances every third of the TTL, until
	// it holds the paused partition.
	deadline := paused.Add(5 * ttl)
	for taken := false; !taken; {
		if time.Now().After(deadline) {
			t.Fatalf("partition %d not taken over %s after its owner paused in a unit of work", part, time.Since(paused).Round(time.Millisecond))
		}
		if _, err := e.store.Renew(ctx, b, 2, "other", ttl); err != nil {
			t.Fatal(err)
		}
		got, err := e.store.Acquire(ctx, b, "other", ttl, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range got {
			if l.Partition == part {
				taken = l.Epoch > held[0].Epoch
			}
		}
		if !taken {
			time.Sleep(ttl / 3)
		}
	}
	t.Logf("partition %d taken over %s after its owner paused", part, time.Since(paused).Round(time.Millisecond))
	// A unit of work on the whole build (a runner's Setup) no longer waits.
	bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	whole, err := e.store.Begin(bctx, b)
	cancel()
	if err != nil {
		t.Fatalf("begin a unit of work on the whole build after the takeover: %v", err)
	}
	_ = whole.Rollback(ctx)
	// The paused owner resumes: its commit fails, naming the partition.
	err = u.Commit(ctx)
	if err == nil {
		t.Fatal("the paused unit of work committed after its partition was taken over")
	}
	t.Logf("refused: %v", err)
	if !errors.Is(err, projection.ErrLeaseLost) && !strings.Contains(err.Error(), fmt.Sprintf("%s partition %d", b, part)) {
		t.Fatalf("commit of the paused unit of work: %v, want ErrLeaseLost or an error naming %s partition %d", err, b, part)
	}
	// The runner retries it in place (the store, not the event), and the
	// retry's fenced write finds the lease lost.
	if !errors.Is(err, projection.ErrLeaseLost) && !e.store.Transient(err) {
		t.Fatalf("the paused unit of work's commit error is not transient: %v", err)
	}
	var rows int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM `+q+`.idle_rows`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("rows of the paused unit of work applied: %d (%v)", rows, err)
	}
	states, err := e.store.Partitions(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if st := states[part]; !st.Checkpoint.IsZero() || st.Applied != 0 || st.Lease.Owner != "other" {
		t.Fatalf("partition %d after the pause: checkpoint %s, applied %d, owner %q", part, st.Checkpoint, st.Applied, st.Lease.Owner)
	}
	// The new owner applies and commits.
	nu, err := e.store.BeginPartition(ctx, states[part].Lease)
	if err != nil {
		t.Fatal(err)
	}
	if err := nu.SetCheckpoint(ctx, posAt(3), 1); err != nil {
		t.Fatal(err)
	}
	if err := nu.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The pooled connections are back to their own setting.
	var setting, own string
	if err := e.pool.QueryRow(ctx, `SELECT setting, reset_val FROM pg_settings
		WHERE name = 'idle_in_transaction_session_timeout'`).Scan(&setting, &own); err != nil || setting != own {
		t.Fatalf("idle_in_transaction_session_timeout outside a unit of work: %q, the session's own %q (%v)", setting, own, err)
	}
}
