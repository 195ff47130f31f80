package aggregate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/snapshot"
	"github.com/chronicle-go/chronicle/upcast"
)

func TestCreateLoadSave(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		repo := newRepo(t, b.events, registry(t), newAccount, aggregate.WithCategory("account"))
		if got := repo.StreamID("42"); got != "account-42" {
			t.Fatalf("StreamID = %q", got)
		}
		res, err := repo.Create(ctx, "42", func(a *Account) error {
			if err := a.Open("ada"); err != nil {
				return err
			}
			return a.Deposit(10)
		})
		if err != nil || res.Version != 2 {
			t.Fatalf("Create = %+v, %v", res, err)
		}

		a, err := repo.Load(ctx, "42")
		if err != nil {
			t.Fatal(err)
		}
		if a.ID() != "42" || a.Version() != 2 || a.Owner != "ada" || a.Balance != 10 || len(a.Uncommitted()) != 0 {
			t.Fatalf("Load = id %q v%d %+v", a.ID(), a.Version(), a)
		}
		_ = a.Deposit(5)
		_ = a.Withdraw(3)
		if a.Version() != 2 || len(a.Uncommitted()) != 2 {
			t.Fatalf("before save: v%d, %d uncommitted", a.Version(), len(a.Uncommitted()))
		}
		res, err = repo.Save(ctx, a)
		if err != nil || res.Version != 4 || a.Version() != 4 || len(a.Uncommitted()) != 0 {
			t.Fatalf("Save = %+v, %v; aggregate v%d with %d uncommitted", res, err, a.Version(), len(a.Uncommitted()))
		}
		// Nothing to save: no write, same version.
		if res, err := repo.Save(ctx, a); err != nil || res.Version != 4 {
			t.Fatalf("empty Save = %+v, %v", res, err)
		}
		recs, err := eventstore.Collect(b.events.ReadStream(ctx, "account-42", eventstore.ReadStreamOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, r := range recs {
			types = append(types, fmt.Sprintf("%s/v%d", r.Type, r.SchemaVersion))
		}
		if got := strings.Join(types, " "); got != "Opened/v1 Deposited/v2 Deposited/v2 Withdrawn/v1" {
			t.Fatalf("stored %s", got)
		}
		if strings.ReplaceAll(string(recs[3].Data), " ", "") != `{"amount":3}` {
			t.Fatalf("stored data %s", recs[3].Data)
		}
	})
}

func TestMetadataFromContext(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		repo := newRepo(t, b.events, registry(t), newAccount)
		ctx := eventstore.WithCorrelationID(testCtx(t), "corr-1")
		ctx = eventstore.WithCausationID(ctx, "cmd-7")
		ctx = eventstore.WithMetadata(ctx, eventstore.Metadata{"user": "ada", "tenant": "t1"})
		if _, err := repo.Create(ctx, "m-1", func(a *Account) error { _ = a.Open("x"); return a.Deposit(1) }); err != nil {
			t.Fatal(err)
		}
		recs, err := eventstore.Collect(b.events.ReadStream(ctx, "m-1", eventstore.ReadStreamOptions{}))
		if err != nil || len(recs) != 2 {
			t.Fatalf("read: %d records, %v", len(recs), err)
		}
		for _, r := range recs {
			md := r.Metadata
			if md.CorrelationID() != "corr-1" || md.CausationID() != "cmd-7" || md["user"] != "ada" || md["tenant"] != "t1" {
				t.Fatalf("event %d metadata = %v", r.StreamVersion, md)
			}
		}
	})
}

