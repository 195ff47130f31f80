package postgres_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
)

func TestAppendContentionIsExact(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c := ctx(t)
	const goroutines = 16
	for round, expected := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Exact(1), eventstore.Exact(3)} {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			wins    int
			actuals []int64
			others  []error
		)
		start := make(chan struct{})
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				n := 1
				if round == 1 {
					n = 2
				}
				_, err := s.Append(c, "race-1", expected, events(n)...)
				mu.Lock()
				defer mu.Unlock()
				var ce *eventstore.ConflictError
				switch {
				case err == nil:
					wins++
				case errors.As(err, &ce) && errors.Is(err, eventstore.ErrConcurrencyConflict):
					actuals = append(actuals, ce.Actual)
					if ce.Stream != "race-1" || ce.Expected != expected {
						others = append(others, err)
					}
				default:
					others = append(others, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins != 1 || len(others) > 0 {
			t.Fatalf("round %d (expected %s): %d wins, unexpected errors %v", round, expected, wins, others)
		}
		want := []int64{1, 3, 4}[round]
		for _, a := range actuals {
			if a != want {
				t.Fatalf("round %d: conflict reported actual %d, want %d", round, a, want)
			}
		}
	}
	got := versions(collect(t, s.ReadStream(c, "race-1", eventstore.ReadStreamOptions{})))
	if !slices.Equal(got, []int64{1, 2, 3, 4}) {
		t.Fatalf("versions = %v, want 1..4", got)
	}
}

func TestAppendConcurrentAnyKeepsVersionsContiguous(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c := ctx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if _, err := s.Append(c, "busy-1", eventstore.Any, events(3)...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := versions(collect(t, s.ReadStream(c, "busy-1", eventstore.ReadStreamOptions{})))
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("version %d at index %d: not contiguous", v, i)
		}
	}
	if len(got) != 240 {
		t.Fatalf("%d events, want 240", len(got))
	}
	if n := len(readUntil(t, s, eventstore.Position{}, 240)); n != 240 {
		t.Fatalf("ReadAll read %d events, want 240", n)
	}
}

func TestExpectedVersionMatrix(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c := ctx(t)
	mustAppend(t, s, "existing-1", eventstore.NoStream, events(2)...)
	cases := []struct {
		stream   string
		expected eventstore.ExpectedVersion
		actual   int64 // -1: success
	}{
		{"existing-1", eventstore.Any, -1},
		{"existing-1", eventstore.StreamExists, -1},
		{"existing-1", eventstore.NoStream, 4},
		{"existing-1", eventstore.Exact(0), 4},
		{"existing-1", eventstore.Exact(3), 4},
		{"existing-1", eventstore.Exact(5), 4},
		{"missing-1", eventstore.StreamExists, 0},
		{"missing-2", eventstore.Exact(1), 0},
		{"missing-3", eventstore.Exact(0), -1},
		{"missing-4", eventstore.Any, -1},
	}
	for _, tc := range cases {
		_, err := s.Append(c, tc.stream, tc.expected, events(1)...)
		if tc.actual < 0 {
			if err != nil {
				t.Errorf("%s expecting %s: %v", tc.stream, tc.expected, err)
			}
			continue
		}
		var ce *eventstore.ConflictError
		if !errors.As(err, &ce) || ce.Actual != tc.actual || ce.Stream != tc.stream || ce.Expected != tc.expected {
			t.Errorf("%s expecting %s: err = %v, want conflict with actual %d", tc.stream, tc.expected, err, tc.actual)
		}
	}
	// Conflicts wrote nothing.
	if info, _ := s.StreamInfo(c, "existing-1"); info.Version != 4 {
		t.Errorf("existing-1 at version %d, want 4", info.Version)
	}
	for _, id := range []string{"missing-1", "missing-2"} {
		if info, _ := s.StreamInfo(c, id); info.Exists {
			t.Errorf("%s exists after a refused append", id)
		}
	}
	if n := len(readUntil(t, s, eventstore.Position{}, 6)); n != 6 {
		t.Errorf("log holds %d events, want 6", n)
	}
}

