package aggregate_test

import (
	"sync"
	"testing"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/snapshot"
)

func TestCache(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		cachedRepo := aggregate.NewRepository(b.events, registry(t), newAccount, aggregate.WithCache(10))
		other := aggregate.NewRepository(b.events, registry(t), newAccount)
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
		repo := aggregate.NewRepository(b.events, registry(t), newAccount, aggregate.WithCache(2),
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
