package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
)

// benchPayload is the shape of the benchmark events' data, as in
// internal/bench.
type benchPayload struct {
	Account  string   `json:"account"`
	Amount   int      `json:"amount"`
	Currency string   `json:"currency"`
	Note     string   `json:"note"`
	Tags     []string `json:"tags"`
}

// BenchmarkReadStream reads a 1,000-event stream with Store.ReadStream
// beside one plain SELECT of the same rows, each decoding every event's
// data, as the store section of internal/bench does.
func BenchmarkReadStream(b *testing.B) {
	pool, schema := testenv.Postgres(b)
	ctx := context.Background()
	s, err := espg.New(pool, espg.WithSchema(schema))
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	const stream, size = "long-1", 1000
	for v := 0; v < size; v += 100 {
		evs := make([]eventstore.Event, 100)
		for i := range evs {
			data, _ := json.Marshal(benchPayload{
				Account:  fmt.Sprintf("acc-%06d", (v+i)%100),
				Amount:   (v + i) * 7 % 100000,
				Currency: "EUR",
				Note:     "benchmark payload of roughly two hundred bytes, padded with some words to get there",
				Tags:     []string{"bench", "store", fmt.Sprint((v + i) % 13)},
			})
			evs[i] = eventstore.Event{Type: "MoneyDeposited", Data: data}
		}
		if _, err := s.Append(ctx, stream, eventstore.Exact(int64(v)), evs...); err != nil {
			b.Fatal(err)
		}
	}
	var p benchPayload
	sql := `SELECT position, transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at
		FROM ` + pgx.Identifier{schema}.Sanitize() + `.events WHERE stream_id = $1 ORDER BY stream_version`
	raw := func(b *testing.B) {
		rows, err := pool.Query(ctx, sql, stream)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var (
				pos, tx, version int64
				id               pgtype.UUID
				sid, typ         string
				sv               int32
				data, md         []byte
				at               time.Time
			)
			if err := rows.Scan(&pos, &tx, &id, &sid, &version, &typ, &sv, &data, &md, &at); err != nil {
				b.Fatal(err)
			}
			if err := json.Unmarshal(data, &p); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		if n != size {
			b.Fatalf("raw read %d events, want %d", n, size)
		}
	}
	read := func(b *testing.B) {
		n := 0
		for rec, err := range s.ReadStream(ctx, stream, eventstore.ReadStreamOptions{}) {
			if err != nil {
				b.Fatal(err)
			}
			if err := json.Unmarshal(rec.Data, &p); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != size {
			b.Fatalf("ReadStream read %d events, want %d", n, size)
		}
	}
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw(b)
		}
	})
	b.Run("ReadStream", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			read(b)
		}
	})
	// paired alternates the two reads, so that both see the same load on
	// a shared machine, and reports their ratio.
	b.Run("paired", func(b *testing.B) {
		var tRaw, tRead time.Duration
		for b.Loop() {
			start := time.Now()
			raw(b)
			mid := time.Now()
			read(b)
			tRaw += mid.Sub(start)
			tRead += time.Since(mid)
		}
		b.ReportMetric(float64(tRaw.Nanoseconds())/float64(b.N), "raw-ns/op")
		b.ReportMetric(float64(tRead.Nanoseconds())/float64(b.N), "read-ns/op")
		b.ReportMetric(float64(tRead)/float64(tRaw), "ratio")
	})
}
