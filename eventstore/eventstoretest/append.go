package eventstoretest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/google/uuid"
)

func testAppendNewStream(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	events := newEvents("Opened", 3)
	events[1].Type = "Deposited"
	events[2].SchemaVersion = 4
	res := mustAppend(t, ctx, s, "account-1", eventstore.NoStream, events...)
	if res.Version != 3 {
		t.Fatalf("first append of 3 events: Version = %d, want 3", res.Version)
	}
	recs := readStream(t, ctx, s, "account-1", eventstore.ReadStreamOptions{})
	if len(recs) != 3 {
		t.Fatalf("ReadStream returned %d records, want 3", len(recs))
	}
	for i, r := range recs {
		checkRecord(t, r, "account-1", int64(i+1), events[i])
		if i > 0 && !recs[i-1].Position.Before(r.Position) {
			t.Errorf("positions not increasing within the append: %s then %s", recs[i-1].Position, r.Position)
		}
	}
	if recs[2].Position != res.Position {
		t.Errorf("AppendResult.Position = %s, want the last record's position %s", res.Position, recs[2].Position)
	}
	if d := time.Since(recs[0].RecordedAt); d > time.Hour || d < -time.Hour {
		t.Errorf("RecordedAt = %s, far from now", recs[0].RecordedAt)
	}

	res2 := mustAppend(t, ctx, s, "account-1", eventstore.Exact(3), newEvent("Deposited", 4))
	if res2.Version != 4 {
		t.Errorf("second append: Version = %d, want 4", res2.Version)
	}
	if !res.Position.Before(res2.Position) {
		t.Errorf("second append's position %s is not after the first's %s", res2.Position, res.Position)
	}
	if got := readStream(t, ctx, s, "account-1", eventstore.ReadStreamOptions{}); !slices.Equal(versions(got), seq(1, 4, 1)) {
		t.Errorf("versions after two appends = %v, want 1..4", versions(got))
	}
}

func testAppendDefaults(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	// Zero ID, zero schema version, nil and empty data.
	mustAppend(t, ctx, s, "thing-1", eventstore.Any,
		eventstore.Event{Type: "A"},
		eventstore.Event{Type: "B", Data: []byte{}},
	)
	recs := readStream(t, ctx, s, "thing-1", eventstore.ReadStreamOptions{})
	if len(recs) != 2 {
		t.Fatalf("ReadStream returned %d records, want 2", len(recs))
	}
	for _, r := range recs {
		if r.ID == uuid.Nil {
			t.Errorf("v%d: a zero event ID was not filled in", r.StreamVersion)
		}
		if r.SchemaVersion != 1 {
			t.Errorf("v%d: SchemaVersion = %d, want the default 1", r.StreamVersion, r.SchemaVersion)
		}
		if !jsonEqual(r.Data, []byte("{}")) {
			t.Errorf("v%d: empty Data stored as %q, want {}", r.StreamVersion, r.Data)
		}
	}
	if recs[0].ID == recs[1].ID {
		t.Errorf("two events got the same generated ID %s", recs[0].ID)
	}
}

func testDataRoundTrip(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	payloads := []string{
		`{}`,
		`{"amount":100,"currency":"EUR"}`,
		`{"nested":{"list":[1,2.5,true,false,null,"x"],"empty":{}}}`,
		`{"text":"h\u00e9llo \"quoted\" back\\slash / tab\t newline\n","emoji":"🦫"}`,
		`{"literal":"\\u0000 is not a NUL here"}`,
		`{"big":12345678901234567890,"neg":-17,"frac":0.125}`,
		`[1,2,3]`,
		`"just a string"`,
		`42`,
		` { "spaced" : [ 1 , 2 ] } `,
	}
	var events []eventstore.Event
	for i, p := range payloads {
		e := newEvent("Data", i)
		e.Data = []byte(p)
		events = append(events, e)
	}
	mustAppend(t, ctx, s, "data-1", eventstore.NoStream, events...)
	recs := readStream(t, ctx, s, "data-1", eventstore.ReadStreamOptions{})
	if len(recs) != len(payloads) {
		t.Fatalf("ReadStream returned %d records, want %d", len(recs), len(payloads))
	}
	for i, r := range recs {
		if !jsonEqual(r.Data, []byte(payloads[i])) {
			t.Errorf("payload %d: read back %s, want %s", i, r.Data, payloads[i])
		}
	}
}

func testMetadataRoundTrip(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	metas := []eventstore.Metadata{
		nil,
		{},
		{eventstore.CorrelationIDKey: "corr-1", eventstore.CausationIDKey: "cause-1"},
		{"tenant": "acme", "user": "ada", "empty": "", "ünïcode": "välue ✓", "quote": `"'; --`},
		{strings.Repeat("k", eventstore.MaxMetadataKeyLength): strings.Repeat("v", 2000)},
	}
	var events []eventstore.Event
	for i, m := range metas {
		e := newEvent("Meta", i)
		e.Metadata = m
		events = append(events, e)
	}
	mustAppend(t, ctx, s, "meta-1", eventstore.NoStream, events...)
	recs := readStream(t, ctx, s, "meta-1", eventstore.ReadStreamOptions{})
	if len(recs) != len(metas) {
		t.Fatalf("ReadStream returned %d records, want %d", len(recs), len(metas))
	}
	for i, r := range recs {
		if !sameMetadata(r.Metadata, metas[i]) {
			t.Errorf("metadata %d: read back %v, want %v", i, r.Metadata, metas[i])
		}
	}
	if got := recs[2].Metadata.CorrelationID(); got != "corr-1" {
		t.Errorf("CorrelationID() = %q, want corr-1", got)
	}
	if got := recs[2].Metadata.CausationID(); got != "cause-1" {
		t.Errorf("CausationID() = %q, want cause-1", got)
	}
	all := readAllUpTo(t, ctx, s, recs[len(recs)-1].Position)
	for i, r := range all {
		if !sameMetadata(r.Metadata, metas[i]) {
			t.Errorf("ReadAll metadata %d: read back %v, want %v", i, r.Metadata, metas[i])
		}
	}
}

