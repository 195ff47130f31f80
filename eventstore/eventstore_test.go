package eventstore_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/google/uuid"
)

func TestCategory(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]string{
		"account-42":     "account",
		"account-42-x":   "account",
		"account":        "account",
		"-42":            "",
		"order_line-7":   "order_line",
		"账户-1":           "账户",
		"":               "",
		"a-":             "a",
		"with space-abc": "with space",
	} {
		if got := eventstore.Category(id); got != want {
			t.Errorf("Category(%q) = %q, want %q", id, got, want)
		}
		if got := (eventstore.Record{StreamID: id}).Category(); got != want {
			t.Errorf("Record{StreamID: %q}.Category() = %q, want %q", id, got, want)
		}
	}
}

func TestPositionCompare(t *testing.T) {
	t.Parallel()
	ordered := []eventstore.Position{
		{},
		{TxID: 0, Seq: 1},
		{TxID: 1, Seq: 0},
		{TxID: 1, Seq: 5},
		{TxID: 1, Seq: 9},
		{TxID: 2, Seq: 3}, // a later transaction with a lower sequence comes after
		{TxID: 1 << 63, Seq: 0},
		{TxID: ^uint64(0), Seq: ^uint64(0)},
	}
	for i, p := range ordered {
		for j, q := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := p.Compare(q); got != want {
				t.Errorf("%s.Compare(%s) = %d, want %d", p, q, got, want)
			}
			if got := p.Before(q); got != (i < j) {
				t.Errorf("%s.Before(%s) = %v, want %v", p, q, got, i < j)
			}
		}
	}
	shuffled := slices.Clone(ordered)
	slices.Reverse(shuffled)
	slices.SortFunc(shuffled, eventstore.Position.Compare)
	if !slices.Equal(shuffled, ordered) {
		t.Errorf("sorting by Compare gave %v", shuffled)
	}
	if !(eventstore.Position{}).IsZero() || (eventstore.Position{Seq: 1}).IsZero() || (eventstore.Position{TxID: 1}).IsZero() {
		t.Error("IsZero is wrong")
	}
}

func TestPositionStringParse(t *testing.T) {
	t.Parallel()
	for _, p := range []eventstore.Position{
		{}, {TxID: 1, Seq: 2}, {TxID: 740, Seq: 1}, {TxID: ^uint64(0), Seq: ^uint64(0)},
	} {
		s := p.String()
		got, err := eventstore.ParsePosition(s)
		if err != nil || got != p {
			t.Errorf("ParsePosition(%q) = %v, %v; want %v", s, got, err, p)
		}
	}
	if got := (eventstore.Position{TxID: 12, Seq: 345}).String(); got != "12/345" {
		t.Errorf("String() = %q, want 12/345", got)
	}
	for _, bad := range []string{"", "12", "12/", "/3", "a/b", "1/2/3", "-1/2", "1/-2", " 1/2", "1 /2", "18446744073709551616/1", "1.5/2"} {
		if p, err := eventstore.ParsePosition(bad); err == nil {
			t.Errorf("ParsePosition(%q) = %v, want an error", bad, p)
		} else if !strings.HasPrefix(err.Error(), "eventstore: ") || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("ParsePosition(%q): error %q should start with eventstore: and quote the input", bad, err)
		}
	}
}

func TestExpectedVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		v     eventstore.ExpectedVersion
		s     string
		exact bool
	}{
		{eventstore.Any, "any", false},
		{eventstore.NoStream, "no stream", false},
		{eventstore.StreamExists, "stream exists", false},
		{eventstore.Exact(0), "0", true},
		{eventstore.Exact(7), "7", true},
		{eventstore.Exact(-1), "invalid(-1)", false},
		{eventstore.Exact(-4), "invalid(-4)", false},
	}
	for _, c := range cases {
		if got := c.v.String(); got != c.s {
			t.Errorf("%s.String() = %q, want %q", c.s, got, c.s)
		}
		if got := c.v.IsExact(); got != c.exact {
			t.Errorf("%s.IsExact() = %v, want %v", c.s, got, c.exact)
		}
		if err := c.v.Validate(); (err == nil) != (c.s[0] != 'i') {
			t.Errorf("%s.Validate() = %v", c.s, err)
		}
	}
	if eventstore.Exact(3) != eventstore.Exact(3) || eventstore.Exact(0) != (eventstore.ExpectedVersion{}) {
		t.Error("Exact(3) != Exact(3), or the zero ExpectedVersion is not Exact(0)")
	}
	// No exact version stands for a condition.
	for _, v := range []int64{-1, -2, -3} {
		e := eventstore.Exact(v)
		if e == eventstore.Any || e == eventstore.NoStream || e == eventstore.StreamExists {
			t.Errorf("Exact(%d) = %s", v, e)
		}
		if !errors.Is(e.Validate(), eventstore.ErrInvalidInput) {
			t.Errorf("Exact(%d).Validate() = %v, want ErrInvalidInput", v, e.Validate())
		}
	}
	matches := []struct {
		e      eventstore.ExpectedVersion
		actual int64
		want   bool
	}{
		{eventstore.Any, 0, true}, {eventstore.Any, 5, true},
		{eventstore.NoStream, 0, true}, {eventstore.NoStream, 5, false},
		{eventstore.StreamExists, 0, false}, {eventstore.StreamExists, 5, true},
		{eventstore.Exact(5), 5, true}, {eventstore.Exact(5), 4, false}, {eventstore.Exact(0), 0, true},
		{eventstore.Exact(-1), 5, false}, {eventstore.Exact(-1), 0, false},
	}
	for _, m := range matches {
		if got := m.e.Matches(m.actual); got != m.want {
			t.Errorf("%s.Matches(%d) = %v, want %v", m.e, m.actual, got, m.want)
		}
	}
}

func TestConflictError(t *testing.T) {
	t.Parallel()
	var err error = &eventstore.ConflictError{Stream: "account-42", Expected: eventstore.Exact(3), Actual: 5}
	wrapped := fmt.Errorf("save account: %w", err)
	for _, e := range []error{err, wrapped} {
		if !errors.Is(e, eventstore.ErrConcurrencyConflict) {
			t.Errorf("errors.Is(%v, ErrConcurrencyConflict) = false", e)
		}
		if errors.Is(e, eventstore.ErrInvalidInput) || errors.Is(e, eventstore.ErrStreamNotFound) {
			t.Errorf("%v matches an unrelated sentinel", e)
		}
		var ce *eventstore.ConflictError
		if !errors.As(e, &ce) || ce.Stream != "account-42" || ce.Expected != eventstore.Exact(3) || ce.Actual != 5 {
			t.Errorf("errors.As(%v) = %+v", e, ce)
		}
		if !eventstore.IsRetryable(e) {
			t.Errorf("IsRetryable(%v) = false", e)
		}
	}
	want := `eventstore: concurrency conflict on stream "account-42": expected version 3, actual 5`
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	withReason := &eventstore.ConflictError{Stream: "s", Expected: eventstore.NoStream, Reason: "event 0 is stored elsewhere"}
	if got := withReason.Error(); !strings.HasSuffix(got, ": event 0 is stored elsewhere") || !strings.Contains(got, "no stream") {
		t.Errorf("Error() with a reason = %q", got)
	}
	for _, e := range []error{nil, errors.New("boom"), eventstore.ErrStreamNotFound, &eventstore.ValidationError{Index: -1, Field: "type", Problem: "empty"}} {
		if eventstore.IsRetryable(e) {
			t.Errorf("IsRetryable(%v) = true", e)
		}
	}
}

