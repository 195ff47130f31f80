package demo_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/examples/bank"
	"github.com/chronicle-go/chronicle/examples/bank/demo"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// check asserts what every mode of the demo must show: balances that add
// up, projections caught up, and the rebuilt projection current.
func check(t *testing.T, cfg demo.Config, res demo.Result, out string) {
	t.Helper()
	if res.TotalBalance != res.Deposits-res.Withdrawals {
		t.Errorf("total of balances %d != deposits %d - withdrawals %d", res.TotalBalance, res.Deposits, res.Withdrawals)
	}
	if res.Deposits <= 0 || res.Withdrawals <= 0 {
		t.Errorf("deposits %d, withdrawals %d: the burst moved no money", res.Deposits, res.Withdrawals)
	}
	// With PostgreSQL, the transfer process adds an account (slowbank) and
	// five commands (open it, fund the source, three transfers).
	extraAccounts, extraCommands := 0, 0
	if cfg.Pool != nil {
		extraAccounts, extraCommands = 1, 5
		if !strings.Contains(out, "transfer processes: 1 completed, 2 compensated, nothing pending") {
			t.Errorf("output does not show the transfer processes ending:\n%s", out)
		}
	}
	if want := cfg.Accounts + 2 + extraAccounts; res.Accounts != want { // + legacy + zed
		t.Errorf("balances has %d accounts, want %d", res.Accounts, want)
	}
	if want := cfg.Clients*cfg.Commands + 5 + extraCommands; res.Commands != want { // + the rules: withdraw, open, close, fund, transfer
		t.Errorf("commands = %d, want %d", res.Commands, want)
	}
	if res.Refused < 2 {
		t.Errorf("refused = %d, want at least the two rule demonstrations", res.Refused)
	}
	if len(res.Status) != 3 {
		t.Fatalf("status has %d projections, want 3", len(res.Status))
	}
	for _, s := range res.Status {
		// A projection's checkpoint is its last wanted event, which may sit
		// before the last append (a transfer event): no lag is the test.
		// The lag counts events an open transaction holds back from every
		// reader (HeldBack), which other tests' appends in the database
		// cause at any time: only the visible rest must be zero.
		if s.State != projection.Running || int64(s.Lag) > s.HeldBack || s.DeadLetters != 0 || s.Checkpoint.IsZero() || res.Last.Before(s.Checkpoint) {
			t.Errorf("status of %s = %+v (last append %s)", s.Name, s, res.Last)
		}
		if s.Name == bank.BalancesProjection && s.Current.Generation != 1 {
			t.Errorf("balances current build %s, want the rebuilt generation 1", s.Current)
		}
	}
	for _, want := range []string{
		"mode: ", "MoneyDeposited v2 {\"cents\":12050,\"currency\":\"EUR\"}", "refused: bank: overdraft limit exceeded",
		"OK: the balances add up", "balances@v1_1 is now current", "PROJECTION",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

func small(c demo.Config) demo.Config {
	c.Clients, c.Commands, c.Accounts, c.Seed = 4, 25, 6, 7
	// Under the load of the whole suite, a credit can take longer than
	// the demo's 500ms: the transfer meant to complete would time out.
	c.TransferTimeout = 2 * time.Second
	return c
}

func TestDemoPostgresAndNATS(t *testing.T) {
	t.Parallel()
	pool, schema := testenv.Postgres(t)
	n := testenv.NATS(t)
	var out bytes.Buffer
	var logs lockedBuffer
	cfg := small(demo.Config{Pool: pool, Schema: schema, NATSURL: n.URL(), Stream: "BANK_TEST", SubjectPrefix: "bank_test.events", Out: &out,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	res, err := demo.Run(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	check(t, cfg, res, out.String())
	if !strings.Contains(out.String(), "records confirmed by JetStream stream BANK_TEST") {
		t.Errorf("output does not show the relay:\n%s", out.String())
	}
	// The relay's and the JetStream source's logs go to the demo's logger,
	// not into the narration.
	if !strings.Contains(logs.String(), "stream=BANK_TEST") {
		t.Errorf("the relay and the source logged nothing to the demo's logger:\n%s", logs.String())
	}
	if strings.Contains(out.String(), "level=") || strings.Contains(out.String(), " INFO ") {
		t.Errorf("the narration holds log lines:\n%s", out.String())
	}
}

// lockedBuffer is a bytes.Buffer that goroutines may write at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDemoRerunsOnTheSameSchemaAndStream(t *testing.T) {
	t.Parallel()
	pool, schema := testenv.Postgres(t)
	n := testenv.NATS(t)
	for run := range 2 {
		var out bytes.Buffer
		cfg := small(demo.Config{Pool: pool, Schema: schema, NATSURL: n.URL(), Out: &out})
		res, err := demo.Run(testCtx(t), cfg)
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run+1, err, out.String())
		}
		check(t, cfg, res, out.String())
	}
}

func TestDemoPostgresWithoutNATS(t *testing.T) {
	t.Parallel()
	pool, schema := testenv.Postgres(t)
	var out bytes.Buffer
	cfg := small(demo.Config{Pool: pool, Schema: schema, Out: &out})
	res, err := demo.Run(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	check(t, cfg, res, out.String())
}

func TestDemoInMemory(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	cfg := small(demo.Config{Out: &out})
	res, err := demo.Run(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	check(t, cfg, res, out.String())
	if !strings.HasPrefix(out.String(), "mode: in memory") {
		t.Errorf("output does not start with the in-memory mode line:\n%s", out.String())
	}
}
