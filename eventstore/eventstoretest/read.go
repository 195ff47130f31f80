package eventstoretest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
)

func testReadStreamOptions(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	const stream = "read-1"
	var events []eventstore.Event
	// Ten events in three appends, with another stream in between.
	for i, n := range []int{4, 3, 3} {
		batch := newEvents(fmt.Sprintf("T%d", i), n)
		mustAppend(t, ctx, s, stream, eventstore.Any, batch...)
		mustAppend(t, ctx, s, "read-2", eventstore.Any, newEvents("Other", 2)...)
		events = append(events, batch...)
	}
	fw, bw := eventstore.Forward, eventstore.Backward
	cases := []struct {
		opts eventstore.ReadStreamOptions
		want []int64
	}{
		{eventstore.ReadStreamOptions{}, seq(1, 10, 1)},
		{eventstore.ReadStreamOptions{BatchSize: 1}, seq(1, 10, 1)},
		{eventstore.ReadStreamOptions{BatchSize: 3}, seq(1, 10, 1)},
		{eventstore.ReadStreamOptions{BatchSize: 5}, seq(1, 10, 1)},
		{eventstore.ReadStreamOptions{BatchSize: 10}, seq(1, 10, 1)},
		{eventstore.ReadStreamOptions{From: 1}, seq(1, 10, 1)},
		{eventstore.ReadStreamOptions{From: 4}, seq(4, 10, 1)},
		{eventstore.ReadStreamOptions{From: 10}, seq(10, 10, 1)},
		{eventstore.ReadStreamOptions{From: 11}, nil},
		{eventstore.ReadStreamOptions{From: 1000}, nil},
		{eventstore.ReadStreamOptions{Limit: 3}, seq(1, 3, 1)},
		{eventstore.ReadStreamOptions{Limit: 10}, seq(1, 10, 1)},
		{eventstore.ReadStreamOptions{Limit: 100}, seq(1, 10, 1)},
		{eventstore.ReadStreamOptions{From: 4, Limit: 3}, seq(4, 6, 1)},
		{eventstore.ReadStreamOptions{From: 3, Limit: 5, BatchSize: 2}, seq(3, 7, 1)},
		{eventstore.ReadStreamOptions{From: 8, Limit: 5, BatchSize: 2}, seq(8, 10, 1)},
		{eventstore.ReadStreamOptions{Direction: fw, Limit: 4, BatchSize: 4}, seq(1, 4, 1)},
		{eventstore.ReadStreamOptions{Direction: bw}, seq(10, 1, -1)},
		{eventstore.ReadStreamOptions{Direction: bw, BatchSize: 1}, seq(10, 1, -1)},
		{eventstore.ReadStreamOptions{Direction: bw, BatchSize: 3}, seq(10, 1, -1)},
		{eventstore.ReadStreamOptions{Direction: bw, BatchSize: 5}, seq(10, 1, -1)},
		{eventstore.ReadStreamOptions{Direction: bw, From: 4}, seq(4, 1, -1)},
		{eventstore.ReadStreamOptions{Direction: bw, From: 1}, seq(1, 1, -1)},
		{eventstore.ReadStreamOptions{Direction: bw, From: 10}, seq(10, 1, -1)},
		{eventstore.ReadStreamOptions{Direction: bw, From: 50}, seq(10, 1, -1)},
		{eventstore.ReadStreamOptions{Direction: bw, Limit: 1}, seq(10, 10, 1)},
		{eventstore.ReadStreamOptions{Direction: bw, Limit: 3}, seq(10, 8, -1)},
		{eventstore.ReadStreamOptions{Direction: bw, From: 7, Limit: 3, BatchSize: 2}, seq(7, 5, -1)},
		{eventstore.ReadStreamOptions{Direction: bw, From: 2, Limit: 5, BatchSize: 2}, seq(2, 1, -1)},
	}
	for _, c := range cases {
		recs := readStream(t, ctx, s, stream, c.opts)
		if !slices.Equal(versions(recs), c.want) {
			t.Errorf("ReadStream(%+v) versions = %v, want %v", c.opts, versions(recs), c.want)
			continue
		}
		for _, r := range recs {
			checkRecord(t, r, stream, r.StreamVersion, events[r.StreamVersion-1])
		}
		for i := 1; i < len(recs); i++ {
			if (c.opts.Direction == fw) != recs[i-1].Position.Before(recs[i].Position) {
				t.Errorf("ReadStream(%+v): positions %s then %s are in the wrong order", c.opts, recs[i-1].Position, recs[i].Position)
			}
		}
	}
}

