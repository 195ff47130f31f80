package aggregate_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/snapshot"
)

func TestCache(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		cachedRepo := newRepo(t, b.events, registry(t), newAccount, aggregate.WithCache(10))
		other := newRepo(t, b.events, registry(t), newAccount)
		seed(t, cachedRepo, "c-1", 3)
		if st := cachedRepo.Stats(); st.CacheHits != 2 {
			t.Fatalf("after create and 2 updates: stats %+v, want 2 cache hits", st)
		}
		// Another writer appends: Load sees it (the cache is only a
		// starting point), and an Update on the stale entry is rerun.
		if _, err := other.Update(ctx, "c-1", func(a *Account) error { return a.Deposit(100) }); err != nil {
			t.Fatal(err)
		}
		a, err := cachedRepo.Load(ctx, "c-1")
		if err != nil || a.Balance != 102 || a.Version() != 4 {
			t.Fatalf("Load = v%d balance %d, %v", a.Version(), a.Balance, err)
		}
		if _, err := other.Update(ctx, "c-1", func(a *Account) error { return a.Deposit(1000) }); err != nil {
			t.Fatal(err)
		}
		runs := 0
		if _, err := cachedRepo.Update(ctx, "c-1", func(a *Account) error { runs++; return a.Withdraw(a.Balance) }); err != nil {
			t.Fatal(err)
		}
		a, err = other.Load(ctx, "c-1")
		if err != nil || a.Balance != 0 || a.Version() != 6 || runs != 2 {
			t.Fatalf("after stale update: v%d balance %d runs %d, %v", a.Version(), a.Balance, runs, err)
		}
		if st := cachedRepo.Stats(); st.CacheStale != 1 || st.Retries != 0 {
			t.Fatalf("stats %+v", st)
		}
		// LoadAt below the cached version does not use the cache.
		a, err = cachedRepo.LoadAt(ctx, "c-1", 2)
		if err != nil || a.Version() != 2 || a.Balance != 1 {
			t.Fatalf("LoadAt 2 = v%d balance %d, %v", a.Version(), a.Balance, err)
		}
	})
}

func TestCacheHotAggregate(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		repo := newRepo(t, b.events, registry(t), newAccount, aggregate.WithCache(2),
			aggregate.WithRetries(1000), aggregate.WithSnapshots(b.snaps, snapshot.Every(10)))
		if _, err := repo.Create(ctx, "hot", func(a *Account) error { return a.Open("ada") }); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					if _, err := repo.Update(ctx, "hot", func(a *Account) error { return a.Deposit(w*100 + i) }); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		a, err := repo.Load(ctx, "hot")
		want := 0
		for w := range 8 {
			for i := range 10 {
				want += w*100 + i
			}
		}
		if err != nil || a.Deposits != 80 || a.Balance != want || a.Version() != 81 {
			t.Fatalf("v%d, %d deposits, balance %d (want %d), %v", a.Version(), a.Deposits, a.Balance, want, err)
		}
	})
}

// A command that rejects a stale cached state, or raises nothing on it,
// reaches no store, so Update must catch up before trusting the outcome.
func TestCacheStaleRejectionOrNoOpCatchesUp(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		counted, procA, procB := twoProcesses(t, b)
		if _, err := procA.Create(ctx, "s-1", func(a *Account) error { _ = a.Open("ada"); return a.Deposit(10) }); err != nil {
			t.Fatal(err)
		}
		// Process B deposits behind A's back.
		if _, err := procB.Update(ctx, "s-1", func(a *Account) error { return a.Deposit(100) }); err != nil {
			t.Fatal(err)
		}

		// A rejection on the stale state (balance 10) must not stand.
		counted.calls()
		res, err := procA.Update(ctx, "s-1", func(a *Account) error { return a.Withdraw(50) })
		if err != nil || res.Version != 4 {
			t.Fatalf("Update on a stale cache = %+v, %v; want version 4 (B's deposit seen)", res, err)
		}
		if reads, appends, _ := counted.calls(); reads != 1 || appends != 1 {
			t.Fatalf("stale rejection: %d reads, %d appends; want 1 and 1", reads, appends)
		}

		// A no-op on the stale state must not stand either.
		if _, err := procB.Update(ctx, "s-1", func(a *Account) error { return a.Deposit(1000) }); err != nil {
			t.Fatal(err)
		}
		res, err = procA.Update(ctx, "s-1", func(a *Account) error {
			if a.Balance < 1000 {
				return nil // nothing to sweep
			}
			return a.Withdraw(1000)
		})
		if err != nil || res.Version != 6 {
			t.Fatalf("no-op Update on a stale cache = %+v, %v; want version 6 (the sweep)", res, err)
		}
		a, err := procB.Load(ctx, "s-1")
		if err != nil || a.Balance != 60 || a.Version() != 6 {
			t.Fatalf("B sees v%d balance %d, %v; want v6 balance 60", a.Version(), a.Balance, err)
		}
		if st := procA.Stats(); st.CacheStale != 2 {
			t.Fatalf("stats %+v, want 2 stale cache entries", st)
		}

		// On a current cached state a rejection costs one read and stands;
		// a no-op likewise.
		counted.calls()
		if _, err := procA.Update(ctx, "s-1", func(a *Account) error { return a.Withdraw(1_000_000) }); !errors.Is(err, errInsufficient) {
			t.Fatalf("rejection on a current state: err = %v", err)
		}
		res, err = procA.Update(ctx, "s-1", func(*Account) error { return nil })
		if err != nil || res.Version != 6 {
			t.Fatalf("no-op on a current state = %+v, %v", res, err)
		}
		if reads, appends, _ := counted.calls(); reads != 2 || appends != 0 {
			t.Fatalf("current rejection and no-op: %d reads, %d appends; want 2 and 0", reads, appends)
		}
	})
}

// Load catches up from the cached state and keeps the caught-up state, so
// the next Load reads only what is new.
func TestCacheLoadCatchesUpAndRefreshes(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		counted, procA, procB := twoProcesses(t, b)
		seed(t, procA, "l-1", 3)
		for range 5 {
			if _, err := procB.Update(ctx, "l-1", func(a *Account) error { return a.Deposit(10) }); err != nil {
				t.Fatal(err)
			}
		}
		counted.calls()
		for i := range 2 {
			a, err := procA.Load(ctx, "l-1")
			if err != nil || a.Version() != 8 || a.Balance != 52 {
				t.Fatalf("Load %d = v%d balance %d, %v; want v8 balance 52", i, a.Version(), a.Balance, err)
			}
		}
		// The first load reads the cached version and the 5 new events;
		// the second only the cached version.
		if reads, _, records := counted.calls(); reads != 2 || records != 6+1 {
			t.Fatalf("2 loads: %d reads, %d records; want 2 and 7", reads, records)
		}
	})
}

// twoProcesses returns two repositories on b's event store, as two
// processes would have: procA caches states and reads through counted,
// procB does neither.
func twoProcesses(t *testing.T, b backend) (counted *countingStore, procA, procB *aggregate.Repository[*Account]) {
	t.Helper()
	counted = &countingStore{EventStore: b.events}
	procA = newRepo(t, counted, registry(t), newAccount, aggregate.WithCache(10))
	procB = newRepo(t, b.events, registry(t), newAccount)
	return counted, procA, procB
}
