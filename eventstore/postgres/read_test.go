package postgres_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
)

// TestReadStreamLongStream reads a stream longer than a first buffer chunk,
// in batches that fill several chunks and reuse them, and checks every
// field of every record. Data is written as jsonb returns it.
func TestReadStreamLongStream(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	const size = 300
	types := []string{"Opened", "Deposited", "Deposited", "Withdrawn"}
	evs := make([]eventstore.Event, size)
	for i := range evs {
		evs[i] = eventstore.Event{Type: types[i%len(types)], Data: []byte(fmt.Sprintf(`{"n": %d}`, i+1))}
		if i%3 == 0 {
			evs[i].Metadata = eventstore.Metadata{"i": fmt.Sprint(i + 1)}
		}
	}
	mustAppend(t, s, "account-long", eventstore.NoStream, evs[:150]...)
	mustAppend(t, s, "other-1", eventstore.NoStream, events(3)...)
	mustAppend(t, s, "account-long", eventstore.Exact(150), evs[150:]...)

	all := make([]int64, size)
	for i := range all {
		all[i] = int64(i + 1)
	}
	back := slices.Clone(all)
	slices.Reverse(back)
	for _, tc := range []struct {
		name string
		opts eventstore.ReadStreamOptions
		want []int64
	}{
		{"default batch", eventstore.ReadStreamOptions{}, all},
		{"batches of 200", eventstore.ReadStreamOptions{BatchSize: 200}, all},
		{"batches of 7", eventstore.ReadStreamOptions{BatchSize: 7}, all},
		{"batches of 70 from 20 limit 250", eventstore.ReadStreamOptions{From: 20, Limit: 250, BatchSize: 70}, all[19:269]},
		{"backward batches of 130", eventstore.ReadStreamOptions{Direction: eventstore.Backward, BatchSize: 130}, back},
		{"backward limit 100", eventstore.ReadStreamOptions{Direction: eventstore.Backward, Limit: 100}, back[:100]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := collect(t, s.ReadStream(ctx(t), "account-long", tc.opts))
			if len(recs) != len(tc.want) {
				t.Fatalf("read %d records, want %d", len(recs), len(tc.want))
			}
			for i, r := range recs {
				v := tc.want[i]
				ev := evs[v-1]
				if r.StreamVersion != v || r.StreamID != "account-long" || r.Type != ev.Type || string(r.Data) != string(ev.Data) {
					t.Fatalf("record %d = version %d stream %q type %q data %s, want version %d stream %q type %q data %s",
						i, r.StreamVersion, r.StreamID, r.Type, r.Data, v, "account-long", ev.Type, ev.Data)
				}
				if ev.Metadata == nil {
					if r.Metadata != nil {
						t.Fatalf("version %d: metadata %v, want none", v, r.Metadata)
					}
				} else if r.Metadata["i"] != ev.Metadata["i"] {
					t.Fatalf("version %d: metadata %v, want %v", v, r.Metadata, ev.Metadata)
				}
				if r.ID == ([16]byte{}) || r.Position.Seq == 0 || r.RecordedAt.IsZero() || r.SchemaVersion != 1 {
					t.Fatalf("version %d: incomplete record %+v", v, r)
				}
				if i > 0 && (r.Position.Seq > recs[i-1].Position.Seq) != (recs[i-1].StreamVersion < r.StreamVersion) {
					t.Fatalf("version %d: position %s out of order after %s", v, r.Position, recs[i-1].Position)
				}
			}
		})
	}
}
