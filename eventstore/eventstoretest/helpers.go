package eventstoretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/google/uuid"
)

// testContext returns a context that ends with the test or after a minute.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 6*Deadline)
	t.Cleanup(cancel)
	return ctx
}

// newEvent returns an event of type typ with a fresh ID and a small payload.
func newEvent(typ string, n int) eventstore.Event {
	return eventstore.Event{
		ID:   uuid.New(),
		Type: typ,
		Data: fmt.Appendf(nil, `{"n":%d}`, n),
	}
}

// newEvents returns n events of type typ with fresh IDs.
func newEvents(typ string, n int) []eventstore.Event {
	out := make([]eventstore.Event, n)
	for i := range out {
		out[i] = newEvent(typ, i+1)
	}
	return out
}

func mustAppend(t *testing.T, ctx context.Context, s eventstore.Store, stream string, expected eventstore.ExpectedVersion, events ...eventstore.Event) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctx, stream, expected, events...)
	if err != nil {
		t.Fatalf("Append(%q, %s, %d events): %v", stream, expected, len(events), err)
	}
	return res
}

func readStream(t *testing.T, ctx context.Context, s eventstore.Store, stream string, opts eventstore.ReadStreamOptions) []eventstore.Record {
	t.Helper()
	recs, err := eventstore.Collect(s.ReadStream(ctx, stream, opts))
	if err != nil {
		t.Fatalf("ReadStream(%q, %+v): %v", stream, opts, err)
	}
	return recs
}

func readAll(t *testing.T, ctx context.Context, s eventstore.Store, opts eventstore.ReadAllOptions) []eventstore.Record {
	t.Helper()
	recs, err := eventstore.Collect(s.ReadAll(ctx, opts))
	if err != nil {
		t.Fatalf("ReadAll(%+v): %v", opts, err)
	}
	return recs
}

