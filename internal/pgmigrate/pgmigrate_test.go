package pgmigrate_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/internal/testenv"
)

func TestValidateSchema(t *testing.T) {
	t.Parallel()
	good := []string{"chronicle", "_x", "billing_2", strings.Repeat("a", 63)}
	bad := []string{"", "Chronicle", "1abc", "a-b", `a"b`, "a b", "x; DROP SCHEMA public", strings.Repeat("a", 64), "pg_catalog", "ünï"}
	for _, s := range good {
		if err := pgmigrate.ValidateSchema(s); err != nil {
			t.Errorf("ValidateSchema(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if err := pgmigrate.ValidateSchema(s); err == nil {
			t.Errorf("ValidateSchema(%q) accepted it", s)
		}
	}
	if got := pgmigrate.Quote(`we"ird`); got != `"we""ird"` {
		t.Errorf("Quote = %s", got)
	}
}

func TestLockKeyDiffersByName(t *testing.T) {
	t.Parallel()
	a, b := pgmigrate.LockKey("migrate:a"), pgmigrate.LockKey("migrate:b")
	if a == b || a != pgmigrate.LockKey("migrate:a") {
		t.Fatalf("LockKey: %d, %d", a, b)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"m/0002_second.sql": {Data: []byte("SELECT 2")},
		"m/0001_first.sql":  {Data: []byte("SELECT 1")},
		"m/README.md":       {Data: []byte("ignored")},
	}
	ms, err := pgmigrate.Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Version != 1 || ms[1].Version != 2 || ms[1].SQL != "SELECT 2" {
		t.Fatalf("Load = %+v", ms)
	}
	for name, f := range map[string]fstest.MapFS{
		"bad name":  {"m/first.sql": {Data: []byte("x")}},
		"zero":      {"m/0000_zero.sql": {Data: []byte("x")}},
		"duplicate": {"m/0001_a.sql": {Data: []byte("x")}, "m/1_b.sql": {Data: []byte("y")}},
		"no dir":    {},
	} {
		if _, err := pgmigrate.Load(f, "m"); err == nil {
			t.Errorf("%s: Load accepted it", name)
		}
	}
}

func TestApply(t *testing.T) {
	t.Parallel()
	pool, schema := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ms := []pgmigrate.Migration{
		{Version: 1, Name: "0001_t.sql", SQL: "CREATE TABLE {{schema}}.t (n int)"},
		{Version: 2, Name: "0002_row.sql", SQL: "INSERT INTO {{schema}}.t VALUES (1)"},
	}
	// Concurrent and repeated applies run each migration once.
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() { errs <- pgmigrate.Apply(ctx, pool, schema, "test", ms) }()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := pgmigrate.Apply(ctx, pool, schema, "test", ms); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+pgmigrate.Quote(schema)+".t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows = %d, %v; want each migration applied once", n, err)
	}

	// A failing migration rolls back with the ones before it in the same
	// call, and names itself.
	more := append(ms, pgmigrate.Migration{Version: 3, Name: "0003_ok.sql", SQL: "CREATE TABLE {{schema}}.u (n int)"},
		pgmigrate.Migration{Version: 4, Name: "0004_bad.sql", SQL: "SELECT nonsense FROM nowhere"})
	err := pgmigrate.Apply(ctx, pool, schema, "test", more)
	if err == nil || !strings.Contains(err.Error(), "0004_bad.sql") {
		t.Fatalf("bad migration: %v", err)
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".u").Scan(&exists); err != nil || exists {
		t.Fatalf("table u exists = %v (%v) after a failed Apply", exists, err)
	}

	// Another component's migrations are counted apart.
	if err := pgmigrate.Apply(ctx, pool, schema, "other", []pgmigrate.Migration{{Version: 1, Name: "0001_o.sql", SQL: "CREATE TABLE {{schema}}.o (n int)"}}); err != nil {
		t.Fatal(err)
	}
	if err := pgmigrate.Apply(ctx, pool, `bad"schema`, "test", ms); err == nil {
		t.Fatal("Apply accepted a bad schema name")
	}
	if err := pgmigrate.Apply(ctx, pool, schema, "", ms); err == nil {
		t.Fatal("Apply accepted an empty component")
	}
}
