package eventstoretest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/google/uuid"
)

// testExpectedVersionMatrix tries every kind of expected version against a
// missing stream and a stream at version 2.
func testExpectedVersionMatrix(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	const existing = 2
	cases := []struct {
		exists   bool
		expected eventstore.ExpectedVersion
		ok       bool
	}{
		{false, eventstore.Any, true},
		{false, eventstore.NoStream, true},
		{false, eventstore.StreamExists, false},
		{false, eventstore.Exact(0), true},
		{false, eventstore.Exact(1), false},
		{false, eventstore.Exact(2), false},
		{true, eventstore.Any, true},
		{true, eventstore.NoStream, false},
		{true, eventstore.StreamExists, true},
		{true, eventstore.Exact(0), false},
		{true, eventstore.Exact(1), false},
		{true, eventstore.Exact(existing), true},
		{true, eventstore.Exact(existing + 1), false},
		{true, eventstore.Exact(100), false},
	}
	for i, c := range cases {
		stream := fmt.Sprintf("matrix-%d", i)
		var before int64
		if c.exists {
			mustAppend(t, ctx, s, stream, eventstore.NoStream, newEvents("Setup", existing)...)
			before = existing
		}
		name := fmt.Sprintf("stream at %d, expected %s", before, c.expected)
		if !c.exists {
			name = fmt.Sprintf("missing stream, expected %s", c.expected)
		}
		res, err := s.Append(ctx, stream, c.expected, newEvents("Tried", 2)...)
		if !c.ok {
			if err == nil {
				t.Errorf("%s: append succeeded with %+v, want a conflict", name, res)
				continue
			}
			wantConflict(t, err, stream, c.expected, before)
			if !contains(err.Error(), stream) {
				t.Errorf("%s: conflict message %q does not name the stream", name, err)
			}
			wantStreamInfo(t, ctx, s, stream, c.exists, before)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v, want success", name, err)
			continue
		}
		if res.Version != before+2 {
			t.Errorf("%s: Version = %d, want %d", name, res.Version, before+2)
		}
		wantStreamInfo(t, ctx, s, stream, true, before+2)
		if got := versions(readStream(t, ctx, s, stream, eventstore.ReadStreamOptions{})); !slices.Equal(got, seq(1, before+2, 1)) {
			t.Errorf("%s: versions %v, want 1..%d", name, got, before+2)
		}
	}
}

// testConflictWritesNothing checks that a refused append leaves no trace
// in the stream or the log.
func testConflictWritesNothing(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	first := mustAppend(t, ctx, s, "order-1", eventstore.NoStream, newEvents("Placed", 3)...)
	refused := newEvents("Refused", 5)
	_, err := s.Append(ctx, "order-1", eventstore.Exact(1), refused...)
	wantConflict(t, err, "order-1", eventstore.Exact(1), 3)
	_, err = s.Append(ctx, "order-2", eventstore.StreamExists, refused...)
	wantConflict(t, err, "order-2", eventstore.StreamExists, 0)
	wantStreamInfo(t, ctx, s, "order-2", false, 0)

	// The refused IDs were not stored: appending them now works and puts
	// them right after the first append.
	res := mustAppend(t, ctx, s, "order-1", eventstore.Exact(3), refused...)
	if res.Version != 8 {
		t.Errorf("Version = %d, want 8", res.Version)
	}
	all := readAllUpTo(t, ctx, s, res.Position)
	if len(all) != 8 {
		t.Fatalf("ReadAll returned %d records, want 8: refused appends must write nothing", len(all))
	}
	if all[2].Position != first.Position || !slices.Equal(ids(all[3:]), eventIDs(refused)) {
		t.Errorf("log holds %v, want the first append then the refused events appended again", ids(all))
	}
}

// contenders is the number of goroutines racing in the contention tests.
const contenders = 16