func TestLoadMissing(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		repo := newRepo(t, b.events, registry(t), newAccount, aggregate.WithCategory("account"),
			aggregate.WithSnapshots(b.snaps, snapshot.Every(10)))
		_, err := repo.Load(testCtx(t), "nope")
		if !errors.Is(err, aggregate.ErrNotFound) || !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Fatalf("Load missing: err = %v", err)
		}
		// One prefix, not three ("aggregate: load ...: aggregate: not
		// found: eventstore: stream not found").
		if got, want := err.Error(), `aggregate: load "account-nope": not found`; got != want {
			t.Fatalf("Load missing: err = %q, want %q", got, want)
		}
		if !errors.Is(aggregate.ErrNotFound, eventstore.ErrStreamNotFound) {
			t.Fatal("ErrNotFound does not match eventstore.ErrStreamNotFound")
		}
		_, err = repo.Update(testCtx(t), "nope", func(*Account) error { t.Error("command ran on a missing aggregate"); return nil })
		if !errors.Is(err, aggregate.ErrNotFound) {
			t.Fatalf("Update missing: err = %v", err)
		}
		_, err = repo.LoadAt(testCtx(t), "nope", 1)
		if !errors.Is(err, aggregate.ErrNotFound) {
			t.Fatalf("LoadAt missing: err = %v", err)
		}
	})
}

func TestCreateExisting(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		repo := newRepo(t, b.events, registry(t), newAccount)
		open := func(a *Account) error { return a.Open("ada") }
		if _, err := repo.Create(ctx, "c-1", open); err != nil {
			t.Fatal(err)
		}
		_, err := repo.Create(ctx, "c-1", open)
		if !errors.Is(err, aggregate.ErrAlreadyExists) || !errors.Is(err, eventstore.ErrConcurrencyConflict) {
			t.Fatalf("second Create: err = %v", err)
		}
		if _, err := repo.Create(ctx, "c-2", func(*Account) error { return nil }); err == nil || !strings.Contains(err.Error(), "raised no events") {
			t.Fatalf("Create raising nothing: err = %v", err)
		}
	})
}

func TestSaveConflict(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		repo := newRepo(t, b.events, registry(t), newAccount)
		if _, err := repo.Create(ctx, "s-1", func(a *Account) error { return a.Open("ada") }); err != nil {
			t.Fatal(err)
		}
		a1, _ := repo.Load(ctx, "s-1")
		a2, _ := repo.Load(ctx, "s-1")
		_ = a1.Deposit(1)
		_ = a2.Deposit(2)
		if _, err := repo.Save(ctx, a1); err != nil {
			t.Fatal(err)
		}
		_, err := repo.Save(ctx, a2)
		var ce *eventstore.ConflictError
		if !errors.Is(err, eventstore.ErrConcurrencyConflict) || !errors.As(err, &ce) || ce.Actual != 2 {
			t.Fatalf("stale Save: err = %v", err)
		}
		if len(a2.Uncommitted()) != 1 {
			t.Fatal("a failed Save cleared the uncommitted events")
		}
		// A new aggregate saved over an existing stream conflicts too.
		fresh := newAccount("s-1")
		aggregate.SetID(fresh, "s-1")
		_ = fresh.Open("eve")
		if _, err := repo.Save(ctx, fresh); !errors.Is(err, eventstore.ErrConcurrencyConflict) {
			t.Fatalf("Save of new aggregate over existing stream: err = %v", err)
		}
		// No ID at all.
		noID := newAccount("")
		_ = noID.Open("x")
		if _, err := repo.Save(ctx, noID); err == nil || !strings.Contains(err.Error(), "no ID") {
			t.Fatalf("Save without ID: err = %v", err)
		}
	})
}

