package aggregate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"testing"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
)

// BenchmarkUpdate compares Update with what it is built on, on the same
// store: an Append of one encoded event (append), and the ReadStream plus
// Append that Update must do (read+append, records read but not decoded).
// update minus read+append is the repository's own cost: decoding,
// applying, encoding, metadata.
func BenchmarkUpdate(b *testing.B) {
	b.Run("stub", benchUpdateStub)
	for _, kind := range []string{"memory", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			var store eventstore.Store = memory.New()
			if kind == "postgres" {
				store = pgBackend(b).events
			}
			benchUpdate(b, kind, store)
		})
	}
}

func benchUpdate(b *testing.B, kind string, store eventstore.Store) {
	ctx := context.Background()
	const streams, seeded = 64, 10
	reg := registry(b)
	repo := newRepo(b, store, reg, newAccount, aggregate.WithCategory("account"))
	data, _ := json.Marshal(Deposited{Amount: 1})
	ev := eventstore.Event{Type: "Deposited", SchemaVersion: 2, Data: data}
	seed := func(prefix string) []int64 {
		versions := make([]int64, streams)
		for i := range streams {
			evs := []eventstore.Event{{Type: "Opened", SchemaVersion: 1, Data: []byte(`{"owner":"ada"}`)}}
			for range seeded - 1 {
				evs = append(evs, ev)
			}
			res, err := store.Append(ctx, fmt.Sprintf("%s-%d", prefix, i), eventstore.NoStream, evs...)
			if err != nil {
				b.Fatal(err)
			}
			versions[i] = res.Version
		}
		return versions
	}
	b.Run("append", func(b *testing.B) {
		versions := seed("append")
		i := 0
		for b.Loop() {
			s := i % streams
			res, err := store.Append(ctx, fmt.Sprintf("append-%d", s), eventstore.Exact(versions[s]), ev)
			if err != nil {
				b.Fatal(err)
			}
			versions[s] = res.Version
			i++
		}
	})
	b.Run("read+append", func(b *testing.B) {
		seed("raw")
		i := 0
		for b.Loop() {
			stream := fmt.Sprintf("raw-%d", i%streams)
			var v int64
			for rec, err := range store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{}) {
				if err != nil {
					b.Fatal(err)
				}
				v = rec.StreamVersion
			}
			if _, err := store.Append(ctx, stream, eventstore.Exact(v), ev); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("update", func(b *testing.B) {
		seed("account")
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			if _, err := repo.Update(ctx, fmt.Sprint(i%streams), func(a *Account) error { return a.Deposit(1) }); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// stubStore serves one fixed stream from memory without copying and
// accepts every append: what is left of Update is the repository's work.
type stubStore struct {
	recs []eventstore.Record
}

func (s *stubStore) Append(_ context.Context, _ string, expected eventstore.ExpectedVersion, events ...eventstore.Event) (eventstore.AppendResult, error) {
	return eventstore.AppendResult{Version: int64(len(s.recs) + len(events))}, nil
}

func (s *stubStore) ReadStream(_ context.Context, _ string, opts eventstore.ReadStreamOptions) iter.Seq2[eventstore.Record, error] {
	return func(yield func(eventstore.Record, error) bool) {
		for _, r := range s.recs[max(opts.From, 1)-1:] {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// benchUpdateStub measures the repository's own cost per Update of a
// 10-event aggregate: decode and apply 10 events, run the command, encode
// one event, stamp metadata.
func benchUpdateStub(b *testing.B) {
	ctx := eventstore.WithCorrelationID(context.Background(), "corr-1")
	data, _ := json.Marshal(Deposited{Amount: 1})
	st := &stubStore{}
	for i := range 10 {
		r := eventstore.Record{StreamID: "account-1", StreamVersion: int64(i + 1), Type: "Deposited", SchemaVersion: 2, Data: data}
		if i == 0 {
			r.Type, r.SchemaVersion, r.Data = "Opened", 1, []byte(`{"owner":"ada"}`)
		}
		st.recs = append(st.recs, r)
	}
	repo := newRepo(b, st, registry(b), newAccount, aggregate.WithCategory("account"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := repo.Update(ctx, "1", func(a *Account) error { return a.Deposit(1) }); err != nil {
			b.Fatal(err)
		}
	}
}
