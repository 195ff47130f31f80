package eventstoretest

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
)

// refused appends events and checks that the store refused them with an
// ErrInvalidInput about field, naming the stream and, when index is not -1,
// the event's index and type; and that the stream is unchanged.
func refused(t *testing.T, ctx context.Context, s eventstore.Store, stream string, expected eventstore.ExpectedVersion, field string, index int, events ...eventstore.Event) *eventstore.ValidationError {
	t.Helper()
	before, err := s.StreamInfo(ctx, stream)
	if err != nil {
		t.Fatalf("StreamInfo(%q): %v", stream, err)
	}
	_, err = s.Append(ctx, stream, expected, events...)
	if err == nil {
		t.Fatalf("append to %q (%s) of %d events succeeded, want an invalid %s", stream, expected, len(events), field)
	}
	ve := wantInvalid(t, err, field)
	if ve.Stream != stream {
		t.Errorf("ValidationError.Stream = %q, want %q (error: %v)", ve.Stream, stream, err)
	}
	if !strings.Contains(err.Error(), stream) {
		t.Errorf("error %q does not name the stream %q", err, stream)
	}
	if ve.Index != index {
		t.Errorf("ValidationError.Index = %d, want %d (error: %v)", ve.Index, index, err)
	}
	if index >= 0 && !strings.Contains(err.Error(), events[index].Type) {
		t.Errorf("error %q does not name the event type %q", err, events[index].Type)
	}
	wantStreamInfo(t, ctx, s, stream, before.Exists, before.Version)
	return ve
}

// testNegativeExact checks that an exact expected version below zero is
// invalid input, not one of Any, NoStream or StreamExists in disguise.
func testNegativeExact(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	mustAppend(t, ctx, s, "neg-1", eventstore.NoStream, newEvents("E", 5)...)
	for _, v := range []int64{-1, -2, -3, -4, math.MinInt64} {
		refused(t, ctx, s, "neg-1", eventstore.Exact(v), "expected version", -1, newEvent("E", 6))
		refused(t, ctx, s, "neg-2", eventstore.Exact(v), "expected version", -1, newEvent("E", 1))
	}
	for _, e := range []eventstore.ExpectedVersion{eventstore.Any, eventstore.NoStream, eventstore.StreamExists} {
		if e == eventstore.Exact(-1) || e == eventstore.Exact(-2) || e == eventstore.Exact(-3) {
			t.Errorf("%s equals a negative Exact version", e)
		}
	}
	if eventstore.Exact(-1).IsExact() {
		t.Errorf("Exact(-1).IsExact() = true, want false (it is no valid expected version)")
	}
	// The valid forms still work.
	mustAppend(t, ctx, s, "neg-1", eventstore.Exact(5), newEvent("E", 6))
	mustAppend(t, ctx, s, "neg-1", eventstore.Any, newEvent("E", 7))
	wantStreamInfo(t, ctx, s, "neg-1", true, 7)
}

// testSchemaVersionRange checks that a schema version the store cannot keep
// exactly (above [eventstore.MaxSchemaVersion]) is refused rather than
// changed, and that the largest one round-trips.
func testSchemaVersionRange(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	for _, v := range []int64{math.MaxInt32 + 1, 1<<32 + 1, math.MaxInt64} {
		if int64(int(v)) != v {
			continue // int is 32 bits here: such versions cannot be written
		}
		e := newEvent("Versioned", 2)
		e.SchemaVersion = int(v)
		ve := refused(t, ctx, s, "sv-1", eventstore.Any, "schema version", 1, newEvent("Fine", 1), e)
		if !strings.Contains(ve.Problem, "2147483647") {
			t.Errorf("schema version %d: problem %q does not give the limit", v, ve.Problem)
		}
	}
	e := newEvent("Versioned", 1)
	e.SchemaVersion = eventstore.MaxSchemaVersion
	mustAppend(t, ctx, s, "sv-2", eventstore.NoStream, e)
	recs := readStream(t, ctx, s, "sv-2", eventstore.ReadStreamOptions{})
	if len(recs) != 1 || recs[0].SchemaVersion != eventstore.MaxSchemaVersion {
		t.Fatalf("read back %v, want one record at schema version %d", describe(recs), eventstore.MaxSchemaVersion)
	}
}
