package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// The generic binary shows the projections a service registered, and
// whether its runner is alive, without the service's code.
func TestBinaryShowsProjectionsFromTheDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, schema := testenv.Postgres(t)
	env := []string{"DATABASE_URL=" + testenv.DatabaseURL()}
	if out, err := command(ctx, env, "migrate", "--schema", schema).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v: %s", err, out)
	}
	store, err := projpg.New(pool, projpg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	b := projection.Build{Name: "balances", Version: 2}
	if err := store.SetTarget(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := store.Beat(ctx, []projection.Heartbeat{{Build: b, Owner: "bank-1:42", State: projection.Rebuilding, Interval: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	out, err := command(ctx, env, "projections", "status", "--json", "--schema", schema).Output()
	if err != nil {
		t.Fatalf("projections status: %v", err)
	}
	var sts []struct {
		Name, Target, State, Owner string
	}
	if err := json.Unmarshal(out, &sts); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(sts) != 1 || sts[0].Name != "balances" || sts[0].Target != "balances@v2" || sts[0].State != "rebuilding" || sts[0].Owner != "bank-1:42" {
		t.Fatalf("projections status --json: %s", out)
	}
	out, err = command(ctx, env, "dlq", "list", "--schema", schema).Output()
	if err != nil || !strings.Contains(string(out), "(no dead letters)") {
		t.Fatalf("dlq list: %v: %s", err, out)
	}
}
