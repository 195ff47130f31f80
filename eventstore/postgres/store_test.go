package postgres_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

func TestAppendAndReadStream(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c := ctx(t)
	evs := events(3)
	evs[0].Metadata = eventstore.Metadata{eventstore.CorrelationIDKey: "corr-1", "tenant": "t1"}
	evs[1].SchemaVersion = 2
	res := mustAppend(t, s, "account-1", eventstore.NoStream, evs...)
	if res.Version != 3 || res.Position.IsZero() {
		t.Fatalf("result = %+v, want version 3 and a position", res)
	}
	recs := collect(t, s.ReadStream(c, "account-1", eventstore.ReadStreamOptions{}))
	if got := versions(recs); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("versions = %v", got)
	}
	for i, r := range recs {
		if r.StreamID != "account-1" || r.Type != "Tested" || r.RecordedAt.IsZero() {
			t.Errorf("record %d = %+v", i, r)
		}
		var d map[string]int
		if err := json.Unmarshal(r.Data, &d); err != nil || d["n"] != i {
			t.Errorf("record %d data = %s (%v)", i, r.Data, err)
		}
		if r.ID == [16]byte{} {
			t.Errorf("record %d has no ID", i)
		}
	}
	if recs[0].Metadata.CorrelationID() != "corr-1" || recs[0].Metadata["tenant"] != "t1" {
		t.Errorf("metadata = %v", recs[0].Metadata)
	}
	if recs[1].Metadata != nil {
		t.Errorf("nil metadata read back as %v", recs[1].Metadata)
	}
	if recs[0].SchemaVersion != 1 || recs[1].SchemaVersion != 2 {
		t.Errorf("schema versions = %d, %d", recs[0].SchemaVersion, recs[1].SchemaVersion)
	}
	if recs[2].Position != res.Position {
		t.Errorf("last position %v, append returned %v", recs[2].Position, res.Position)
	}
	if !recs[0].Position.Before(recs[1].Position) || !recs[1].Position.Before(recs[2].Position) {
		t.Errorf("positions not increasing: %v %v %v", recs[0].Position, recs[1].Position, recs[2].Position)
	}

	res = mustAppend(t, s, "account-1", eventstore.Exact(3), events(2)...)
	if res.Version != 5 {
		t.Fatalf("version = %d, want 5", res.Version)
	}
	info, err := s.StreamInfo(c, "account-1")
	if err != nil || !info.Exists || info.Version != 5 {
		t.Fatalf("StreamInfo = %+v, %v", info, err)
	}
	info, err = s.StreamInfo(c, "account-2")
	if err != nil || info.Exists || info.Version != 0 {
		t.Fatalf("StreamInfo(missing) = %+v, %v", info, err)
	}
}

func TestReadStreamDirectionsAndBatches(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c := ctx(t)
	mustAppend(t, s, "order-9", eventstore.NoStream, events(10)...)
	cases := []struct {
		name string
		opts eventstore.ReadStreamOptions
		want []int64
	}{
		{"forward", eventstore.ReadStreamOptions{BatchSize: 3}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"forward from", eventstore.ReadStreamOptions{From: 8, BatchSize: 2}, []int64{8, 9, 10}},
		{"forward limit", eventstore.ReadStreamOptions{From: 2, Limit: 4, BatchSize: 3}, []int64{2, 3, 4, 5}},
		{"backward", eventstore.ReadStreamOptions{Direction: eventstore.Backward, BatchSize: 4}, []int64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}},
		{"backward from", eventstore.ReadStreamOptions{Direction: eventstore.Backward, From: 3, BatchSize: 1}, []int64{3, 2, 1}},
		{"backward limit", eventstore.ReadStreamOptions{Direction: eventstore.Backward, Limit: 2}, []int64{10, 9}},
		{"past the end", eventstore.ReadStreamOptions{From: 11}, []int64{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := versions(collect(t, s.ReadStream(c, "order-9", tc.opts)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("versions = %v, want %v", got, tc.want)
			}
		})
	}
	// Stopping early stops the read.
	n := 0
	for _, err := range s.ReadStream(c, "order-9", eventstore.ReadStreamOptions{BatchSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
}

func TestReadStreamMissing(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	_, err := eventstore.Collect(s.ReadStream(ctx(t), "nobody-1", eventstore.ReadStreamOptions{}))
	if !errors.Is(err, eventstore.ErrStreamNotFound) || !strings.Contains(err.Error(), `"nobody-1"`) {
		t.Fatalf("err = %v, want ErrStreamNotFound naming the stream", err)
	}
}

func TestReadAllOrderAndFilters(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c := ctx(t)
	mustAppend(t, s, "account-1", eventstore.Any, events(2)...)
	mustAppend(t, s, "order-1", eventstore.Any, eventstore.Event{Type: "Placed"}, eventstore.Event{Type: "Shipped"})
	mustAppend(t, s, "account-2", eventstore.Any, events(1)...)
	mustAppend(t, s, "order", eventstore.Any, eventstore.Event{Type: "Placed"})

	all := readUntil(t, s, eventstore.Position{}, 6)
	if again := collect(t, s.ReadAll(c, eventstore.ReadAllOptions{BatchSize: 2})); len(again) != len(all) {
		t.Fatalf("batched read found %d records, want %d", len(again), len(all))
	}
	if len(all) != 6 {
		t.Fatalf("read %d records, want 6", len(all))
	}
	for i := 1; i < len(all); i++ {
		if !all[i-1].Position.Before(all[i].Position) {
			t.Fatalf("records %d and %d out of order: %v, %v", i-1, i, all[i-1].Position, all[i].Position)
		}
	}
	head, err := s.Head(c)
	if err != nil || head != all[5].Position {
		t.Fatalf("Head = %v, %v; want %v", head, err, all[5].Position)
	}
	after := collect(t, s.ReadAll(c, eventstore.ReadAllOptions{After: all[2].Position}))
	if len(after) != 3 || after[0].Position != all[3].Position {
		t.Fatalf("read after %v: %d records", all[2].Position, len(after))
	}
	orders := collect(t, s.ReadAll(c, eventstore.ReadAllOptions{Categories: []string{"order"}, BatchSize: 1}))
	if len(orders) != 3 {
		t.Fatalf("category order: %d records, want 3", len(orders))
	}
	placed := collect(t, s.ReadAll(c, eventstore.ReadAllOptions{Types: []string{"Placed"}, Categories: []string{"order", "account"}}))
	if len(placed) != 2 || placed[0].StreamID != "order-1" || placed[1].StreamID != "order" {
		t.Fatalf("type Placed: %+v", placed)
	}
	limited := collect(t, s.ReadAll(c, eventstore.ReadAllOptions{Limit: 4, BatchSize: 3}))
	if len(limited) != 4 {
		t.Fatalf("limit 4: %d records", len(limited))
	}
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	_, err := espg.New(nil, espg.WithSchema(`x"; DROP TABLE y; --`), espg.WithPollInterval(-1))
	if err == nil {
		t.Fatal("New accepted a nil pool, a bad schema and a negative poll interval")
	}
	for _, want := range []string{"nil pool", "invalid schema name", "poll interval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