func testContentionExact(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	const stream = "race-1"
	mustAppend(t, ctx, s, stream, eventstore.NoStream, newEvents("Setup", 3)...)

	results := make([]error, contenders)
	versions := make([]int64, contenders)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range contenders {
		wg.Go(func() {
			start.Wait()
			res, err := s.Append(ctx, stream, eventstore.Exact(3), newEvents(fmt.Sprintf("Writer%d", i), 2)...)
			results[i], versions[i] = err, res.Version
		})
	}
	start.Done()
	wg.Wait()

	winner := -1
	for i, err := range results {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("writers %d and %d both won with expected version 3", winner, i)
			}
			winner = i
			if versions[i] != 5 {
				t.Errorf("winner's Version = %d, want 5", versions[i])
			}
		}
	}
	if winner < 0 {
		t.Fatalf("no writer won; errors: %v", errors.Join(results...))
	}
	for i, err := range results {
		if i != winner {
			wantConflict(t, err, stream, eventstore.Exact(3), 5)
		}
	}
	recs := readStream(t, ctx, s, stream, eventstore.ReadStreamOptions{})
	if !slices.Equal(versionsOf(recs), seq(1, 5, 1)) {
		t.Fatalf("versions after the race = %v, want 1..5", versionsOf(recs))
	}
	for _, r := range recs[3:] {
		if r.Type != fmt.Sprintf("Writer%d", winner) {
			t.Errorf("v%d has type %s, want the winner's Writer%d", r.StreamVersion, r.Type, winner)
		}
	}
}

