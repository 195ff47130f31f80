package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
)

// lastQuery remembers the last query sent that reads the events table's
// log order, with its arguments.
type lastQuery struct {
	mu   sync.Mutex
	sql  string
	args []any
}

func (l *lastQuery) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "ORDER BY") && strings.Contains(d.SQL, "transaction_id, position") {
		l.mu.Lock()
		l.sql, l.args = d.SQL, d.Args
		l.mu.Unlock()
	}
	return ctx
}
func (*lastQuery) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A catch-up filtered to a rare category costs in proportion to what it
// returns, not to the log: reading the 40 events of category "rare" among
// 20,000 others examines about 40 rows, not the whole log (the plan's rows
// read plus those its filters removed).
func TestCategoryReadCostsWhatItReturns(t *testing.T) {
	t.Parallel()
	c := ctx(t)
	pool, schema := testenv.Postgres(t)
	cfg := pool.Config()
	lq := &lastQuery{}
	cfg.ConnConfig.Tracer = lq
	traced, err := pgxpool.NewWithConfig(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(traced.Close)
	s, err := espg.New(traced, espg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(c); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if i%10 == 0 {
			mustAppend(t, s, fmt.Sprintf("rare-%d", i), eventstore.NoStream, events(4)...)
		}
		mustAppend(t, s, fmt.Sprintf("common-%d", i), eventstore.NoStream, events(100)...)
	}
	// The log is read behind the oldest open transaction (ADR 0001), which
	// another test's may hold back for a moment: read until all are there.
	var got []eventstore.Record
	for deadline := time.Now().Add(10 * time.Second); len(got) != 80 && time.Now().Before(deadline); {
		got = got[:0]
		for r, err := range s.ReadAll(c, eventstore.ReadAllOptions{Categories: []string{"rare"}}) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, r)
		}
		if len(got) != 80 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if len(got) != 80 {
		t.Fatalf("read %d rare events, want 80", len(got))
	}
	lq.mu.Lock()
	sql, args := lq.sql, lq.args
	lq.mu.Unlock()
	if sql == "" {
		t.Fatal("no log read was traced")
	}
	// The first read from the start of the log, explained.
	args = append([]any(nil), args...)
	args[0], args[1] = int64(0), int64(0)
	var plan []map[string]any
	if err := traced.QueryRow(c, "EXPLAIN (ANALYZE, FORMAT JSON) "+sql, args...).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var examined func(n map[string]any) float64
	examined = func(n map[string]any) float64 {
		sum := 0.0
		if strings.Contains(fmt.Sprint(n["Node Type"]), "Scan") {
			rows, _ := n["Actual Rows"].(float64)
			loops, _ := n["Actual Loops"].(float64)
			removed, _ := n["Rows Removed by Filter"].(float64)
			sum += rows*loops + removed
		}
		if kids, ok := n["Plans"].([]any); ok {
			for _, k := range kids {
				sum += examined(k.(map[string]any))
			}
		}
		return sum
	}
	root := plan[0]["Plan"].(map[string]any)
	if n := examined(root); n > 400 {
		b, _ := json.MarshalIndent(root, "", " ")
		t.Fatalf("reading 80 events of a rare category examined %.0f rows of a 20,080-event log; plan:\n%s", n, b)
	}
}
