package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chronicle-go/chronicle/eventstore"
)

// The scale curve (make bench-scale, not part of make bench nor CI): one
// event log filled with COPY to 10k, 1M and 10M events (times -scale) over
// scStreams streams, measured at each size.
const (
	scStreams = 100_000
	// scRare is the number of events of the rare category, written with
	// the first size's fill, spread through it.
	scRare = 1000
	// scSection is the section's name; it runs only when -only names it.
	scSection = "scale"
)

// benchScale measures, at each size of the log: the append rate at 8
// goroutines beside raw single-row INSERTs into the same table, ReadStream
// of 100 and 1,000 events, the catch-up rate at the end of the log, the
// catch-up of a rare category (1,000 events) from the start, and the bytes
// per event against the table's heap alone (a plain table of the same
// rows). It runs only when asked for by name (-only scale).
func benchScale(ctx context.Context, env *Env) ([]Row, error) {
	if f := flag.Lookup("only"); f == nil || !slices.Contains(strings.Split(f.Value.String(), ","), scSection) {
		return nil, nil
	}
	b := &stBench{env: env}
	var err error
	if b.store, err = b.newStore(ctx, "scale"); err != nil {
		return nil, err
	}
	defer b.store.Close()
	b.rawSchema = b.store.Schema() // raw inserts go to the same table, on streams of their own
	q := pgx.Identifier{b.store.Schema()}.Sanitize()

	// Two streams to read, written first.
	for _, n := range []int{100, 1000} {
		for v := 0; v < n; v += 100 {
			evs := make([]eventstore.Event, 100)
			for i := range evs {
				evs[i] = eventstore.Event{Type: "MoneyDeposited", Data: stData(v + i)}
			}
			if _, err := b.store.Append(ctx, fmt.Sprintf("long%d-1", n), eventstore.Exact(int64(v)), evs...); err != nil {
				return nil, err
			}
		}
	}
	var rows []Row
	filled := 1100
	versions := make([]int64, scStreams)
	for _, size := range []int{env.N(10_000, 10_000), env.N(1_000_000, 10_000), env.N(10_000_000, 10_000)} {
		if size <= filled {
			continue
		}
		start := time.Now()
		rare := 0
		if filled == 1100 {
			rare = scRare
		}
		if err := scFill(ctx, env, b.store.Schema(), size-filled, rare, versions); err != nil {
			return nil, fmt.Errorf("fill to %d events: %w", size, err)
		}
		if _, err := env.Pool.Exec(ctx, "ANALYZE "+q+".events"); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "bench: scale: filled to %s events in %s\n", stCount(size), time.Since(start).Round(time.Second))
		filled = size
		r, err := scMeasure(ctx, b, q, size)
		if err != nil {
			return nil, fmt.Errorf("at %d events: %w", size, err)
		}
		rows = append(rows, r...)
		// The appends measured grew the log a little.
		var n int
		if err := env.Pool.QueryRow(ctx, "SELECT count(*) FROM "+q+".events").Scan(&n); err != nil {
			return nil, err
		}
		filled = n
	}
	return rows, nil
}

// scFill copies n events into the log, one transaction per million: rare of
// them in stream rare-1 (category "rare") spread evenly, the others spread
// over scStreams streams acct-<i>, whose versions it keeps in versions.
func scFill(ctx context.Context, env *Env, schema string, n, rare int, versions []int64) error {
	const chunk = 1_000_000
	cols := []string{"transaction_id", "event_id", "stream_id", "stream_version", "type", "schema_version", "data"}
	table := pgx.Identifier{schema, "events"}
	every := 0
	if rare > 0 {
		every = n / rare
	}
	rareVersion := int64(0)
	next := 0
	for done := 0; done < n; {
		m := min(chunk, n-done)
		err := pgx.BeginFunc(ctx, env.Pool, func(tx pgx.Tx) error {
			var xid int64
			if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&xid); err != nil {
				return err
			}
			i := 0
			_, err := tx.CopyFrom(ctx, table, cols, pgx.CopyFromFunc(func() ([]any, error) {
				if i == m {
					return nil, nil
				}
				k := done + i
				i++
				id, _ := uuid.NewV7()
				if every > 0 && k%every == 0 && rareVersion < int64(rare) {
					rareVersion++
					return []any{xid, pgtype.UUID{Bytes: id, Valid: true}, "rare-1", rareVersion, "Rare", int32(1), stData(k)}, nil
				}
				s := next % scStreams
				next++
				versions[s]++
				return []any{xid, pgtype.UUID{Bytes: id, Valid: true}, fmt.Sprintf("acct-%d", s), versions[s], "MoneyDeposited", int32(1), stData(k)}, nil
			}))
			return err
		})
		if err != nil {
			return err
		}
		done += m
	}
	return nil
}