// readAllUpTo reads the whole log once it holds the record at pos: it
// reads again until then, for up to [Deadline], because a gap-safe log may
// hold readers back while another transaction is open.
func readAllUpTo(t *testing.T, ctx context.Context, s eventstore.Store, pos eventstore.Position) []eventstore.Record {
	t.Helper()
	deadline := time.Now().Add(Deadline)
	for {
		recs := readAll(t, ctx, s, eventstore.ReadAllOptions{})
		if n := len(recs); n > 0 && !recs[n-1].Position.Before(pos) {
			return recs
		}
		if time.Now().After(deadline) {
			last := "none"
			if n := len(recs); n > 0 {
				last = recs[n-1].Position.String()
			}
			t.Fatalf("ReadAll did not reach position %s within %s (last record read: %s, %d records)",
				pos, Deadline, last, len(recs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// versions returns the stream versions of recs.
func versions(recs []eventstore.Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.StreamVersion
	}
	return out
}

// seq returns from, from+step, ... to (inclusive), or nil when empty.
func seq(from, to, step int64) []int64 {
	var out []int64
	for v := from; (step > 0 && v <= to) || (step < 0 && v >= to); v += step {
		out = append(out, v)
	}
	return out
}

func ids(recs []eventstore.Record) []uuid.UUID {
	out := make([]uuid.UUID, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func eventIDs(events []eventstore.Event) []uuid.UUID {
	out := make([]uuid.UUID, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// wantConflict checks that err is a concurrency conflict on stream with the
// given expected and actual versions, and returns it.
func wantConflict(t *testing.T, err error, stream string, expected eventstore.ExpectedVersion, actual int64) *eventstore.ConflictError {
	t.Helper()
	if err == nil {
		t.Fatalf("append to %q with expected version %s succeeded, want a concurrency conflict", stream, expected)
	}
	if !errors.Is(err, eventstore.ErrConcurrencyConflict) {
		t.Fatalf("append to %q with expected version %s: error %v does not match ErrConcurrencyConflict", stream, expected, err)
	}
	var ce *eventstore.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("append to %q: error %v (%T) is not a *eventstore.ConflictError", stream, err, err)
	}
	if ce.Stream != stream || ce.Expected != expected || ce.Actual != actual {
		t.Fatalf("conflict = {Stream %q, Expected %s, Actual %d}, want {Stream %q, Expected %s, Actual %d}",
			ce.Stream, ce.Expected, ce.Actual, stream, expected, actual)
	}
	if !eventstore.IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = false for a conflict", err)
	}
	if errors.Is(err, eventstore.ErrInvalidInput) {
		t.Errorf("conflict %v also matches ErrInvalidInput", err)
	}
	return ce
}

// wantInvalid checks that err is an ErrInvalidInput *ValidationError about
// field, and returns it.
func wantInvalid(t *testing.T, err error, field string) *eventstore.ValidationError {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want invalid %s", field)
	}
	if !errors.Is(err, eventstore.ErrInvalidInput) {
		t.Fatalf("error %v does not match ErrInvalidInput", err)
	}
	var ve *eventstore.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *eventstore.ValidationError", err, err)
	}
	if field != "" && ve.Field != field {
		t.Fatalf("ValidationError.Field = %q, want %q (error: %v)", ve.Field, field, err)
	}
	if errors.Is(err, eventstore.ErrConcurrencyConflict) || eventstore.IsRetryable(err) {
		t.Errorf("invalid input %v is reported as retryable", err)
	}
	return ve
}

// wantStreamInfo checks a stream's info.
func wantStreamInfo(t *testing.T, ctx context.Context, s eventstore.Store, stream string, exists bool, version int64) {
	t.Helper()
	info, err := s.StreamInfo(ctx, stream)
	if err != nil {
		t.Fatalf("StreamInfo(%q): %v", stream, err)
	}
	want := eventstore.StreamInfo{StreamID: stream, Exists: exists, Version: version}
	if info != want {
		t.Fatalf("StreamInfo(%q) = %+v, want %+v", stream, info, want)
	}
}

// jsonEqual reports whether two JSON documents hold the same value, so a
// store may normalise whitespace and key order (as jsonb does).
func jsonEqual(a, b []byte) bool {
	va, err1 := decodeJSON(a)
	vb, err2 := decodeJSON(b)
	return err1 == nil && err2 == nil && reflect.DeepEqual(va, vb)
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// sameMetadata compares metadata, counting nil and empty as equal.
func sameMetadata(a, b eventstore.Metadata) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// checkRecord compares a record with the event it was appended from.
func checkRecord(t *testing.T, r eventstore.Record, stream string, version int64, e eventstore.Event) {
	t.Helper()
	if r.StreamID != stream || r.StreamVersion != version {
		t.Errorf("record at %s is %q v%d, want %q v%d", r.Position, r.StreamID, r.StreamVersion, stream, version)
	}
	if e.ID != uuid.Nil && r.ID != e.ID {
		t.Errorf("%q v%d: ID = %s, want %s", stream, version, r.ID, e.ID)
	}
	if r.Type != e.Type {
		t.Errorf("%q v%d: Type = %q, want %q", stream, version, r.Type, e.Type)
	}
	wantSV := e.SchemaVersion
	if wantSV == 0 {
		wantSV = 1
	}
	if r.SchemaVersion != wantSV {
		t.Errorf("%q v%d: SchemaVersion = %d, want %d", stream, version, r.SchemaVersion, wantSV)
	}
	wantData := e.Data
	if len(wantData) == 0 {
		wantData = []byte("{}")
	}
	if !jsonEqual(r.Data, wantData) {
		t.Errorf("%q v%d: Data = %s, want %s", stream, version, r.Data, wantData)
	}
	if !sameMetadata(r.Metadata, e.Metadata) {
		t.Errorf("%q v%d: Metadata = %v, want %v", stream, version, r.Metadata, e.Metadata)
	}
	if r.Position.IsZero() {
		t.Errorf("%q v%d: zero Position", stream, version)
	}
	if r.RecordedAt.IsZero() {
		t.Errorf("%q v%d: zero RecordedAt", stream, version)
	}
}

// within runs fn and fails the test if it has not returned after
// [Deadline], which is how the suite catches deadlocks.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(Deadline):
		t.Fatalf("%s did not finish within %s: deadlock or leak?", what, Deadline)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func asValidation(err error, target **eventstore.ValidationError) bool {
	return errors.As(err, target) && errors.Is(err, eventstore.ErrInvalidInput)
}
