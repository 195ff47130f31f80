package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/examples/bank"
	"github.com/chronicle-go/chronicle/examples/bank/demo"
	"github.com/chronicle-go/chronicle/internal/testenv"
)

// TestBankctlOnTheDemosData runs the demo in a test schema, then drives
// bankctl as an operator would: status, an upcast stream, a rebuild.
func TestBankctlOnTheDemosData(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool, schema := testenv.Postgres(t)
	if _, err := demo.Run(ctx, demo.Config{Pool: pool, Schema: schema, Clients: 2, Commands: 10, Accounts: 4}); err != nil {
		t.Fatal(err)
	}
	app, err := newApp()
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append(args, "--schema", schema, "--database-url", testenv.DatabaseURL())
		if code := app.Run(ctx, args, &stdout, &stderr); code != 0 {
			t.Fatalf("bankctl %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
		}
		return stdout.String()
	}

	var status []map[string]any
	if err := json.Unmarshal([]byte(run("projections", "status", "--json")), &status); err != nil {
		t.Fatalf("projections status --json: %v", err)
	}
	if len(status) != 3 {
		t.Fatalf("status lists %d projections, want balances, statements, daily_totals: %v", len(status), status)
	}

	show := run("streams", "show", "account-legacy")
	for _, want := range []string{"MoneyDeposited v2", `"cents":12050`, "bank.MoneyDeposited"} {
		if !strings.Contains(show, want) {
			t.Errorf("streams show account-legacy lacks %q:\n%s", want, show)
		}
	}
	if raw := run("streams", "show", "account-legacy", "--raw"); !strings.Contains(raw, `"amount"`) {
		t.Errorf("streams show --raw does not show the stored v1 payload:\n%s", raw)
	}

	if out := run("projections", "rebuild", "statements"); !strings.Contains(out, "statements@v1_1") {
		t.Errorf("rebuild output lacks the new build:\n%s", out)
	}
}

// TestBankctlRelayDefaultsToTheBankStream checks that the relay commands
// default to the bank's JetStream stream and subjects, and say so in
// --help.
func TestBankctlRelayDefaultsToTheBankStream(t *testing.T) {
	t.Parallel()
	app, err := newApp()
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"relay", "--help"}, {"relay", "status", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := app.Run(context.Background(), cmd, &stdout, &stderr); code != 0 {
			t.Fatalf("bankctl %s: exit %d: %s", strings.Join(cmd, " "), code, stderr.String())
		}
		for _, want := range []string{`(default "` + bank.Stream + `")`, `(default "` + bank.SubjectPrefix + `")`} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("bankctl %s lacks %s:\n%s", strings.Join(cmd, " "), want, stdout.String())
			}
		}
	}
}

// TestBankctlDoesNotLinkTheNATSServer checks that the operations binary
// links only what it runs: the embedded NATS server is the demo's, not
// bankctl's.
func TestBankctlDoesNotLinkTheNATSServer(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/nats-io/nats-server") {
			t.Fatalf("bankctl links %s", p)
		}
	}
}