func TestSaveUnregisteredEvent(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		repo := newRepo(t, b.events, registry(t), newAccount)
		_, err := repo.Create(ctx, "u-1", func(a *Account) error {
			_ = a.Open("x")
			aggregate.Raise(a, struct{ Oops int }{})
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), `"u-1"`) || !strings.Contains(err.Error(), "event 1") {
			t.Fatalf("err = %v", err)
		}
		if _, err := repo.Load(ctx, "u-1"); !errors.Is(err, aggregate.ErrNotFound) {
			t.Fatalf("something was written: %v", err)
		}
	})
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		repo := newRepo(t, b.events, registry(t), newAccount)
		if _, err := repo.Create(ctx, "u-1", func(a *Account) error { _ = a.Open("ada"); return a.Deposit(10) }); err != nil {
			t.Fatal(err)
		}
		// A command error is returned as it is, nothing saved.
		_, err := repo.Update(ctx, "u-1", func(a *Account) error { return a.Withdraw(100) })
		if !errors.Is(err, errInsufficient) {
			t.Fatalf("err = %v", err)
		}
		// A concurrent writer between load and save: the command runs
		// again on the new state.
		runs := 0
		res, err := repo.Update(ctx, "u-1", func(a *Account) error {
			runs++
			if runs == 1 {
				if _, err := repo.Update(ctx, "u-1", func(o *Account) error { return o.Deposit(5) }); err != nil {
					return err
				}
			}
			return a.Withdraw(a.Balance) // empties the account as seen
		})
		if err != nil || runs != 2 || res.Version != 4 {
			t.Fatalf("Update = %+v, %v after %d runs", res, err, runs)
		}
		a, _ := repo.Load(ctx, "u-1")
		if a.Balance != 0 {
			t.Fatalf("balance %d: the retry did not see the concurrent deposit", a.Balance)
		}
		if st := repo.Stats(); st.Retries != 1 || st.Conflicts != 1 {
			t.Fatalf("stats = %+v", st)
		}
	})
}

func TestUpdateGivesUp(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		repo := newRepo(t, b.events, registry(t), newAccount, aggregate.WithRetries(2))
		if _, err := repo.Create(ctx, "g-1", func(a *Account) error { return a.Open("ada") }); err != nil {
			t.Fatal(err)
		}
		runs := 0
		_, err := repo.Update(ctx, "g-1", func(a *Account) error {
			runs++
			if _, err := repo.Update(ctx, "g-1", func(o *Account) error { return o.Deposit(1) }); err != nil {
				return err
			}
			return a.Deposit(100)
		})
		if !errors.Is(err, eventstore.ErrConcurrencyConflict) || runs != 3 || !strings.Contains(err.Error(), "gave up after 3 attempts") {
			t.Fatalf("err = %v after %d runs", err, runs)
		}
	})
}

func TestLoadAt(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		repo := newRepo(t, b.events, registry(t), newAccount,
			aggregate.WithSnapshots(b.snaps, snapshot.Every(5)))
		if _, err := repo.Create(ctx, "t-1", func(a *Account) error { return a.Open("ada") }); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 12; i++ {
			if _, err := repo.Update(ctx, "t-1", func(a *Account) error { return a.Deposit(i) }); err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range []int64{1, 3, 5, 7, 10, 13} {
			a, err := repo.LoadAt(ctx, "t-1", v)
			if err != nil {
				t.Fatalf("LoadAt %d: %v", v, err)
			}
			n := int(v - 1)
			if a.Version() != v || a.Balance != n*(n+1)/2 {
				t.Fatalf("LoadAt %d: v%d balance %d, want %d", v, a.Version(), a.Balance, n*(n+1)/2)
			}
		}
		_, err := repo.LoadAt(ctx, "t-1", 14)
		if !errors.Is(err, aggregate.ErrVersionNotFound) || !strings.Contains(err.Error(), "at version 13") {
			t.Fatalf("LoadAt beyond the end: err = %v", err)
		}
		if _, err := repo.LoadAt(ctx, "t-1", 0); err == nil {
			t.Fatal("LoadAt 0 accepted")
		}
	})
}

