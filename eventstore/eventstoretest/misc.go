package eventstoretest

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/google/uuid"
)

func testStreamInfo(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	wantStreamInfo(t, ctx, s, "info-1", false, 0)
	mustAppend(t, ctx, s, "info-1", eventstore.NoStream, newEvents("E", 3)...)
	wantStreamInfo(t, ctx, s, "info-1", true, 3)
	mustAppend(t, ctx, s, "info-1", eventstore.Exact(3), newEvent("E", 4))
	wantStreamInfo(t, ctx, s, "info-1", true, 4)
	wantStreamInfo(t, ctx, s, "info-2", false, 0)
	wantStreamInfo(t, ctx, s, "info", false, 0)
	wantStreamInfo(t, ctx, s, "info-10", false, 0)
}

func testHead(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatalf("Head of an empty store: %v", err)
	}
	if !head.IsZero() {
		t.Fatalf("Head of an empty store = %s, want the zero Position", head)
	}
	var last eventstore.Position
	for i := range 3 {
		last = mustAppend(t, ctx, s, "head-1", eventstore.Any, newEvents("E", 1+i)...).Position
		waitHead(t, ctx, s, last)
	}
	all := readAllUpTo(t, ctx, s, last)
	if all[len(all)-1].Position != last {
		t.Errorf("last record at %s, Head %s", all[len(all)-1].Position, last)
	}
}

