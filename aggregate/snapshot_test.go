package aggregate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/snapshot"
)

// seed creates the account id and deposits 1 n-1 times: the stream ends at
// version n with balance n-1.
func seed(t *testing.T, repo *aggregate.Repository[*Account], id string, n int) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := repo.Create(ctx, id, func(a *Account) error { return a.Open("ada") }); err != nil {
		t.Fatal(err)
	}
	for range n - 1 {
		if _, err := repo.Update(ctx, id, func(a *Account) error { return a.Deposit(1) }); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSnapshotsTakenAndUsed(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		log, logs := newLogger()
		repo := newRepo(t, b.events, registry(t), newAccount,
			aggregate.WithSnapshots(b.snaps, snapshot.Every(10)), aggregate.WithLogger(log))
		seed(t, repo, "s-1", 9)
		if _, err := b.snaps.Load(ctx, "s-1"); err == nil {
			t.Fatal("snapshot taken before version 10")
		}
		// One save from 9 to 11 crosses 10.
		if _, err := repo.Update(ctx, "s-1", func(a *Account) error { _ = a.Deposit(1); return a.Deposit(1) }); err != nil {
			t.Fatal(err)
		}
		s, err := b.snaps.Load(ctx, "s-1")
		if err != nil || s.Version != 11 || s.Revision != 1 || s.TakenAt.IsZero() {
			t.Fatalf("snapshot = %+v, %v", s, err)
		}
		if st := repo.Stats(); st.SnapshotsTaken != 1 {
			t.Fatalf("stats = %+v", st)
		}

		// Plant a snapshot whose state cannot come from the events: a load
		// that uses it shows its balance plus the tail.
		if err := b.snaps.Save(ctx, snapshot.Snapshot{StreamID: "s-1", Version: 11, Revision: 1,
			Data: []byte(`{"owner":"ada","balance":1000,"deposits":10}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.Update(ctx, "s-1", func(a *Account) error { return a.Deposit(1) }); err != nil {
			t.Fatal(err)
		}
		a, err := repo.Load(ctx, "s-1")
		if err != nil || a.Balance != 1001 || a.Version() != 12 || a.ID() != "s-1" {
			t.Fatalf("Load = v%d balance %d id %q, %v; want the planted snapshot plus one deposit", a.Version(), a.Balance, a.ID(), err)
		}
		if strings.Contains(logs.String(), "WARN") {
			t.Fatalf("unexpected warnings: %s", logs)
		}
	})
}

func TestUnusableSnapshotsAreIgnored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		snap snapshot.Snapshot
		warn string
	}{
		{"other revision", snapshot.Snapshot{Version: 5, Revision: 7, Data: []byte(`{"balance":1000}`)}, "another revision"},
		{"undecodable", snapshot.Snapshot{Version: 5, Revision: 1, Data: []byte(`{"balance":"lots"}`)}, "cannot decode"},
		{"ahead of stream", snapshot.Snapshot{Version: 50, Revision: 1, Data: []byte(`{"balance":1000}`)}, "ahead of its stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eachBackend(t, func(t *testing.T, b backend) {
				ctx := testCtx(t)
				log, logs := newLogger()
				repo := newRepo(t, b.events, registry(t), newAccount,
					aggregate.WithSnapshots(b.snaps, snapshot.Every(1000)), aggregate.WithLogger(log))
				seed(t, repo, "x-1", 8)
				snap := tc.snap // each backend's subtest runs in parallel
				snap.StreamID = "x-1"
				if err := b.snaps.Save(ctx, snap); err != nil {
					t.Fatal(err)
				}
				a, err := repo.Load(ctx, "x-1")
				if err != nil || a.Balance != 7 || a.Version() != 8 {
					t.Fatalf("Load = v%d balance %d, %v; want a full replay (v8, 7)", a.Version(), a.Balance, err)
				}
				if !strings.Contains(logs.String(), tc.warn) || !strings.Contains(logs.String(), "x-1") {
					t.Fatalf("no warning %q naming the stream in: %s", tc.warn, logs)
				}
				if repo.Stats().SnapshotsIgnored != 1 {
					t.Fatalf("stats = %+v", repo.Stats())
				}
			})
		})
	}
}

// A new revision of the state's shape: old snapshots are ignored, new
// ones are taken at the new revision.
func TestRevisionBump(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		repo := newRepo(t, b.events, registry(t), newAccount, aggregate.WithSnapshots(b.snaps, snapshot.Every(4)))
		seed(t, repo, "r-1", 4)
		newRev := func(string) *Account { return &Account{revision: 2} }
		repo2 := newRepo(t, b.events, registry(t), newRev, aggregate.WithSnapshots(b.snaps, snapshot.Every(4)))
		for range 4 {
			if _, err := repo2.Update(ctx, "r-1", func(a *Account) error { return a.Deposit(1) }); err != nil {
				t.Fatal(err)
			}
		}
		s, err := b.snaps.Load(ctx, "r-1")
		if err != nil || s.Revision != 2 || s.Version != 8 {
			t.Fatalf("snapshot = %+v, %v", s, err)
		}
		if st := repo2.Stats(); st.SnapshotsIgnored != 4 || st.SnapshotsTaken != 1 {
			t.Fatalf("stats = %+v, want the revision-1 snapshot ignored by each of the 4 loads", st)
		}
	})
}

func TestSnapshotFailureDoesNotFailCommand(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		log, logs := newLogger()
		repo := newRepo(t, b.events, registry(t), newAccount, aggregate.WithLogger(log),
			aggregate.WithSnapshots(failingSnapshots{b.snaps}, snapshot.Every(2)))
		seed(t, repo, "f-1", 5)
		a, err := repo.Load(ctx, "f-1")
		if err != nil || a.Version() != 5 {
			t.Fatalf("Load = v%d, %v", a.Version(), err)
		}
		if st := repo.Stats(); st.SnapshotsFailed != 2 || st.SnapshotsTaken != 0 {
			t.Fatalf("stats = %+v", st)
		}
		if !strings.Contains(logs.String(), "disk on fire") {
			t.Fatalf("failure not logged: %s", logs)
		}
	})
}

func TestAsyncSnapshots(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		repo := newRepo(t, b.events, registry(t), newAccount,
			aggregate.WithSnapshots(b.snaps, snapshot.Every(3)), aggregate.WithAsyncSnapshots())
		seed(t, repo, "a-1", 3)
		// The command's context ends right after the save; the background
		// write does not depend on it.
		cctx, cancel := context.WithCancel(ctx)
		if _, err := repo.Update(cctx, "a-1", func(a *Account) error { _ = a.Deposit(1); _ = a.Deposit(1); return a.Deposit(1) }); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := repo.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		s, err := b.snaps.Load(ctx, "a-1")
		if err != nil || s.Version != 6 {
			t.Fatalf("after Flush: snapshot = %+v, %v", s, err)
		}
		if err := repo.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := repo.Close(ctx); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		// After Close, snapshots are written during Save.
		if _, err := repo.Update(ctx, "a-1", func(a *Account) error { _ = a.Deposit(1); _ = a.Deposit(1); return a.Deposit(1) }); err != nil {
			t.Fatal(err)
		}
		if s, err := b.snaps.Load(ctx, "a-1"); err != nil || s.Version != 9 {
			t.Fatalf("after Close: snapshot = %+v, %v", s, err)
		}
	})
}