// TestHotAggregate has 8 goroutines update one aggregate: every command is
// applied exactly once.
func TestHotAggregate(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		repo := newRepo(t, b.events, registry(t), newAccount, aggregate.WithRetries(1000),
			aggregate.WithSnapshots(b.snaps, snapshot.Every(16)))
		if _, err := repo.Create(ctx, "hot", func(a *Account) error { return a.Open("ada") }); err != nil {
			t.Fatal(err)
		}
		const workers, each = 8, 20
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					amount := w*1000 + i + 1
					if _, err := repo.Update(ctx, "hot", func(a *Account) error { return a.Deposit(amount) }); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		a, err := repo.Load(ctx, "hot")
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for w := range workers {
			for i := range each {
				want += w*1000 + i + 1
			}
		}
		if a.Version() != 1+workers*each || a.Deposits != workers*each || a.Balance != want {
			t.Fatalf("v%d, %d deposits, balance %d; want v%d, %d, %d", a.Version(), a.Deposits, a.Balance, 1+workers*each, workers*each, want)
		}
		recs, err := eventstore.Collect(b.events.ReadStream(ctx, "hot", eventstore.ReadStreamOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, r := range recs[1:] {
			if seen[string(r.Data)] {
				t.Fatalf("deposit %s applied twice", r.Data)
			}
			seen[string(r.Data)] = true
		}
		t.Logf("%s: %d commands, %d retries", b.name, workers*each, repo.Stats().Retries)
	})
}

// oldDeposit is a Deposited event as written by code from before v2, when
// the field was called "amt".
func oldDeposit(n int) eventstore.Event {
	return eventstore.Event{Type: "Deposited", SchemaVersion: 1, Data: fmt.Appendf(nil, `{"amt":%d}`, n)}
}

func depositChain(t *testing.T) *upcast.Chain {
	t.Helper()
	c, err := upcast.New(registry(t), upcast.Fields("Deposited", 1, func(m map[string]any) error {
		m["amount"] = m["amt"]
		delete(m, "amt")
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUpcastOnEveryLoadPath stores v1 events before and after a snapshot
// and checks every load path brings them to v2.
func TestUpcastOnEveryLoadPath(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		reg := registry(t)
		// Without a chain, an old event fails with a clear error.
		bare := newRepo(t, b.events, reg, newAccount)
		if _, err := b.events.Append(ctx, "up-1", eventstore.NoStream,
			eventstore.Event{Type: "Opened", Data: []byte(`{"owner":"ada"}`)}, oldDeposit(1), oldDeposit(2)); err != nil {
			t.Fatal(err)
		}
		_, err := bare.Load(ctx, "up-1")
		if err == nil || !strings.Contains(err.Error(), "upcaster") || !strings.Contains(err.Error(), `"up-1"`) {
			t.Fatalf("Load without chain: err = %v", err)
		}

		repo := newRepo(t, b.events, depositChain(t), newAccount,
			aggregate.WithSnapshots(b.snaps, snapshot.Every(5)))
		check := func(what string, a *Account, err error, version int64, balance int) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if a.Version() != version || a.Balance != balance {
				t.Fatalf("%s: v%d balance %d, want v%d balance %d", what, a.Version(), a.Balance, version, balance)
			}
		}
		a, err := repo.Load(ctx, "up-1")
		check("Load full replay", a, err, 3, 3)
		// Update through the chain, crossing version 5: a snapshot is taken.
		_, err = repo.Update(ctx, "up-1", func(a *Account) error { _ = a.Deposit(3); return a.Deposit(4) })
		if err != nil {
			t.Fatal(err)
		}
		if s, err := b.snaps.Load(ctx, "up-1"); err != nil || s.Version != 5 {
			t.Fatalf("snapshot = %+v, %v", s, err)
		}
		// Old events in the tail after the snapshot.
		if _, err := b.events.Append(ctx, "up-1", eventstore.Exact(5), oldDeposit(10), oldDeposit(20)); err != nil {
			t.Fatal(err)
		}
		a, err = repo.Load(ctx, "up-1")
		check("Load snapshot+tail", a, err, 7, 40)
		a, err = repo.LoadAt(ctx, "up-1", 6)
		check("LoadAt snapshot+tail", a, err, 6, 20)
		a, err = repo.LoadAt(ctx, "up-1", 2)
		check("LoadAt before snapshot", a, err, 2, 1)
		_, err = repo.Update(ctx, "up-1", func(a *Account) error { return a.Withdraw(a.Balance) })
		if err != nil {
			t.Fatal(err)
		}
		a, err = repo.Load(ctx, "up-1")
		check("Load after Update", a, err, 8, 0)
	})
}

// countingSnapshots counts snapshot loads.
type countingSnapshots struct {
	snapshot.Store
	loads atomic.Int64
}

func (c *countingSnapshots) Load(ctx context.Context, stream string) (snapshot.Snapshot, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx, stream)
}

