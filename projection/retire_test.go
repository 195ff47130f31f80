package projection_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/projection"
)

// retiring is a store source that records opens and retirements in order,
// and fails every retirement.
type retiring struct {
	*projection.StoreSource
	mu    sync.Mutex
	calls []string
}

func (s *retiring) Open(ctx context.Context, req projection.SourceRequest) (projection.Feed, error) {
	s.mu.Lock()
	s.calls = append(s.calls, "open "+req.Build.String())
	s.mu.Unlock()
	return s.StoreSource.Open(ctx, req)
}

func (s *retiring) Retire(_ context.Context, b projection.Build) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "retire "+b.String())
	return errors.New("server on fire")
}

func (s *retiring) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func TestOldBuildRetiredAfterTheNewOneIsLiveAndFailureIsHarmless(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	es := memory.New()
	store := projection.NewMemoryStore()
	src := &retiring{StoreSource: projection.NewStoreSource(es)}
	c := newCounter()
	r, err := projection.NewRunner(es, store, []projection.Projection{{Name: "counter", Handler: c.handler()}}, projection.WithSource(src))
	if err != nil {
		t.Fatal(err)
	}
	first := appendN(t, ctx, es, "acct-1", "Deposited", 3)
	run(t, r)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.WaitFor(rctx, "counter", first.Position); err != nil {
		t.Fatal(err)
	}
	if err := r.Rebuild(rctx, "counter"); err != nil {
		t.Fatalf("rebuild with a failing retirement: %v", err)
	}
	waitUntil(t, "the old build to be retired", 5*time.Second, func() bool { return slices.Contains(src.log(), "retire counter@v1") })
	// The old build may be opened again during the rebuild (to keep it live
	// until the switch), never after its retirement.
	got := src.log()
	openNew, retired := slices.Index(got, "open counter@v1_1"), slices.Index(got, "retire counter@v1")
	lastOpenOld := -1
	for i, c := range got {
		if c == "open counter@v1" {
			lastOpenOld = i
		}
	}
	if len(got) < 3 || got[0] != "open counter@v1" || openNew < 0 || openNew > retired || lastOpenOld > retired {
		t.Fatalf("source calls = %q, want the new build opened before the old one is retired, and the old one not opened after", got)
	}
	// The projection goes on after the failed retirement.
	last := appendN(t, ctx, es, "acct-1", "Deposited", 2)
	if err := r.WaitFor(rctx, "counter", last.Position); err != nil {
		t.Fatal(err)
	}
	reg, err := store.Registration(ctx, "counter")
	if err != nil || reg.Current.String() != "counter@v1_1" || reg.Previous.String() != "counter@v1" {
		t.Fatalf("registration = %+v, %v", reg, err)
	}
}