func testCopiesData(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	e := newEvent("Copied", 1)
	e.Data = []byte(`{"v":"original"}`)
	e.Metadata = eventstore.Metadata{"k": "original"}
	mustAppend(t, ctx, s, "copy-1", eventstore.NoStream, e)

	// Mutating what was appended must not change what is stored.
	copy(e.Data, `{"v":"CHANGED!"}`)
	e.Metadata["k"] = "changed"
	recs := readStream(t, ctx, s, "copy-1", eventstore.ReadStreamOptions{})
	if len(recs) != 1 || !jsonEqual(recs[0].Data, []byte(`{"v":"original"}`)) || recs[0].Metadata["k"] != "original" {
		t.Fatalf("after mutating the appended event, the stored record is %s %v", recs[0].Data, recs[0].Metadata)
	}

	// Mutating what was read must not either.
	for i := range recs[0].Data {
		recs[0].Data[i] = ' '
	}
	recs[0].Metadata["k"] = "changed"
	recs[0].Metadata["new"] = "x"
	again := readStream(t, ctx, s, "copy-1", eventstore.ReadStreamOptions{})
	if !jsonEqual(again[0].Data, []byte(`{"v":"original"}`)) || !sameMetadata(again[0].Metadata, eventstore.Metadata{"k": "original"}) {
		t.Fatalf("after mutating a read record, the stored record is %s %v", again[0].Data, again[0].Metadata)
	}
	all := readAllUpTo(t, ctx, s, again[0].Position)
	all[0].Data[0] = 'x'
	all[0].Metadata["k"] = "changed"
	again = readStream(t, ctx, s, "copy-1", eventstore.ReadStreamOptions{})
	if !jsonEqual(again[0].Data, []byte(`{"v":"original"}`)) || again[0].Metadata["k"] != "original" {
		t.Fatalf("after mutating a record from ReadAll, the stored record is %s %v", again[0].Data, again[0].Metadata)
	}
}

// testOddStreamIDs appends to stream IDs full of quotes, SQL, LIKE
// wildcards and non-ASCII text: each must be accepted and stored verbatim.
func testOddStreamIDs(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	streams := []string{
		`'; DROP TABLE events; --`,
		`"quoted"-1`,
		`it's-2`,
		`back\slash-3`,
		`a%b-1`,
		`a_b-1`,
		`axb-1`,
		`$1-$2`,
		`账户-42 ✓`,
		` spaced - id `,
		strings.Repeat("x", eventstore.MaxStreamIDLength),
		strings.Repeat("é", eventstore.MaxStreamIDLength/2), // 254 bytes
	}
	var last eventstore.Position
	for i, id := range streams {
		e := newEvent("Odd", i)
		e.Type = `Type'"; SELECT 1; --` // types are as opaque as stream IDs
		res := mustAppend(t, ctx, s, id, eventstore.NoStream, e)
		if res.Version != 1 {
			t.Errorf("Append(%q): Version = %d, want 1", id, res.Version)
		}
		last = res.Position
	}
	for i, id := range streams {
		recs := readStream(t, ctx, s, id, eventstore.ReadStreamOptions{})
		if len(recs) != 1 {
			t.Errorf("ReadStream(%q) returned %d records, want 1", id, len(recs))
			continue
		}
		e := newEvent("", i)
		if recs[0].StreamID != id || recs[0].Type != `Type'"; SELECT 1; --` || !jsonEqual(recs[0].Data, e.Data) {
			t.Errorf("ReadStream(%q) = %q %q %s, want the stream ID and type verbatim", id, recs[0].StreamID, recs[0].Type, recs[0].Data)
		}
		wantStreamInfo(t, ctx, s, id, true, 1)
	}
	all := readAllUpTo(t, ctx, s, last)
	if len(all) != len(streams) {
		t.Fatalf("ReadAll returned %d records, want %d", len(all), len(streams))
	}
	for i, r := range all {
		if r.StreamID != streams[i] {
			t.Errorf("ReadAll record %d: stream %q, want %q", i, r.StreamID, streams[i])
		}
	}
	// Categories are compared exactly, never as patterns.
	for _, cat := range []string{"a_b", "a%b", eventstore.Category(streams[0]), `"quoted"`, "$1"} {
		got := readAll(t, ctx, s, eventstore.ReadAllOptions{Categories: []string{cat}})
		if len(got) != 1 || eventstore.Category(got[0].StreamID) != cat {
			t.Errorf("ReadAll(Categories: [%q]) = %d records %v, want exactly the one stream of that category", cat, len(got), streamIDs(got))
		}
	}
	for _, cat := range []string{"a", "%", "_", "a_", ""} {
		if got := readAll(t, ctx, s, eventstore.ReadAllOptions{Categories: []string{cat}}); len(got) != 0 {
			t.Errorf("ReadAll(Categories: [%q]) = %v, want nothing", cat, streamIDs(got))
		}
	}
}

func streamIDs(recs []eventstore.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.StreamID
	}
	return out
}

func testAppendCanceled(t *testing.T, s eventstore.Store) {
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	if _, err := s.Append(ctx, "canceled-1", eventstore.Any, newEvent("Never", 1)); err == nil {
		t.Fatal("Append with a canceled context succeeded")
	}
	wantStreamInfo(t, testContext(t), s, "canceled-1", false, 0)
}