func TestValidationError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("wrapped: %w", &eventstore.ValidationError{Stream: "order-1", Index: 2, Field: "type", Problem: "empty"})
	if !errors.Is(err, eventstore.ErrInvalidInput) || errors.Is(err, eventstore.ErrConcurrencyConflict) {
		t.Errorf("errors.Is is wrong for %v", err)
	}
	var ve *eventstore.ValidationError
	if !errors.As(err, &ve) || ve.Field != "type" || ve.Index != 2 {
		t.Errorf("errors.As gave %+v", ve)
	}
	if got, want := ve.Error(), `eventstore: invalid type of event 2 in stream "order-1": empty`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	noIndex := &eventstore.ValidationError{Index: -1, Field: "options", Problem: "Limit must not be negative"}
	if got, want := noIndex.Error(), "eventstore: invalid options: Limit must not be negative"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	long := &eventstore.ValidationError{Stream: strings.Repeat("x", 1000), Index: -1, Field: "stream id", Problem: "too long"}
	if n := len(long.Error()); n > 200 {
		t.Errorf("an over-long stream ID is not truncated in the message (%d bytes)", n)
	}
}

func TestPrepareAppendDefaults(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	in := []eventstore.Event{
		{Type: "A"},
		{ID: id, Type: "B", SchemaVersion: 3, Data: []byte(`{"x":1}`), Metadata: eventstore.Metadata{"k": "v"}},
		{Type: "C", Data: []byte{}},
	}
	out, err := eventstore.PrepareAppend("s-1", eventstore.Any, in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 {
		t.Fatalf("got %d events", len(out))
	}
	if out[0].ID == uuid.Nil || out[0].ID.Version() != 7 {
		t.Errorf("zero ID filled with %s (version %d), want a UUIDv7", out[0].ID, out[0].ID.Version())
	}
	if out[0].ID == out[2].ID {
		t.Error("two generated IDs are equal")
	}
	if out[1].ID != id || out[1].SchemaVersion != 3 || string(out[1].Data) != `{"x":1}` || out[1].Metadata["k"] != "v" {
		t.Errorf("given fields changed: %+v", out[1])
	}
	if out[0].SchemaVersion != 1 || string(out[0].Data) != "{}" || string(out[2].Data) != "{}" {
		t.Errorf("defaults not filled: %+v %+v", out[0], out[2])
	}
	if in[0].ID != uuid.Nil || in[0].SchemaVersion != 0 || in[0].Data != nil {
		t.Errorf("PrepareAppend changed its input: %+v", in[0])
	}
	for _, ev := range []eventstore.ExpectedVersion{eventstore.Any, eventstore.NoStream, eventstore.StreamExists, eventstore.Exact(0), eventstore.Exact(1 << 40)} {
		if _, err := eventstore.PrepareAppend("s-1", ev, in[:1], 0); err != nil {
			t.Errorf("expected version %s refused: %v", ev, err)
		}
	}
}

func TestPrepareAppendRejects(t *testing.T) {
	t.Parallel()
	ok := eventstore.Event{Type: "T", Data: []byte(`{}`)}
	with := func(f func(*eventstore.Event)) []eventstore.Event {
		e := ok
		f(&e)
		return []eventstore.Event{e}
	}
	dup := uuid.New()
	cases := []struct {
		name     string
		stream   string
		expected eventstore.ExpectedVersion
		events   []eventstore.Event
		field    string
		index    int
	}{
		{"empty stream", "", eventstore.Any, []eventstore.Event{ok}, "stream id", -1},
		{"long stream", strings.Repeat("a", 256), eventstore.Any, []eventstore.Event{ok}, "stream id", -1},
		{"NUL stream", "a\x00b", eventstore.Any, []eventstore.Event{ok}, "stream id", -1},
		{"bad UTF-8 stream", "\xc3\x28", eventstore.Any, []eventstore.Event{ok}, "stream id", -1},
		{"version -4", "s", eventstore.Exact(-4), []eventstore.Event{ok}, "expected version", -1},
		{"nil events", "s", eventstore.Any, nil, "events", -1},
		{"no events", "s", eventstore.Any, []eventstore.Event{}, "events", -1},
		{"empty type", "s", eventstore.Any, with(func(e *eventstore.Event) { e.Type = "" }), "type", 0},
		{"long type", "s", eventstore.Any, with(func(e *eventstore.Event) { e.Type = strings.Repeat("t", 256) }), "type", 0},
		{"negative schema", "s", eventstore.Any, with(func(e *eventstore.Event) { e.SchemaVersion = -2 }), "schema version", 0},
		{"bad JSON", "s", eventstore.Any, with(func(e *eventstore.Event) { e.Data = []byte(`{`) }), "data", 0},
		{"NUL escape", "s", eventstore.Any, with(func(e *eventstore.Event) { e.Data = []byte(`["\u0000"]`) }), "data", 0},
		{"NUL escape after escaped backslashes", "s", eventstore.Any, with(func(e *eventstore.Event) { e.Data = []byte(`["\\\\\u0000"]`) }), "data", 0},
		{"empty metadata key", "s", eventstore.Any, with(func(e *eventstore.Event) { e.Metadata = eventstore.Metadata{"": "x"} }), "metadata", 0},
		{"bad metadata value", "s", eventstore.Any, with(func(e *eventstore.Event) { e.Metadata = eventstore.Metadata{"k": "\x00"} }), "metadata", 0},
		{"duplicate id", "s", eventstore.Any, []eventstore.Event{{ID: dup, Type: "a"}, {ID: dup, Type: "b"}}, "id", 1},
		{"second event bad", "s", eventstore.Any, []eventstore.Event{ok, {Type: "x", Data: []byte("nope")}}, "data", 1},
	}
	for _, c := range cases {
		out, err := eventstore.PrepareAppend(c.stream, c.expected, c.events, 0)
		var ve *eventstore.ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, eventstore.ErrInvalidInput) {
			t.Errorf("%s: PrepareAppend = %v, %v; want a ValidationError", c.name, out, err)
			continue
		}
		if out != nil {
			t.Errorf("%s: returned events alongside an error", c.name)
		}
		if ve.Field != c.field || ve.Index != c.index {
			t.Errorf("%s: Field %q Index %d, want %q %d (%v)", c.name, ve.Field, ve.Index, c.field, c.index, err)
		}
	}
	// An escaped backslash followed by u0000 is just text.
	if _, err := eventstore.PrepareAppend("s", eventstore.Any, with(func(e *eventstore.Event) { e.Data = []byte(`["\\u0000", "\\\\u0000"]`) }), 0); err != nil {
		t.Errorf("escaped backslash before u0000 refused: %v", err)
	}
	// Limits are inclusive.
	edge := with(func(e *eventstore.Event) {
		e.Type = strings.Repeat("t", eventstore.MaxTypeLength)
		e.Metadata = eventstore.Metadata{strings.Repeat("k", eventstore.MaxMetadataKeyLength): ""}
	})
	if _, err := eventstore.PrepareAppend(strings.Repeat("s", eventstore.MaxStreamIDLength), eventstore.Any, edge, 0); err != nil {
		t.Errorf("values at the limits refused: %v", err)
	}
}

func TestReadOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, o := range []eventstore.ReadStreamOptions{{From: -1}, {Limit: -1}, {BatchSize: -1}, {Direction: 2}, {Direction: -1}} {
		if err := o.Validate(); !errors.Is(err, eventstore.ErrInvalidInput) {
			t.Errorf("ReadStreamOptions%+v.Validate() = %v", o, err)
		}
	}
	for _, o := range []eventstore.ReadStreamOptions{{}, {Direction: eventstore.Backward, From: 3, Limit: 2, BatchSize: 1}} {
		if err := o.Validate(); err != nil {
			t.Errorf("ReadStreamOptions%+v.Validate() = %v", o, err)
		}
	}
	for _, o := range []eventstore.ReadAllOptions{{Limit: -1}, {BatchSize: -5}} {
		if err := o.Validate(); !errors.Is(err, eventstore.ErrInvalidInput) {
			t.Errorf("ReadAllOptions%+v.Validate() = %v", o, err)
		}
	}
	if got := (eventstore.ReadAllOptions{}).Batch(); got != eventstore.DefaultBatchSize {
		t.Errorf("default batch = %d", got)
	}
	if got := (eventstore.ReadStreamOptions{BatchSize: 7}).Batch(); got != 7 {
		t.Errorf("batch = %d, want 7", got)
	}
}