func testContentionNoStream(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	const stream = "race-2"
	results := make([]error, contenders)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range contenders {
		wg.Go(func() {
			start.Wait()
			_, results[i] = s.Append(ctx, stream, eventstore.NoStream, newEvents("Created", 1+i%3)...)
		})
	}
	start.Done()
	wg.Wait()
	winner := -1
	for i, err := range results {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("writers %d and %d both created the stream", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no writer created the stream; errors: %v", errors.Join(results...))
	}
	n := int64(1 + winner%3)
	for i, err := range results {
		if i != winner {
			wantConflict(t, err, stream, eventstore.NoStream, n)
		}
	}
	wantStreamInfo(t, ctx, s, stream, true, n)
}

// testContentionAny has many goroutines append to one stream with Any:
// every append lands, and versions stay contiguous.
func testContentionAny(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	const (
		stream  = "race-3"
		writers = 8
		appends = 6
	)
	type appended struct {
		ids []uuid.UUID
		res eventstore.AppendResult
	}
	var (
		mu   sync.Mutex
		done []appended
		errs []error
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for a := range appends {
				events := newEvents(fmt.Sprintf("W%d", w), 1+(w+a)%3)
				res, err := s.Append(ctx, stream, eventstore.Any, events...)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					done = append(done, appended{eventIDs(events), res})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("appends with Any failed: %v", errors.Join(errs...))
	}
	total := 0
	for _, a := range done {
		total += len(a.ids)
	}
	recs := readStream(t, ctx, s, stream, eventstore.ReadStreamOptions{BatchSize: 7})
	if !slices.Equal(versionsOf(recs), seq(1, int64(total), 1)) {
		t.Fatalf("versions = %v, want 1..%d with no holes or duplicates", versionsOf(recs), total)
	}
	byVersion := make(map[int64]eventstore.Record)
	for _, r := range recs {
		byVersion[r.StreamVersion] = r
	}
	// Each append's events are contiguous and end at the version it returned.
	for _, a := range done {
		first := a.res.Version - int64(len(a.ids)) + 1
		for i, id := range a.ids {
			r := byVersion[first+int64(i)]
			if r.ID != id {
				t.Fatalf("append returning version %d: v%d holds %s, want %s", a.res.Version, first+int64(i), r.ID, id)
			}
		}
		if byVersion[a.res.Version].Position != a.res.Position {
			t.Errorf("append returned position %s, its last record is at %s", a.res.Position, byVersion[a.res.Version].Position)
		}
	}
}

func versionsOf(recs []eventstore.Record) []int64 { return versions(recs) }

func testRetrySame(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	mustAppend(t, ctx, s, "retry-1", eventstore.NoStream, newEvents("Before", 2)...)
	events := newEvents("Retried", 3)
	first := mustAppend(t, ctx, s, "retry-1", eventstore.Exact(2), events...)
	again, err := s.Append(ctx, "retry-1", eventstore.Exact(2), events...)
	if err != nil {
		t.Fatalf("retrying the same append: %v, want success", err)
	}
	if again != first {
		t.Errorf("retry returned %+v, want the original result %+v", again, first)
	}
	// A retry of the stream's first append with NoStream.
	created := newEvents("Created", 2)
	c1 := mustAppend(t, ctx, s, "retry-2", eventstore.NoStream, created...)
	c2, err := s.Append(ctx, "retry-2", eventstore.NoStream, created...)
	if err != nil || c2 != c1 {
		t.Errorf("retrying a NoStream append: %+v, %v; want %+v, nil", c2, err, c1)
	}
	// And with StreamExists.
	more := newEvents("More", 1)
	m1 := mustAppend(t, ctx, s, "retry-2", eventstore.StreamExists, more...)
	m2, err := s.Append(ctx, "retry-2", eventstore.StreamExists, more...)
	if err != nil || m2 != m1 {
		t.Errorf("retrying a StreamExists append: %+v, %v; want %+v, nil", m2, err, m1)
	}

	wantStreamInfo(t, ctx, s, "retry-1", true, 5)
	wantStreamInfo(t, ctx, s, "retry-2", true, 3)
	recs := readStream(t, ctx, s, "retry-1", eventstore.ReadStreamOptions{})
	if !slices.Equal(ids(recs[2:]), eventIDs(events)) || len(recs) != 5 {
		t.Errorf("stream holds %d records %v, want the retried events once", len(recs), ids(recs))
	}
	// A marker appended after the retries: once the log shows it, it shows
	// anything the retries might have written.
	marker := mustAppend(t, ctx, s, "marker-1", eventstore.NoStream, newEvent("Marker", 0))
	all := readAllUpTo(t, ctx, s, marker.Position)
	if len(all) != 9 {
		t.Errorf("ReadAll returned %d records, want 9 (no duplicates from retries)", len(all))
	}
	seen := make(map[uuid.UUID]bool)
	for _, r := range all {
		if seen[r.ID] {
			t.Errorf("event %s appears twice in the log", r.ID)
		}
		seen[r.ID] = true
	}
}

// testRetryAfterOthers retries an append after other writers moved the
// stream on: the retry still reports the original result.
func testRetryAfterOthers(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	events := newEvents("Mine", 2)
	first := mustAppend(t, ctx, s, "retry-3", eventstore.NoStream, events...)
	mustAppend(t, ctx, s, "retry-3", eventstore.Exact(2), newEvents("Theirs", 3)...)
	again, err := s.Append(ctx, "retry-3", eventstore.NoStream, events...)
	if err != nil {
		t.Fatalf("retrying after other writers: %v, want success", err)
	}
	if again != first {
		t.Errorf("retry returned %+v, want the original result %+v", again, first)
	}
	wantStreamInfo(t, ctx, s, "retry-3", true, 5)
}

func testRetryAny(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	mustAppend(t, ctx, s, "retry-4", eventstore.Any, newEvents("Before", 1)...)
	events := newEvents("Mine", 2)
	first := mustAppend(t, ctx, s, "retry-4", eventstore.Any, events...)
	mustAppend(t, ctx, s, "retry-4", eventstore.Any, newEvents("After", 1)...)
	again, err := s.Append(ctx, "retry-4", eventstore.Any, events...)
	if err != nil || again != first {
		t.Fatalf("retrying an Any append: %+v, %v; want %+v, nil", again, err, first)
	}
	wantStreamInfo(t, ctx, s, "retry-4", true, 4)
}

// testRetryTail retries only the tail of an earlier append at the version
// it was stored at, which is the same IDs at the same position.
func testRetryTail(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	events := newEvents("Mine", 3)
	mustAppend(t, ctx, s, "retry-5", eventstore.NoStream, events...)
	res, err := s.Append(ctx, "retry-5", eventstore.Exact(1), events[1:]...)
	if err != nil {
		t.Fatalf("retrying events 2..3 at expected version 1: %v, want success", err)
	}
	if res.Version != 3 {
		t.Errorf("Version = %d, want 3", res.Version)
	}
	wantStreamInfo(t, ctx, s, "retry-5", true, 3)
}

func testRetryOtherPosition(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	events := newEvents("Mine", 2)
	mustAppend(t, ctx, s, "retry-6", eventstore.NoStream, events...)
	for _, c := range []struct {
		expected eventstore.ExpectedVersion
		events   []eventstore.Event
	}{
		{eventstore.Exact(2), events},                              // would be versions 3..4
		{eventstore.Exact(1), events},                              // would be versions 2..3
		{eventstore.Exact(0), events[1:]},                          // event 2 at version 1
		{eventstore.Any, []eventstore.Event{events[1], events[0]}}, // out of order
	} {
		_, err := s.Append(ctx, "retry-6", c.expected, c.events...)
		ce := wantConflict(t, err, "retry-6", c.expected, 2)
		if ce.Reason == "" {
			t.Errorf("expected %s: conflict about event IDs has no Reason", c.expected)
		}
	}
	wantStreamInfo(t, ctx, s, "retry-6", true, 2)
}

func testRetryPartlyNew(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	events := newEvents("Mine", 2)
	mustAppend(t, ctx, s, "retry-7", eventstore.NoStream, events...)
	mixed := append(slices.Clone(events), newEvent("New", 3))
	_, err := s.Append(ctx, "retry-7", eventstore.NoStream, mixed...)
	ce := wantConflict(t, err, "retry-7", eventstore.NoStream, 2)
	if ce.Reason == "" {
		t.Error("conflict about event IDs has no Reason")
	}
	// An already stored ID after new ones, on an append whose version
	// check passes.
	mixed = []eventstore.Event{newEvent("New", 4), events[0]}
	_, err = s.Append(ctx, "retry-7", eventstore.Exact(2), mixed...)
	ce = wantConflict(t, err, "retry-7", eventstore.Exact(2), 2)
	if ce.Reason == "" {
		t.Error("conflict about event IDs has no Reason")
	}
	wantStreamInfo(t, ctx, s, "retry-7", true, 2)
}

func testRetryOtherStream(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	events := newEvents("Mine", 2)
	mustAppend(t, ctx, s, "retry-8", eventstore.NoStream, events...)
	for _, expected := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Any, eventstore.Exact(0)} {
		batch := []eventstore.Event{newEvent("New", 1), events[1]}
		_, err := s.Append(ctx, "retry-9", expected, batch...)
		ce := wantConflict(t, err, "retry-9", expected, 0)
		if ce.Reason == "" {
			t.Errorf("expected %s: conflict about an ID stored in another stream has no Reason", expected)
		}
		_, err = s.Append(ctx, "retry-9", expected, events...)
		wantConflict(t, err, "retry-9", expected, 0)
	}
	wantStreamInfo(t, ctx, s, "retry-9", false, 0)
	wantStreamInfo(t, ctx, s, "retry-8", true, 2)
}

// testRetryConcurrent sends the same append from several goroutines at once,
// as a client whose first attempt timed out but still went through: every
// attempt succeeds with the same result and the events are stored once.
func testRetryConcurrent(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	mustAppend(t, ctx, s, "retry-10", eventstore.NoStream, newEvents("Before", 2)...)
	events := newEvents("Mine", 3)
	results := make([]eventstore.AppendResult, contenders/2)
	errs := make([]error, len(results))
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range results {
		wg.Go(func() {
			start.Wait()
			results[i], errs[i] = s.Append(ctx, "retry-10", eventstore.Exact(2), events...)
		})
	}
	start.Done()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent attempts of one append failed: %v", err)
	}
	for i, r := range results {
		if r != results[0] || r.Version != 5 {
			t.Errorf("attempt %d returned %+v, attempt 0 %+v, want the same result at version 5", i, r, results[0])
		}
	}
	recs := readStream(t, ctx, s, "retry-10", eventstore.ReadStreamOptions{})
	if len(recs) != 5 || !slices.Equal(ids(recs[2:]), eventIDs(events)) {
		t.Errorf("stream holds %v, want the events once", describe(recs))
	}
}