// scMeasure takes the figures of one size of the log.
func scMeasure(ctx context.Context, b *stBench, q string, size int) ([]Row, error) {
	env := b.env
	label := stCount(size) + " events"
	var rows []Row

	// Append rate, 8 goroutines, alternating with raw INSERTs.
	per := env.N(8000, 800) / 4
	var dApp, dRaw time.Duration
	for round := -1; round < 4; round++ {
		d, err := b.rawInsert(ctx, per, 1, 8)
		if err != nil {
			return nil, err
		}
		if round >= 0 {
			dRaw += d
		}
		if d, err = b.appendRun(ctx, b.store, per, 1, 8); err != nil {
			return nil, err
		}
		if round >= 0 {
			dApp += d
		}
	}
	r := ratioRow("Scale, "+label+": Append 1 event/call, 8 goroutines", rate(4*per, dApp), rate(4*per, dRaw), "events/s", 0, true)
	r.Baseline += " (single-row INSERT, pool, same table)"
	r.Goal, r.Pass = "(curve)", ""
	rows = append(rows, r)

	// ReadStream of 100 and 1,000 events.
	for _, n := range []int{100, 1000} {
		stream := fmt.Sprintf("long%d-1", n)
		d, err := timeBest(env.N(50, 10), func() error {
			got := 0
			for _, err := range b.store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{}) {
				if err != nil {
					return err
				}
				got++
			}
			if got != n {
				return fmt.Errorf("read %d events of %s, want %d", got, stream, n)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		rows = append(rows, Row{Figure: fmt.Sprintf("Scale, %s: ReadStream of %d events", label, n),
			Value: fmt.Sprintf("%.0f µs/read", micros(d)), Goal: "(curve)"})
	}

	// Catch-up at the end of the log: the last 100k events (fewer when
	// the log is smaller), decoded.
	tail := min(env.N(100_000, 5000), size/2)
	var tx, pos int64
	if err := env.Pool.QueryRow(ctx, `SELECT transaction_id, position FROM `+q+`.events
		ORDER BY transaction_id DESC, position DESC OFFSET $1 LIMIT 1`, tail).Scan(&tx, &pos); err != nil {
		return nil, err
	}
	after := eventstore.Position{TxID: uint64(tx), Seq: uint64(pos)}
	start := time.Now()
	got := 0
	var p stPayload
	for rec, err := range b.store.ReadAll(ctx, eventstore.ReadAllOptions{After: after, Limit: tail}) {
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(rec.Data, &p); err != nil {
			return nil, err
		}
		got++
	}
	rows = append(rows, Row{Figure: fmt.Sprintf("Scale, %s: catch-up of the last %s events, decoded", label, stCount(got)),
		Value: perSec(rate(got, time.Since(start)), "events"), Goal: "(curve)"})

	// Rare category from the start.
	rare, err := timeBest(3, func() error {
		n := 0
		for _, err := range b.store.ReadAll(ctx, eventstore.ReadAllOptions{Categories: []string{"rare"}}) {
			if err != nil {
				return err
			}
			n++
		}
		if n != scRare {
			return fmt.Errorf("read %d rare events, want %d", n, scRare)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rows = append(rows, Row{Figure: fmt.Sprintf("Scale, %s: catch-up of a rare category (%d events) from the start", label, scRare),
		Value: fmt.Sprintf("%.1f ms", float64(rare.Microseconds())/1000), Goal: "<= 50 ms", Pass: yesNo(rare <= 50*time.Millisecond)})

	// Bytes per event: the table with its indexes against its heap alone.
	var total, heap, count int64
	if err := env.Pool.QueryRow(ctx, `SELECT pg_total_relation_size($1::regclass), pg_relation_size($1::regclass),
		(SELECT count(*) FROM `+q+`.events)`, q+".events").Scan(&total, &heap, &count); err != nil {
		return nil, err
	}
	r = Row{Figure: fmt.Sprintf("Scale, %s: disk per event (table, TOAST and indexes)", label),
		Value:    fmt.Sprintf("%.0f B/event", float64(total)/float64(count)),
		Baseline: fmt.Sprintf("%.0f B/event (the heap alone: a plain table of the same rows)", float64(heap)/float64(count)),
		Ratio:    fmt.Sprintf("%.2fx", float64(total)/float64(heap)), Goal: "<= 1.20x", Pass: yesNo(float64(total) <= 1.2*float64(heap))}
	rows = append(rows, r)
	return rows, nil
}
