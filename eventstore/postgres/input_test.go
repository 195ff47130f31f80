package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
)

// TestInsertRefusalIsInvalidInput checks that input PostgreSQL refuses at
// the insert, beyond what the shared validation catches (here JSON nested
// deeper than a server with a small max_stack_depth parses), is reported
// as ErrInvalidInput naming the event, not as an error of unknown outcome.
func TestInsertRefusalIsInvalidInput(t *testing.T) {
	t.Parallel()
	_, schema := testenv.Postgres(t)
	cfg, err := pgxpool.ParseConfig(testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["max_stack_depth"] = "100kB"
	c := ctx(t)
	pool, err := pgxpool.NewWithConfig(c, cfg)
	if err == nil {
		err = pool.Ping(c)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		t.Skipf("cannot connect with max_stack_depth set (not a superuser?): %v", err)
	}
	t.Cleanup(pool.Close)
	s, err := espg.New(pool, espg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(c); err != nil {
		t.Fatal(err)
	}
	deep := eventstore.Event{Type: "Deep", Data: []byte(strings.Repeat("[", 5000) + strings.Repeat("]", 5000))}
	fine := eventstore.Event{Type: "Fine", Data: []byte(`{"ok":true}`)}

	for _, tc := range []struct {
		name string
		evs  []eventstore.Event
	}{
		{"one event", []eventstore.Event{deep}},
		{"second of three", []eventstore.Event{fine, deep, fine}},
	} {
		index := 0
		if len(tc.evs) > 1 {
			index = 1
		}
		check := func(what string, err error) {
			t.Helper()
			var ve *eventstore.ValidationError
			if !errors.Is(err, eventstore.ErrInvalidInput) || !errors.As(err, &ve) {
				t.Fatalf("%s, %s: err = %v, want ErrInvalidInput", tc.name, what, err)
			}
			if ve.Stream != "deep-1" || ve.Index != index || ve.Type != "Deep" || ve.Field != "data" {
				t.Errorf("%s, %s: ValidationError = %+v, want stream deep-1, event %d of type Deep, field data", tc.name, what, ve, index)
			}
			if !strings.Contains(err.Error(), "stack depth") {
				t.Errorf("%s, %s: error %q does not give PostgreSQL's reason", tc.name, what, err)
			}
		}
		_, err := s.Append(c, "deep-1", eventstore.Any, tc.evs...)
		check("Append", err)

		tx, err := pool.Begin(c)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.AppendTx(c, tx, "deep-1", eventstore.Any, tc.evs...)
		check("AppendTx", err)
		_ = tx.Rollback(c)
	}
	if info, err := s.StreamInfo(c, "deep-1"); err != nil || info.Exists {
		t.Fatalf("StreamInfo(deep-1) = %+v, %v; want nothing written", info, err)
	}
}

// TestEventSizeBoundsReadBack checks that eventstore.EventSize is an upper
// bound of the data as PostgreSQL returns it, exact when the data has no
// duplicate keys and reads back no shorter than written.
func TestEventSizeBoundsReadBack(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	c := ctx(t)
	payloads := []string{
		`{}`, `[]`, `0`, `-0`, `-0.0`, `"x"`, `true`, `null`,
		`{"n":1e100000}`,
		`[1e5, 1E+5, -1.50e1, 0.001, 1.0e-3, 12345e-2, 0e200000, 0.000e131072, 1.00e-16381]`,
		`{"a":{"b":[1,2,{"c":null}]},"d":[],"e":{}}`,
		`{ "spaced" :  [ 1 , 2 ] }`,
		`{"s":"\u00e9\/\b\f\n\r\t\"\\\u0001\u001f\u007f\u2028<>&"}`,
		`["\ud83e\udd2b", "🦫", "ключ", "\u0041"]`,
		`{"dup":1,"dup":22}`,
		`[` + strings.Repeat(`"\u00e9",`, 100) + `1]`,
	}
	for i, p := range payloads {
		stream := fmt.Sprintf("size-%d", i)
		e := eventstore.Event{Type: "Sized", Data: []byte(p)}
		mustAppend(t, s, stream, eventstore.NoStream, e)
		recs := collect(t, s.ReadStream(c, stream, eventstore.ReadStreamOptions{}))
		got := len(recs[0].Data)
		bound := eventstore.EventSize(stream, e) - len(stream) - len(e.Type)
		switch {
		case got > bound:
			t.Errorf("%.60s: reads back as %d bytes, more than the bound %d: %.200s", p, got, bound, recs[0].Data)
		case got != bound && bound != len(p) && !strings.Contains(p, "dup"):
			t.Errorf("%.60s: reads back as %d bytes, bound %d is not exact: %.200s", p, got, bound, recs[0].Data)
		}
	}
	// Metadata: the bound covers both the jsonb text and encoding/json's.
	md := eventstore.Metadata{"k": "<v>", "quote": `"\`, "ctl": "\x01\n", "ü": "ß"}
	e := eventstore.Event{Type: "Sized", Metadata: md}
	res := mustAppend(t, s, "size-md", eventstore.NoStream, e)
	var text string
	if err := pool.QueryRow(c, "SELECT metadata::text FROM "+s.Schema()+".events WHERE position = $1", int64(res.Position.Seq)).Scan(&text); err != nil {
		t.Fatal(err)
	}
	if bound := eventstore.EventSize("size-md", e) - len("size-md") - len("Sized") - 2; len(text) > bound {
		t.Errorf("metadata reads back as %d bytes (%s), more than the bound %d", len(text), text, bound)
	}
}

// TestMaxEventSizeOption checks the option and what the store reports.
func TestMaxEventSizeOption(t *testing.T) {
	t.Parallel()
	pool, schema := testenv.Postgres(t)
	s, err := espg.New(pool, espg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxEventSize() != eventstore.DefaultMaxEventSize {
		t.Errorf("default MaxEventSize() = %d, want %d", s.MaxEventSize(), eventstore.DefaultMaxEventSize)
	}
	for _, bad := range []int{0, -1, 256 << 20} {
		if _, err := espg.New(pool, espg.WithSchema(schema), espg.WithMaxEventSize(bad)); err == nil || !strings.Contains(err.Error(), "max event size") {
			t.Errorf("WithMaxEventSize(%d): err = %v, want an error about the max event size", bad, err)
		}
	}
	s, err = espg.New(pool, espg.WithSchema(schema), espg.WithMaxEventSize(100))
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxEventSize() != 100 {
		t.Fatalf("MaxEventSize() = %d, want 100", s.MaxEventSize())
	}
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Migrate(c); err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(c, "small-1", eventstore.Any, eventstore.Event{Type: "T", Data: []byte(`[1e100]`)})
	if !errors.Is(err, eventstore.ErrEventTooLarge) || !strings.Contains(err.Error(), "limit of 100") || !strings.Contains(err.Error(), `"small-1"`) {
		t.Fatalf("err = %v, want ErrEventTooLarge naming the stream and the limit", err)
	}
}