// waitHead waits until Head reports want, and fails if it ever reports a
// position after it.
func waitHead(t *testing.T, ctx context.Context, s eventstore.Store, want eventstore.Position) {
	t.Helper()
	deadline := time.Now().Add(Deadline)
	for {
		head, err := s.Head(ctx)
		if err != nil {
			t.Fatalf("Head: %v", err)
		}
		if head == want {
			return
		}
		if want.Before(head) {
			t.Fatalf("Head = %s, after the last append's position %s", head, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Head = %s, want %s within %s", head, want, Deadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testEarlyStop breaks out of reads after the first record, more times than
// a store's connection pool is likely to hold: a read that leaked its
// connection or lock on break would make the store hang.
func testEarlyStop(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	last := mustAppend(t, ctx, s, "stop-1", eventstore.NoStream, newEvents("E", 5)...).Position
	readAllUpTo(t, ctx, s, last)
	const rounds = 25
	within(t, "breaking out of reads", func() {
		for range rounds {
			for _, err := range s.ReadStream(ctx, "stop-1", eventstore.ReadStreamOptions{BatchSize: 1}) {
				if err != nil {
					t.Errorf("ReadStream: %v", err)
				}
				break
			}
			for _, err := range s.ReadStream(ctx, "stop-1", eventstore.ReadStreamOptions{Direction: eventstore.Backward, BatchSize: 2}) {
				if err != nil {
					t.Errorf("ReadStream backward: %v", err)
				}
				break
			}
			for _, err := range s.ReadAll(ctx, eventstore.ReadAllOptions{BatchSize: 1}) {
				if err != nil {
					t.Errorf("ReadAll: %v", err)
				}
				break
			}
			for _, err := range s.Follow(ctx, eventstore.ReadAllOptions{BatchSize: 1}) {
				if err != nil {
					t.Errorf("Follow: %v", err)
				}
				break
			}
		}
	})
	if t.Failed() {
		return
	}
	within(t, "appending and reading after early stops", func() {
		res, err := s.Append(ctx, "stop-1", eventstore.Exact(5), newEvent("After", 6))
		if err != nil {
			t.Errorf("Append after early stops: %v", err)
			return
		}
		recs, err := eventstore.Collect(s.ReadStream(ctx, "stop-1", eventstore.ReadStreamOptions{}))
		if err != nil || len(recs) != 6 || recs[5].Position != res.Position {
			t.Errorf("ReadStream after early stops: %d records, %v", len(recs), err)
		}
	})
}

// testAppendWhileIterating appends from inside range loops over every kind
// of read, as a process manager does: a store must not hold a lock or the
// only connection while it yields.
func testAppendWhileIterating(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	last := mustAppend(t, ctx, s, "loop-1", eventstore.NoStream, newEvents("E", 3)...).Position
	readAllUpTo(t, ctx, s, last)
	within(t, "appending inside a ReadStream loop", func() {
		for r, err := range s.ReadStream(ctx, "loop-1", eventstore.ReadStreamOptions{BatchSize: 1, Limit: 3}) {
			if err != nil {
				t.Errorf("ReadStream: %v", err)
				return
			}
			if _, err := s.Append(ctx, "loop-2", eventstore.Any, newEvent("FromStream", int(r.StreamVersion))); err != nil {
				t.Errorf("Append inside ReadStream: %v", err)
				return
			}
		}
	})
	within(t, "appending inside a ReadAll loop", func() {
		for r, err := range s.ReadAll(ctx, eventstore.ReadAllOptions{BatchSize: 1, Limit: 3}) {
			if err != nil {
				t.Errorf("ReadAll: %v", err)
				return
			}
			if _, err := s.Append(ctx, "loop-3", eventstore.Any, newEvent("FromAll", int(r.StreamVersion))); err != nil {
				t.Errorf("Append inside ReadAll: %v", err)
				return
			}
		}
	})
	within(t, "appending inside a Follow loop", func() {
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		// Each record from loop-1 causes one in loop-4; stop once one of
		// those comes back round.
		for r, err := range s.Follow(fctx, eventstore.ReadAllOptions{BatchSize: 1}) {
			if err != nil {
				t.Errorf("Follow: %v", err)
				return
			}
			if r.StreamID == "loop-4" {
				break
			}
			if r.StreamID == "loop-1" {
				if _, err := s.Append(ctx, "loop-4", eventstore.Any, newEvent("FromFollow", int(r.StreamVersion))); err != nil {
					t.Errorf("Append inside Follow: %v", err)
					return
				}
			}
		}
	})
	wantStreamInfo(t, ctx, s, "loop-2", true, 3)
	wantStreamInfo(t, ctx, s, "loop-3", true, 3)
	info, err := s.StreamInfo(ctx, "loop-4")
	if err != nil || info.Version < 1 {
		t.Errorf("StreamInfo(loop-4) = %+v, %v; want at least one event", info, err)
	}
}

func testValidationAppend(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	good := func() eventstore.Event { return newEvent("Good", 1) }
	with := func(f func(*eventstore.Event)) []eventstore.Event {
		e := good()
		f(&e)
		return []eventstore.Event{e}
	}
	dup := good()
	cases := []struct {
		name     string
		stream   string
		expected eventstore.ExpectedVersion
		events   []eventstore.Event
		field    string
	}{
		{"empty stream id", "", eventstore.Any, with(func(*eventstore.Event) {}), "stream id"},
		{"over-long stream id", strings.Repeat("s", eventstore.MaxStreamIDLength+1), eventstore.Any, with(func(*eventstore.Event) {}), "stream id"},
		{"NUL in stream id", "bad\x00-1", eventstore.Any, with(func(*eventstore.Event) {}), "stream id"},
		{"invalid UTF-8 stream id", "bad\xff\xfe-1", eventstore.Any, with(func(*eventstore.Event) {}), "stream id"},
		{"expected version Exact(-4)", "v-1", eventstore.Exact(-4), with(func(*eventstore.Event) {}), "expected version"},
		{"expected version far below", "v-2", eventstore.Exact(-1 << 40), with(func(*eventstore.Event) {}), "expected version"},
		{"nil events", "v-3", eventstore.Any, nil, "events"},
		{"empty events", "v-4", eventstore.Any, []eventstore.Event{}, "events"},
		{"empty type", "v-5", eventstore.Any, with(func(e *eventstore.Event) { e.Type = "" }), "type"},
		{"over-long type", "v-6", eventstore.Any, with(func(e *eventstore.Event) { e.Type = strings.Repeat("T", eventstore.MaxTypeLength+1) }), "type"},
		{"NUL in type", "v-7", eventstore.Any, with(func(e *eventstore.Event) { e.Type = "A\x00B" }), "type"},
		{"invalid UTF-8 type", "v-8", eventstore.Any, with(func(e *eventstore.Event) { e.Type = "A\xff" }), "type"},
		{"invalid JSON data", "v-9", eventstore.Any, with(func(e *eventstore.Event) { e.Data = []byte(`{"a":`) }), "data"},
		{"not JSON at all", "v-10", eventstore.Any, with(func(e *eventstore.Event) { e.Data = []byte(`hello`) }), "data"},
		{"two JSON values", "v-11", eventstore.Any, with(func(e *eventstore.Event) { e.Data = []byte(`{} {}`) }), "data"},
		{"NUL escape in data", "v-12", eventstore.Any, with(func(e *eventstore.Event) { e.Data = []byte(`{"a":"x\u0000y"}`) }), "data"},
		{"empty metadata key", "v-13", eventstore.Any, with(func(e *eventstore.Event) { e.Metadata = eventstore.Metadata{"": "v"} }), "metadata"},
		{"NUL in metadata key", "v-14", eventstore.Any, with(func(e *eventstore.Event) { e.Metadata = eventstore.Metadata{"k\x00": "v"} }), "metadata"},
		{"over-long metadata key", "v-15", eventstore.Any, with(func(e *eventstore.Event) {
			e.Metadata = eventstore.Metadata{strings.Repeat("k", eventstore.MaxMetadataKeyLength+1): "v"}
		}), "metadata"},
		{"invalid UTF-8 metadata value", "v-16", eventstore.Any, with(func(e *eventstore.Event) { e.Metadata = eventstore.Metadata{"k": "\xff"} }), "metadata"},
		{"NUL in metadata value", "v-17", eventstore.Any, with(func(e *eventstore.Event) { e.Metadata = eventstore.Metadata{"k": "a\x00"} }), "metadata"},
		{"negative schema version", "v-18", eventstore.Any, with(func(e *eventstore.Event) { e.SchemaVersion = -1 }), "schema version"},
		{"duplicate IDs in one append", "v-19", eventstore.Any, []eventstore.Event{dup, good(), dup}, "id"},
		{"bad last event after good ones", "v-20", eventstore.NoStream, append(newEvents("Good", 3), eventstore.Event{Type: ""}), "type"},
	}
	for _, c := range cases {
		_, err := s.Append(ctx, c.stream, c.expected, c.events...)
		if err == nil {
			t.Errorf("%s: append succeeded, want ErrInvalidInput", c.name)
			continue
		}
		ve := wantInvalid(t, err, c.field)
		if c.field != "stream id" && c.field != "" && ve.Stream != c.stream {
			t.Errorf("%s: ValidationError.Stream = %q, want %q", c.name, ve.Stream, c.stream)
		}
		if strings.HasPrefix(c.stream, "v-") {
			wantStreamInfo(t, ctx, s, c.stream, false, 0)
		}
	}
	// Nothing at all was written: the log holds only a marker appended now.
	marker := mustAppend(t, ctx, s, "marker-1", eventstore.NoStream, newEvent("Marker", 0))
	if marker.Version != 1 {
		t.Errorf("marker Version = %d, want 1", marker.Version)
	}
	all := readAllUpTo(t, ctx, s, marker.Position)
	if len(all) != 1 {
		t.Errorf("after refused appends the log holds %v, want only the marker", describe(all))
	}
}

// testValidationLimits appends values exactly at the limits, which must be
// accepted.
func testValidationLimits(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	id := strings.Repeat("s", eventstore.MaxStreamIDLength)
	e := newEvent(strings.Repeat("T", eventstore.MaxTypeLength), 1)
	e.Metadata = eventstore.Metadata{strings.Repeat("k", eventstore.MaxMetadataKeyLength): "v"}
	e.SchemaVersion = 1 << 20
	e.ID = uuid.New()
	mustAppend(t, ctx, s, id, eventstore.NoStream, e)
	recs := readStream(t, ctx, s, id, eventstore.ReadStreamOptions{})
	if len(recs) != 1 {
		t.Fatalf("ReadStream returned %d records, want 1", len(recs))
	}
	checkRecord(t, recs[0], id, 1, e)
}

func testValidationReads(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	mustAppend(t, ctx, s, "reads-1", eventstore.NoStream, newEvents("E", 2)...)
	first := func(name string, seq func(yield func(eventstore.Record, error) bool), field string) {
		t.Helper()
		n := 0
		within(t, name, func() {
			for r, err := range seq {
				n++
				if err == nil {
					t.Errorf("%s yielded record %s v%d, want an error", name, r.StreamID, r.StreamVersion)
					return
				}
				if !strings.Contains(err.Error(), "invalid") {
					t.Errorf("%s: error %q does not say what is invalid", name, err)
				}
				var ve *eventstore.ValidationError
				if !asValidation(err, &ve) || (field != "" && ve.Field != field) {
					t.Errorf("%s: error %v is not a ValidationError about %s", name, err, field)
				}
			}
		})
		if n != 1 {
			t.Errorf("%s yielded %d items, want one error", name, n)
		}
	}
	rs := func(id string, o eventstore.ReadStreamOptions) func(func(eventstore.Record, error) bool) {
		return s.ReadStream(ctx, id, o)
	}
	first("ReadStream with an empty stream id", rs("", eventstore.ReadStreamOptions{}), "stream id")
	first("ReadStream with a NUL in the stream id", rs("a\x00", eventstore.ReadStreamOptions{}), "stream id")
	first("ReadStream with an over-long stream id", rs(strings.Repeat("s", eventstore.MaxStreamIDLength+1), eventstore.ReadStreamOptions{}), "stream id")
	first("ReadStream with From -1", rs("reads-1", eventstore.ReadStreamOptions{From: -1}), "options")
	first("ReadStream with Limit -1", rs("reads-1", eventstore.ReadStreamOptions{Limit: -1}), "options")
	first("ReadStream with BatchSize -1", rs("reads-1", eventstore.ReadStreamOptions{BatchSize: -1}), "options")
	first("ReadStream with Direction 7", rs("reads-1", eventstore.ReadStreamOptions{Direction: 7}), "options")
	first("ReadAll with Limit -1", s.ReadAll(ctx, eventstore.ReadAllOptions{Limit: -1}), "options")
	first("ReadAll with BatchSize -1", s.ReadAll(ctx, eventstore.ReadAllOptions{BatchSize: -1}), "options")
	first("Follow with Limit -1", s.Follow(ctx, eventstore.ReadAllOptions{Limit: -1}), "options")
	first("Follow with BatchSize -1", s.Follow(ctx, eventstore.ReadAllOptions{BatchSize: -1}), "options")
	// Positions are int64 pairs in every store; one beyond is no position.
	for _, p := range []eventstore.Position{{TxID: math.MaxInt64 + 1}, {TxID: 1, Seq: math.MaxUint64}} {
		first("ReadAll after "+p.String(), s.ReadAll(ctx, eventstore.ReadAllOptions{After: p}), "options")
		first("Follow after "+p.String(), s.Follow(ctx, eventstore.ReadAllOptions{After: p}), "options")
	}

	for _, id := range []string{"", "a\x00", "\xff", strings.Repeat("s", eventstore.MaxStreamIDLength+1)} {
		_, err := s.StreamInfo(ctx, id)
		wantInvalid(t, err, "stream id")
	}
	wantStreamInfo(t, ctx, s, "reads-1", true, 2)
}
