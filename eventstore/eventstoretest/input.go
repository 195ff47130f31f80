package eventstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
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

// testJSONLikeJSONB checks that data every store must keep exactly is
// accepted and data PostgreSQL's jsonb cannot keep is refused by every
// store alike, before anything is written, naming the event.
func testJSONLikeJSONB(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	bad := []struct{ name, data string }{
		{"invalid UTF-8 in a string", "{\"a\":\"x\xffy\"}"},
		{"invalid UTF-8 in a key", "{\"\xc3\x28\":1}"},
		{"UTF-8 encoded surrogate", "[\"\xed\xa0\x80\"]"},
		{"lone high surrogate", `["\ud800"]`},
		{"lone low surrogate", `["\udc00x"]`},
		{"high surrogate then a letter", `["\ud800\u0041"]`},
		{"two high surrogates", `["\ud800\ud800"]`},
		{"high surrogate at the end", `{"k":"abc\uD83E"}`},
		{"NUL escape", `{"a":"x\u0000y"}`},
		{"NUL escape in a key", `{"\u0000":1}`},
		{"number beyond numeric's range", `{"n":1e1000000}`},
		{"number just beyond the integer digits", `[1e131072]`},
		{"long mantissa beyond the integer digits", `[123e131070]`},
		{"tiny number", `[1e-200000]`},
		{"number just beyond the fraction digits", `[1e-16384]`},
		{"fraction digits and exponent beyond", `[1.5e-16383]`},
		{"zero with too many fraction digits", `[0e-16384]`},
		{"exponent beyond PostgreSQL's parser", `[0e1073741823]`},
		{"negative exponent beyond PostgreSQL's parser", `[0e-1073741823]`},
		{"exponent beyond int64", `[1e99999999999999999999]`},
	}
	for i, c := range bad {
		e := newEvent("Payload", i)
		e.Data = []byte(c.data)
		stream := fmt.Sprintf("jsonb-%d", i)
		ve := refused(t, ctx, s, stream, eventstore.Any, "data", 1, newEvent("Fine", 0), e)
		if ve.Type != "Payload" {
			t.Errorf("%s: ValidationError.Type = %q, want Payload", c.name, ve.Type)
		}
	}

	good := []struct{ name, data string }{
		{"largest integer part", `[1e131071]`},
		{"long mantissa at the limit", `[12345e131067]`},
		{"smallest fraction", `[1e-16383]`},
		{"zero with a large exponent", `[0e200000]`},
		{"zero with digits and a large exponent", `[0.000e131072]`},
		{"fraction digits at the limit", `[1.00e-16381]`},
		{"negative zero", `-0`},
		{"plus exponent", `[1E+5, 2e-0, 3e00007]`},
		{"surrogate pair", `["\ud83e\udd2b", "\uD83D\uDE00"]`},
		{"escapes", `{"s":"\u00e9\/\b\f\n\r\t\"\\\u0001\u001f\u007f\u2028"}`},
		{"escaped backslash before u0000", `["\\u0000"]`},
		{"raw unicode", `{"ключ":"🦫 ✓ é"}`},
	}
	for i, c := range good {
		e := newEvent("Payload", i)
		e.Data = []byte(c.data)
		stream := fmt.Sprintf("jsonb-ok-%d", i)
		mustAppend(t, ctx, s, stream, eventstore.NoStream, e)
		recs := readStream(t, ctx, s, stream, eventstore.ReadStreamOptions{})
		if len(recs) != 1 {
			t.Fatalf("%s: read back %d records, want 1", c.name, len(recs))
		}
		if !sameJSONValue(recs[0].Data, e.Data) {
			t.Errorf("%s: read back %.200s, want the value of %s", c.name, recs[0].Data, c.data)
		}
	}
}

// testMaxEventSize checks the store's limit on the size of an event as it
// reads back: data that renders larger than the limit is refused however
// short it is written, with an error matching [eventstore.ErrEventTooLarge]
// and [eventstore.ErrInvalidInput].
func testMaxEventSize(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	ls, ok := s.(interface{ MaxEventSize() int })
	if !ok {
		t.Skip("the store does not report its MaxEventSize")
	}
	limit := ls.MaxEventSize()
	if limit <= 0 {
		t.Fatalf("MaxEventSize() = %d, want a positive limit", limit)
	}
	tooLarge := func(stream string, e eventstore.Event) {
		t.Helper()
		e.Type = "Huge"
		ve := refused(t, ctx, s, stream, eventstore.Any, "size", 1, newEvent("Fine", 0), e)
		_, err := s.Append(ctx, stream, eventstore.Any, e)
		if !errors.Is(err, eventstore.ErrEventTooLarge) || !errors.Is(err, eventstore.ErrInvalidInput) {
			t.Errorf("error %v does not match both ErrEventTooLarge and ErrInvalidInput", err)
		}
		if !strings.Contains(ve.Problem, strconv.Itoa(limit)) {
			t.Errorf("problem %q does not give the limit %d", ve.Problem, limit)
		}
	}

	// A few bytes of numbers that read back as digits beyond the limit.
	n := limit/131072 + 1
	nums := "[" + strings.Repeat("1e131071,", n-1) + "1e131071]"
	tooLarge("size-1", eventstore.Event{Data: []byte(nums)})

	// Plain large data.
	tooLarge("size-2", eventstore.Event{Data: []byte(`"` + strings.Repeat("x", limit) + `"`)})

	// Separators that expand: jsonb prints [0,0] as [0, 0], so data
	// shorter than the limit reads back longer.
	k := limit/2 - 100
	tooLarge("size-3", eventstore.Event{Data: []byte("[" + strings.Repeat("0,", k-1) + "0]")})

	// Large metadata.
	tooLarge("size-4", eventstore.Event{Metadata: eventstore.Metadata{"big": strings.Repeat("m", limit)}})

	// An event well within the limit is kept whole.
	e := newEvent("Big", 1)
	e.Data = []byte(`"` + strings.Repeat("y", limit/2) + `"`)
	mustAppend(t, ctx, s, "size-5", eventstore.NoStream, e)
	recs := readStream(t, ctx, s, "size-5", eventstore.ReadStreamOptions{})
	if len(recs) != 1 || !jsonEqual(recs[0].Data, e.Data) {
		t.Fatalf("the event within the limit did not read back whole")
	}
}

// sameJSONValue is jsonEqual, with numbers compared by value, since a store
// may print 1e5 as 100000.
func sameJSONValue(a, b []byte) bool {
	va, err1 := decodeJSON(a)
	vb, err2 := decodeJSON(b)
	return err1 == nil && err2 == nil && sameValue(va, vb)
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		rx, ok1 := new(big.Rat).SetString(string(x))
		ry, ok2 := new(big.Rat).SetString(string(y))
		return ok1 && ok2 && rx.Cmp(ry) == 0
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
