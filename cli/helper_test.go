package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/cli"
	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
	"github.com/chronicle-go/chronicle/upcast"
)

// env is a migrated schema and the flags that point the CLI at it.
type env struct {
	t      *testing.T
	pool   *pgxpool.Pool
	schema string
	es     *espg.Store
}

// result is what one run of the CLI printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// newEnv gives a fresh schema, migrated through the CLI.
func newEnv(t *testing.T) *env {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	es, err := espg.New(pool, espg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pool: pool, schema: schema, es: es}
	if r := e.run(cli.New(), "migrate"); r.code != 0 {
		t.Fatalf("migrate: %s", r)
	}
	return e
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// env returns the environment of a CLI run: DATABASE_URL and nothing else.
func (e *env) getenv(key string) string {
	if key == cli.EnvDatabaseURL {
		return testenv.DatabaseURL()
	}
	return ""
}

// app returns an App that reads DATABASE_URL from the test environment.
func (e *env) app(opts ...cli.Option) *cli.App {
	return cli.New(append([]cli.Option{cli.WithEnv(e.getenv)}, opts...)...)
}

// run runs app with args and --schema.
func (e *env) run(app *cli.App, args ...string) result {
	e.t.Helper()
	return e.runCtx(testCtx(e.t, 30*time.Second), app, args...)
}

func (e *env) runCtx(ctx context.Context, app *cli.App, args ...string) result {
	e.t.Helper()
	args = append(append([]string{}, args...), "--schema", e.schema, "--database-url", testenv.DatabaseURL())
	return run(ctx, app, args...)
}

// run runs app with exactly args.
func run(ctx context.Context, app *cli.App, args ...string) result {
	var out, errb bytes.Buffer
	code := app.Run(ctx, args, &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// append appends events of the given types to a stream.
func (e *env) append(stream string, events ...eventstore.Event) eventstore.AppendResult {
	e.t.Helper()
	res, err := e.es.Append(context.Background(), stream, eventstore.Any, events...)
	if err != nil {
		e.t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

// visible waits until readers of the global log see pos: an open
// transaction elsewhere in the database (another test) holds them back
// for a moment.
func (e *env) visible(pos eventstore.Position) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		head, err := e.es.Head(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		if !head.Before(pos) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("position %s not visible after 20s (head %s)", pos, head)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ev(typ, data string) eventstore.Event {
	return eventstore.Event{Type: typ, Data: []byte(data)}
}

// mustOK fails the test unless r succeeded.
func mustOK(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("want exit 0, got %s", r)
	}
	return r
}

// mustUnhealthy fails the test unless r printed a status and exited with
// cli.ExitUnhealthy, with one line on stderr containing every want.
func mustUnhealthy(t *testing.T, r result, wants ...string) result {
	t.Helper()
	mustFail(t, r, cli.ExitUnhealthy, "unhealthy: ")
	contains(t, r.stderr, wants...)
	return r
}

// mustFail fails the test unless r failed with code and one line on stderr
// containing want.
func mustFail(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %s", code, r)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "chronicle: ") {
		t.Fatalf("want one line starting with %q on stderr, got %q", "chronicle: ", r.stderr)
	}
	if !strings.Contains(lines[0], want) {
		t.Fatalf("want stderr to contain %q, got %q", want, r.stderr)
	}
}

func contains(t *testing.T, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Fatalf("want output to contain %q, got:\n%s", w, s)
		}
	}
}

func notContains(t *testing.T, s string, nots ...string) {
	t.Helper()
	for _, w := range nots {
		if strings.Contains(s, w) {
			t.Fatalf("want output not to contain %q, got:\n%s", w, s)
		}
	}
}

// jsonLines decodes one JSON object per line.
func jsonLines[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("decode JSON line %q: %v", l, err)
		}
		out = append(out, v)
	}
	return out
}

func jsonValue[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode JSON %q: %v", s, err)
	}
	return v
}

// Bank-like events for the upcast tests: Deposited v1 had "amount" in
// cents as a number; v2 calls it "cents".
type Opened struct {
	Owner string `json:"owner"`
}

type Deposited struct {
	Cents int `json:"cents"`
}

// Bad is an event the picky projection cannot stomach while failing.
type Bad struct{}

func chain(t *testing.T) *upcast.Chain {
	t.Helper()
	reg := codec.NewRegistry()
	codec.MustRegister[Opened](reg, "Opened", 1)
	codec.MustRegister[Deposited](reg, "Deposited", 2)
	codec.MustRegister[Bad](reg, "Bad", 1)
	c, err := upcast.New(reg, upcast.Fields("Deposited", 1, func(m map[string]any) error {
		m["cents"] = m["amount"]
		delete(m, "amount")
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// projections returns a working projection "totals" (cents per stream) and
// a projection "picky" that fails on events of type Bad while failing is
// set, skipping them to its dead-letter list after one attempt.
func projections(failing *atomic.Bool) []projection.Projection {
	totals := projection.Projection{
		Name:       "totals",
		Categories: []string{"account"},
		Tables:     []string{"totals"},
		Setup: func(ctx context.Context, tx projection.Tx) error {
			_, err := projpg.From(tx).Exec(ctx, `CREATE TABLE IF NOT EXISTS `+tx.Table("totals")+
				` (stream_id text PRIMARY KEY, cents bigint NOT NULL)`)
			return err
		},
		Handler: projpg.Handler(func(ctx context.Context, tx *projpg.Tx, e projection.Event) error {
			d, ok := e.Data.(Deposited)
			if !ok {
				return nil
			}
			tx.Queue(`INSERT INTO `+tx.Table("totals")+` AS t (stream_id, cents) VALUES ($1, $2)
				ON CONFLICT (stream_id) DO UPDATE SET cents = t.cents + EXCLUDED.cents`, e.Record.StreamID, d.Cents)
			return nil
		}),
	}
	picky := projection.Projection{
		Name:        "picky",
		MaxAttempts: 1,
		OnFailure:   projection.Skip,
		Handler: projection.HandlerFunc(func(ctx context.Context, tx projection.Tx, e projection.Event) error {
			if e.Record.Type == "Bad" && failing.Load() {
				return fmt.Errorf("cannot stomach %s", e.Record.StreamID)
			}
			return nil
		}),
	}
	return []projection.Projection{totals, picky}
}