func TestReadAllOptionsMatch(t *testing.T) {
	t.Parallel()
	r := eventstore.Record{StreamID: "account-1", Type: "Opened"}
	cases := []struct {
		opts eventstore.ReadAllOptions
		want bool
	}{
		{eventstore.ReadAllOptions{}, true},
		{eventstore.ReadAllOptions{Categories: []string{"account"}}, true},
		{eventstore.ReadAllOptions{Categories: []string{"order", "account"}}, true},
		{eventstore.ReadAllOptions{Categories: []string{"acc"}}, false},
		{eventstore.ReadAllOptions{Types: []string{"Opened"}}, true},
		{eventstore.ReadAllOptions{Types: []string{"Closed"}}, false},
		{eventstore.ReadAllOptions{Categories: []string{"account"}, Types: []string{"Closed"}}, false},
		{eventstore.ReadAllOptions{Categories: []string{"order"}, Types: []string{"Opened"}}, false},
		{eventstore.ReadAllOptions{Categories: []string{"account"}, Types: []string{"Opened"}}, true},
	}
	for _, c := range cases {
		if got := c.opts.Match(r); got != c.want {
			t.Errorf("%+v.Match = %v, want %v", c.opts, got, c.want)
		}
	}
}

func TestErrAndCollect(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	recs, err := eventstore.Collect(eventstore.Err(boom))
	if !errors.Is(err, boom) || len(recs) != 0 {
		t.Errorf("Collect(Err(boom)) = %v, %v", recs, err)
	}
	seq := func(yield func(eventstore.Record, error) bool) {
		_ = yield(eventstore.Record{StreamVersion: 1}, nil) &&
			yield(eventstore.Record{StreamVersion: 2}, nil) &&
			yield(eventstore.Record{}, boom) &&
			yield(eventstore.Record{StreamVersion: 3}, nil)
	}
	recs, err = eventstore.Collect(seq)
	if !errors.Is(err, boom) || len(recs) != 2 {
		t.Errorf("Collect stops at the first error: got %d records, %v", len(recs), err)
	}
}

func TestMetadataClone(t *testing.T) {
	t.Parallel()
	var nilMD eventstore.Metadata
	if nilMD.Clone() != nil {
		t.Error("Clone of nil is not nil")
	}
	md := eventstore.Metadata{eventstore.CorrelationIDKey: "c", eventstore.CausationIDKey: "x"}
	c := md.Clone()
	c["k"] = "v"
	if len(md) != 2 || md.CorrelationID() != "c" || md.CausationID() != "x" {
		t.Errorf("Clone shares storage or accessors are wrong: %v", md)
	}
}

func TestEventSizeBoundsMetadataEncodings(t *testing.T) {
	t.Parallel()
	for _, md := range []eventstore.Metadata{
		{},
		{"k": "v"},
		{"html": "<a href=\"x\">&</a>", "ctl": "\x01\b\f\n\r\t\x1f", "sep": "\u2028\u2029", "ü": "ß✓🦫", `q"\`: `\"`},
	} {
		e := eventstore.Event{Type: "T", Data: []byte(`{}`), Metadata: md}
		bound := eventstore.EventSize("s", e) - len("s") - len("T") - 2
		b, err := json.Marshal(md)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > bound {
			t.Errorf("metadata %v: encoding/json writes %d bytes, more than the bound %d", md, len(b), bound)
		}
	}
}