func testReadStreamNotFound(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	mustAppend(t, ctx, s, "present-1", eventstore.NoStream, newEvent("Here", 1))
	for _, opts := range []eventstore.ReadStreamOptions{
		{},
		{Direction: eventstore.Backward},
		{From: 3, Limit: 2, BatchSize: 1},
	} {
		n := 0
		var got error
		for r, err := range s.ReadStream(ctx, "absent-1", opts) {
			n++
			if err == nil {
				t.Fatalf("ReadStream of a missing stream yielded a record %+v", r)
			}
			got = err
		}
		if n != 1 {
			t.Errorf("ReadStream of a missing stream yielded %d items, want one error", n)
		}
		if !errors.Is(got, eventstore.ErrStreamNotFound) {
			t.Fatalf("ReadStream of a missing stream: %v, want ErrStreamNotFound", got)
		}
		if !contains(got.Error(), "absent-1") {
			t.Errorf("error %q does not name the stream", got)
		}
		if errors.Is(got, eventstore.ErrInvalidInput) || eventstore.IsRetryable(got) {
			t.Errorf("not-found error %v matches ErrInvalidInput or is retryable", got)
		}
	}
	// A stream that exists but has nothing from the version asked is not
	// an error.
	if recs := readStream(t, ctx, s, "present-1", eventstore.ReadStreamOptions{From: 5}); len(recs) != 0 {
		t.Errorf("ReadStream from past the end returned %d records", len(recs))
	}
}

// logFixture appends events of several categories and types and returns
// the whole log as read back.
func logFixture(t *testing.T, s eventstore.Store) []eventstore.Record {
	t.Helper()
	ctx := testContext(t)
	appends := []struct {
		stream string
		types  []string
	}{
		{"account-1", []string{"Opened", "Deposited"}},
		{"order-1", []string{"Placed"}},
		{"account-2", []string{"Opened"}},
		{"ledger", []string{"Posted", "Posted"}},
		{"account-1", []string{"Deposited", "Withdrawn", "Deposited"}},
		{"order-1", []string{"Shipped", "Deposited"}},
		{"accounts-1", []string{"Opened"}},
		{"account-2", []string{"Deposited"}},
		{"order-2", []string{"Placed", "Cancelled"}},
		{"account-1", []string{"Closed"}},
	}
	var last eventstore.Position
	n := 0
	for _, a := range appends {
		var events []eventstore.Event
		for _, typ := range a.types {
			n++
			events = append(events, newEvent(typ, n))
		}
		last = mustAppend(t, ctx, s, a.stream, eventstore.Any, events...).Position
	}
	all := readAllUpTo(t, ctx, s, last)
	if len(all) != n {
		t.Fatalf("ReadAll returned %d records, want %d", len(all), n)
	}
	return all
}

// expectAll computes what ReadAll with opts must return from the whole log.
func expectAll(all []eventstore.Record, opts eventstore.ReadAllOptions) []eventstore.Record {
	var out []eventstore.Record
	for _, r := range all {
		if !opts.After.Before(r.Position) || !opts.Match(r) {
			continue
		}
		if opts.Limit > 0 && len(out) == opts.Limit {
			break
		}
		out = append(out, r)
	}
	return out
}

func checkReadAll(t *testing.T, s eventstore.Store, all []eventstore.Record, opts eventstore.ReadAllOptions) {
	t.Helper()
	got := readAll(t, testContext(t), s, opts)
	want := expectAll(all, opts)
	if !slices.Equal(ids(got), ids(want)) {
		t.Errorf("ReadAll(%+v):\n got %d records %v\nwant %d records %v", opts, len(got), describe(got), len(want), describe(want))
		return
	}
	for i := range got {
		if got[i].Position != want[i].Position || got[i].StreamVersion != want[i].StreamVersion {
			t.Errorf("ReadAll(%+v) record %d: %s v%d, want %s v%d", opts, i,
				got[i].Position, got[i].StreamVersion, want[i].Position, want[i].StreamVersion)
		}
	}
}

func describe(recs []eventstore.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = fmt.Sprintf("%s v%d %s", r.StreamID, r.StreamVersion, r.Type)
	}
	return out
}

func testReadAllOptions(t *testing.T, s eventstore.Store) {
	all := logFixture(t, s)
	checkLogOrder(t, all)
	mid := all[len(all)/2].Position
	lastPos := all[len(all)-1].Position
	for _, opts := range []eventstore.ReadAllOptions{
		{},
		{BatchSize: 1},
		{BatchSize: 3},
		{BatchSize: len(all)},
		{BatchSize: len(all) + 1},
		{After: all[0].Position},
		{After: mid},
		{After: mid, BatchSize: 2},
		{After: all[len(all)-2].Position},
		{After: lastPos},
		{After: eventstore.Position{TxID: lastPos.TxID + 1000, Seq: lastPos.Seq + 1000}},
		{Limit: 1},
		{Limit: 5, BatchSize: 2},
		{Limit: 4, BatchSize: 4},
		{Limit: len(all)},
		{Limit: 1000},
		{After: mid, Limit: 3, BatchSize: 1},
	} {
		checkReadAll(t, s, all, opts)
	}
	// Reading on from the last record read, page by page, gives the whole
	// log exactly once.
	ctx := testContext(t)
	var paged []eventstore.Record
	var after eventstore.Position
	for range len(all) + 1 {
		page := readAll(t, ctx, s, eventstore.ReadAllOptions{After: after, Limit: 4, BatchSize: 3})
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Position
	}
	if !slices.Equal(ids(paged), ids(all)) {
		t.Errorf("paging through the log by After gave %v, want %v", describe(paged), describe(all))
	}
}