func TestAppendIdempotentRetry(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c := ctx(t)
	mustAppend(t, s, "pay-1", eventstore.NoStream, events(1)...)
	batch := events(2)
	for i := range batch {
		batch[i].ID = uuid.Must(uuid.NewV7())
	}
	first := mustAppend(t, s, "pay-1", eventstore.Exact(1), batch...)
	for _, expected := range []eventstore.ExpectedVersion{eventstore.Exact(1), eventstore.Any, eventstore.StreamExists} {
		again, err := s.Append(c, "pay-1", expected, batch...)
		if err != nil || again != first {
			t.Fatalf("retry expecting %s = %+v, %v; want %+v", expected, again, err, first)
		}
	}
	// A retry of the stream's first append with NoStream.
	created := events(1)
	created[0].ID = uuid.Must(uuid.NewV7())
	res := mustAppend(t, s, "pay-2", eventstore.NoStream, created...)
	if again, err := s.Append(c, "pay-2", eventstore.NoStream, created...); err != nil || again != res {
		t.Fatalf("NoStream retry = %+v, %v", again, err)
	}
	if got := versions(collect(t, s.ReadStream(c, "pay-1", eventstore.ReadStreamOptions{}))); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("versions after retries = %v", got)
	}

	conflicts := []struct {
		name     string
		stream   string
		expected eventstore.ExpectedVersion
		evs      []eventstore.Event
		reason   string
	}{
		{"same IDs after another version", "pay-1", eventstore.Exact(3), batch, "already stored at versions 2..3"},
		{"same IDs in another stream", "pay-9", eventstore.Any, batch, `already stored in stream "pay-1"`},
		{"same IDs in another order", "pay-1", eventstore.Exact(1), []eventstore.Event{batch[1], batch[0]}, "already stored at version"},
		{"some IDs new", "pay-1", eventstore.Exact(1), []eventstore.Event{batch[0], {Type: "New"}}, "not stored"},
		{"NoStream on an existing stream", "pay-1", eventstore.NoStream, batch, "not at the start"},
	}
	for _, tc := range conflicts {
		_, err := s.Append(c, tc.stream, tc.expected, tc.evs...)
		var ce *eventstore.ConflictError
		if !errors.As(err, &ce) || !strings.Contains(ce.Reason, tc.reason) {
			t.Errorf("%s: err = %v, want a conflict whose reason says %q", tc.name, err, tc.reason)
		}
	}
	if got := versions(collect(t, s.ReadStream(c, "pay-1", eventstore.ReadStreamOptions{}))); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("versions after conflicts = %v", got)
	}
	if info, _ := s.StreamInfo(c, "pay-9"); info.Exists {
		t.Fatal("a refused append created pay-9")
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c := ctx(t)
	long := strings.Repeat("x", eventstore.MaxStreamIDLength+1)
	ok := eventstore.Event{Type: "Ok", Data: []byte(`{}`)}
	cases := []struct {
		name     string
		stream   string
		expected eventstore.ExpectedVersion
		evs      []eventstore.Event
		field    string
	}{
		{"empty stream id", "", eventstore.Any, []eventstore.Event{ok}, "stream id"},
		{"long stream id", long, eventstore.Any, []eventstore.Event{ok}, "stream id"},
		{"NUL in stream id", "a\x00b", eventstore.Any, []eventstore.Event{ok}, "stream id"},
		{"empty type", "s-1", eventstore.Any, []eventstore.Event{{Data: []byte(`{}`)}}, "type"},
		{"long type", "s-1", eventstore.Any, []eventstore.Event{{Type: long}}, "type"},
		{"invalid data", "s-1", eventstore.Any, []eventstore.Event{ok, {Type: "Bad", Data: []byte(`{"a":`)}}, "data"},
		{"NUL escape in data", "s-1", eventstore.Any, []eventstore.Event{{Type: "Bad", Data: []byte(`{"a":"\u0000"}`)}}, "data"},
		{"bad metadata", "s-1", eventstore.Any, []eventstore.Event{{Type: "Bad", Metadata: eventstore.Metadata{"k": "\x00"}}}, "metadata"},
		{"no events", "s-1", eventstore.Any, nil, "events"},
		{"negative exact version", "s-1", eventstore.Exact(-4), []eventstore.Event{ok}, "expected version"},
	}
	for _, tc := range cases {
		_, err := s.Append(c, tc.stream, tc.expected, tc.evs...)
		var ve *eventstore.ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field || !errors.Is(err, eventstore.ErrInvalidInput) {
			t.Errorf("%s: err = %v, want a validation error on %q", tc.name, err, tc.field)
		}
	}
	if n := len(collect(t, s.ReadAll(c, eventstore.ReadAllOptions{}))); n != 0 {
		t.Fatalf("rejected appends wrote %d events", n)
	}
}

func TestHostileStreamIDs(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c := ctx(t)
	ids := []string{
		`'; DROP TABLE events; --`,
		`"quoted"-1`,
		`a'b"c\d-$1-%s-?`,
		`robert'); DELETE FROM streams WHERE ('1'='1`,
		"ünïcødé-ストリーム",
	}
	for i, id := range ids {
		res := mustAppend(t, s, id, eventstore.NoStream, events(i+1)...)
		if res.Version != int64(i+1) {
			t.Errorf("%q: version %d", id, res.Version)
		}
	}
	for i, id := range ids {
		recs := collect(t, s.ReadStream(c, id, eventstore.ReadStreamOptions{}))
		if len(recs) != i+1 || recs[0].StreamID != id {
			t.Errorf("%q: read %d records", id, len(recs))
		}
	}
	cat := eventstore.Category(ids[2])
	var listed []string
	for info, err := range s.ListStreams(c, postgresListOpts(cat)) {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, info.StreamID)
	}
	if !slices.Equal(listed, []string{ids[2]}) {
		t.Errorf("streams of category %q = %q", cat, listed)
	}
	if n := len(readUntil(t, s, eventstore.Position{}, 15)); n != 15 {
		t.Fatalf("log holds %d events, want 15", n)
	}
}

func TestAppendSurvivesManyEvents(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	res := mustAppend(t, s, "big-1", eventstore.NoStream, events(5000)...)
	if res.Version != 5000 {
		t.Fatalf("version %d", res.Version)
	}
	recs := collect(t, s.ReadStream(ctx(t), "big-1", eventstore.ReadStreamOptions{Direction: eventstore.Backward, Limit: 1}))
	if len(recs) != 1 || recs[0].Position != res.Position || string(recs[0].Data) != fmt.Sprintf(`{"n": %d}`, 4999) {
		t.Fatalf("last record = %+v, result %+v", recs, res)
	}
}