// Update costs one read and one append, plus one snapshot load when
// snapshots are on; a cached state saves the read.
func TestUpdateRoundTrips(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t)
		counted := &countingStore{EventStore: b.events}
		snaps := &countingSnapshots{Store: b.snaps}
		tests := []struct {
			name                   string
			opts                   []aggregate.Option
			reads, appends, sloads int64
		}{
			{"plain", nil, 1, 1, 0},
			{"snapshots not due", []aggregate.Option{aggregate.WithSnapshots(snaps, snapshot.Every(1000))}, 1, 1, 1},
			{"cache hit", []aggregate.Option{aggregate.WithCache(10)}, 0, 1, 0},
		}
		for i, tc := range tests {
			repo := newRepo(t, counted, registry(t), newAccount, tc.opts...)
			id := fmt.Sprintf("rt-%d", i)
			seed(t, repo, id, 5)
			counted.calls()
			snaps.loads.Store(0)
			if _, err := repo.Update(ctx, id, func(a *Account) error { return a.Deposit(1) }); err != nil {
				t.Fatal(err)
			}
			reads, appends, _ := counted.calls()
			if reads != tc.reads || appends != tc.appends || snaps.loads.Load() != tc.sloads {
				t.Errorf("%s: %d reads, %d appends, %d snapshot loads; want %d, %d, %d",
					tc.name, reads, appends, snaps.loads.Load(), tc.reads, tc.appends, tc.sloads)
			}
		}
	})
}

// With a chain that splits a stored event in two, a load applies both.
func TestUpcastSplitAppliesEveryEvent(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	chain, err := upcast.New(registry(t), upcast.Split("Deposited", 1,
		[]upcast.Key{{Type: "Deposited", Version: 2}, {Type: "Deposited", Version: 2}},
		func([]byte) ([][]byte, error) { return [][]byte{[]byte(`{"amount":1}`), []byte(`{"amount":2}`)}, nil }))
	if err != nil {
		t.Fatal(err)
	}
	store := memory.New()
	if _, err := store.Append(ctx, "split-1", eventstore.NoStream,
		eventstore.Event{Type: "Opened", SchemaVersion: 1, Data: []byte(`{"owner":"ada"}`)}, oldDeposit(9)); err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t, store, chain, newAccount)
	a, err := repo.Load(ctx, "split-1")
	if err != nil || a.Balance != 3 || a.Deposits != 2 || a.Version() != 2 {
		t.Fatalf("Load = balance %d, %d deposits, v%d, %v; want both halves of the split applied at v2", a.Balance, a.Deposits, a.Version(), err)
	}
}

// A constructor that returns nil is an error naming the aggregate, never a
// panic.
func TestNilFromConstructorIsAnError(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	store := memory.New()
	if _, err := store.Append(ctx, "n-1", eventstore.NoStream, eventstore.Event{Type: "Opened", SchemaVersion: 1, Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t, store, registry(t), func(string) *Account { return nil })
	check := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "constructor returned a nil *aggregate_test.Account") || !strings.Contains(err.Error(), `"n-1"`) {
			t.Errorf("%s: err = %v", what, err)
		}
	}
	_, err := repo.Load(ctx, "n-1")
	check("Load", err)
	_, err = repo.Update(ctx, "n-1", func(*Account) error { return nil })
	check("Update", err)
	_, err = repo.Create(ctx, "n-1", func(*Account) error { return nil })
	check("Create", err)
}
