package aggregate_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/snapshot"
	snappg "github.com/chronicle-go/chronicle/snapshot/postgres"
)

// useDefaultLogger makes slog.Default() write to a buffer until the test
// ends. slog's default is process-wide: tests that call it must not run in
// parallel (they run before the parallel tests resume).
func useDefaultLogger(t *testing.T) *logBuffer {
	t.Helper()
	log, buf := newLogger()
	old := slog.Default()
	slog.SetDefault(log)
	t.Cleanup(func() { slog.SetDefault(old) })
	return buf
}

// A snapshot that cannot be stored does not fail the command, and with no
// logger given the failure reaches slog.Default(), under the key "err".
// Not parallel: it replaces the process-wide default logger.
func TestFailedSnapshotIsLoggedToTheDefaultLogger(t *testing.T) {
	tests := []struct {
		name  string
		snaps func(t *testing.T) snapshot.Store
		cause string
	}{
		{"failing store", func(*testing.T) snapshot.Store { return failingSnapshots{snapshot.NewMemoryStore()} }, "disk on fire"},
		{"postgres store never migrated", func(t *testing.T) snapshot.Store {
			pool, schema := testenv.Postgres(t)
			s, err := snappg.New(pool, snappg.WithSchema(schema))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, "snapshots"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snaps := tc.snaps(t)
			logs := useDefaultLogger(t)
			repo := newRepo(t, memory.New(), registry(t), newAccount,
				aggregate.WithSnapshots(snaps, snapshot.Every(2)))
			ctx := testCtx(t)
			if _, err := repo.Create(ctx, "logged-1", func(a *Account) error { return a.Open("ada") }); err != nil {
				t.Fatal(err)
			}
			res, err := repo.Update(ctx, "logged-1", func(a *Account) error { return a.Deposit(1) })
			if err != nil || res.Version != 2 {
				t.Fatalf("Update = %+v, %v; want version 2 and no error although the snapshot failed", res, err)
			}
			if st := repo.Stats(); st.SnapshotsFailed != 1 {
				t.Fatalf("stats = %+v, want one failed snapshot", st)
			}
			out := logs.String()
			if !strings.Contains(out, "cannot store snapshot") || !strings.Contains(out, "stream=logged-1") ||
				!strings.Contains(out, "err=") || !strings.Contains(out, tc.cause) {
				t.Fatalf("slog.Default() got %q; want the failed snapshot of logged-1 with err=...%s", out, tc.cause)
			}
		})
	}
}