func testReadAllFilters(t *testing.T, s eventstore.Store) {
	all := logFixture(t, s)
	mid := all[len(all)/2].Position
	for _, opts := range []eventstore.ReadAllOptions{
		{Categories: []string{"account"}},
		{Categories: []string{"order"}},
		{Categories: []string{"ledger"}},
		{Categories: []string{"accounts"}},
		{Categories: []string{"account", "order"}},
		{Categories: []string{"nothing"}},
		{Types: []string{"Deposited"}},
		{Types: []string{"Opened", "Closed"}},
		{Types: []string{"Nothing"}},
		{Categories: []string{"account"}, Types: []string{"Deposited"}},
		{Categories: []string{"account", "order"}, Types: []string{"Deposited", "Placed"}},
		{Categories: []string{"ledger"}, Types: []string{"Deposited"}},
		{Categories: []string{"account"}, BatchSize: 1},
		{Categories: []string{"account"}, BatchSize: 2, Limit: 3},
		{Types: []string{"Deposited"}, BatchSize: 2},
		{Types: []string{"Deposited"}, After: mid},
		{Categories: []string{"order"}, Types: []string{"Placed", "Shipped"}, After: all[1].Position, BatchSize: 1, Limit: 2},
	} {
		checkReadAll(t, s, all, opts)
	}
}

func testReadAllEmpty(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	for _, opts := range []eventstore.ReadAllOptions{{}, {BatchSize: 1}, {Categories: []string{"x"}}} {
		if got := readAll(t, ctx, s, opts); len(got) != 0 {
			t.Errorf("ReadAll(%+v) of an empty store returned %d records", opts, len(got))
		}
	}
}

// testLongStream reads a stream longer than the default batch size through
// every read path, and checks that they agree on every field.
func testLongStream(t *testing.T, s eventstore.Store) {
	ctx := testContext(t)
	const stream, n = "long-1", eventstore.DefaultBatchSize + 88
	var events []eventstore.Event
	var last eventstore.AppendResult
	for len(events) < n {
		batch := newEvents("Long", min(200, n-len(events)))
		for i := range batch {
			batch[i].Metadata = eventstore.Metadata{"i": fmt.Sprint(len(events) + i)}
		}
		last = mustAppend(t, ctx, s, stream, eventstore.Exact(int64(len(events))), batch...)
		events = append(events, batch...)
	}
	if last.Version != n {
		t.Fatalf("Version = %d, want %d", last.Version, n)
	}
	fwd := readStream(t, ctx, s, stream, eventstore.ReadStreamOptions{})
	if !slices.Equal(versions(fwd), seq(1, n, 1)) {
		t.Fatalf("forward read: %d records, want versions 1..%d", len(fwd), n)
	}
	for i, r := range fwd {
		checkRecord(t, r, stream, int64(i+1), events[i])
	}
	bwd := readStream(t, ctx, s, stream, eventstore.ReadStreamOptions{Direction: eventstore.Backward})
	if !slices.Equal(versions(bwd), seq(n, 1, -1)) {
		t.Fatalf("backward read: %d records, want versions %d..1", len(bwd), n)
	}
	all := readAllUpTo(t, ctx, s, last.Position)
	if len(all) != n {
		t.Fatalf("ReadAll returned %d records, want %d", len(all), n)
	}
	f := follow(t, s, eventstore.ReadAllOptions{})
	followed := f.next(t, n)
	f.stop(t)
	for i := range fwd {
		for _, other := range []struct {
			path string
			r    eventstore.Record
		}{{"backward", bwd[n-1-i]}, {"ReadAll", all[i]}, {"Follow", followed[i]}} {
			if !sameRecord(fwd[i], other.r) {
				t.Fatalf("v%d differs between ReadStream and %s:\n%+v\n%+v", i+1, other.path, fwd[i], other.r)
			}
		}
	}
}

// sameRecord compares two reads of one record.
func sameRecord(a, b eventstore.Record) bool {
	return a.ID == b.ID && a.StreamID == b.StreamID && a.StreamVersion == b.StreamVersion &&
		a.Position == b.Position && a.Type == b.Type && a.SchemaVersion == b.SchemaVersion &&
		jsonEqual(a.Data, b.Data) && sameMetadata(a.Metadata, b.Metadata) && a.RecordedAt.Equal(b.RecordedAt)
}
