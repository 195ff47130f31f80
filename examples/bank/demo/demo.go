// Package demo is the bank example's end-to-end demonstration, run by
// make demo (examples/bank/cmd/demo) and by the example's tests: it migrates,
// runs a burst of commands from concurrent clients, waits for the
// projections to apply them (read-your-writes), checks that the balances add
// up, rebuilds a projection with a progress bar and prints the projections'
// status, saying step by step what happens.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/examples/bank"
	"github.com/chronicle-go/chronicle/process"
	"github.com/chronicle-go/chronicle/projection"
	projjs "github.com/chronicle-go/chronicle/projection/jetstream"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
	"github.com/chronicle-go/chronicle/snapshot"
	snappg "github.com/chronicle-go/chronicle/snapshot/postgres"
)

// Defaults of Config. The schema, stream and prefix are the bank's own
// (bank.Schema, bank.Stream, bank.SubjectPrefix), where bankctl looks.
const (
	DefaultSchema   = bank.Schema
	DefaultStream   = bank.Stream
	DefaultPrefix   = bank.SubjectPrefix
	DefaultClients  = 8
	DefaultCommands = 50
	DefaultAccounts = 16
)

// Config says where and how much the demo runs. The zero value runs in
// memory with the defaults, printing nowhere.
type Config struct {
	// Pool is the PostgreSQL to use; nil runs everything in memory.
	Pool *pgxpool.Pool
	// Schema is the PostgreSQL schema the demo owns: it is dropped and
	// created again at the start, so reruns start afresh. Default
	// DefaultSchema.
	Schema string
	// NATSURL is the NATS server (with JetStream) the relay publishes to
	// and the runner reads from. Empty with a Pool: the runner follows the
	// event store directly. Ignored without a Pool.
	NATSURL string
	// Stream and SubjectPrefix name the JetStream stream, which the demo
	// deletes at the start. Defaults DefaultStream and DefaultPrefix.
	Stream, SubjectPrefix string
	// Mode is printed first, in one line: where the demo runs.
	Mode string
	// Clients, Commands (per client) and Accounts size the burst.
	Clients, Commands, Accounts int
	// Seed makes the clients' choices repeatable.
	Seed uint64
	// Out receives the narration; nil discards it.
	Out io.Writer
	// Logger receives the logs of the event store, the relay, the
	// JetStream source, the runner and the bank's repositories; nil means
	// slog.Default(). cmd/demo logs warnings and errors to stderr, so that
	// they stay visible without interleaving info lines with the narration.
	Logger *slog.Logger
	// TransferTimeout is the transfer process's timeout of a credit
	// (default DefaultTransferTimeout); the slow bank's credits take three
	// times as long. Tests on a loaded machine give more, so the credit
	// that must complete in time does.
	TransferTimeout time.Duration
	// TracerProvider and MeterProvider, when set, trace and measure the
	// event store, the relay, the projection runner, the bank's
	// repositories and the transfer process (make demo-observe sets them;
	// nil keeps OpenTelemetry's global providers, no-ops unless set).
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Serve, when set, is called after the last step while the relay and
	// the projection runner still run, with the running service; the demo
	// ends when it returns (its error is the demo's). make demo-observe
	// serves /metrics and the console in it until interrupted.
	Serve func(ctx context.Context, s Service) error
}

// Service is the running bank service handed to [Config.Serve].
type Service struct {
	// Bank runs commands; Runner runs the projections.
	Bank   *bank.Bank
	Runner *projection.Runner
	// Store is the event store; Postgres is it as *espg.Store, nil in
	// memory.
	Store    eventstore.Store
	Postgres *espg.Store
	// Pool and Schema are the PostgreSQL and schema (nil and "" in
	// memory); Processes administers the transfer processes there.
	Pool      *pgxpool.Pool
	Schema    string
	Processes *process.Admin
	// Relay is the relay's options (schema and name) when one runs, for
	// relay.ReadLeadership and the health checks; nil without NATS.
	Relay []relay.Option
}

// Result is what the demo measured and checked.
type Result struct {
	// Commands is the number of commands sent; Refused those the
	// aggregates refused (overdraft, closed account).
	Commands, Refused int
	// Deposits and Withdrawals are the money the clients' accepted
	// commands brought in and took out, in cents.
	Deposits, Withdrawals int64
	// TotalBalance is the sum of the balances read model after the burst.
	TotalBalance int64
	// Accounts is the number of rows of the balances read model.
	Accounts int
	// Last is the position of the last append, waited for.
	Last eventstore.Position
	// Conflicts is the number of concurrency conflicts the repositories
	// met and retried; SnapshotsTaken the snapshots stored.
	Conflicts, SnapshotsTaken int64
	// Status is the projections' status at the end.
	Status []projection.Status
}

// Run runs the demo and narrates it to cfg.Out. It returns an error when a
// step fails or when the balances do not add up.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg = withDefaults(cfg)
	d := &demo{cfg: cfg, w: cfg.Out, start: time.Now()}
	return d.run(ctx)
}

func withDefaults(c Config) Config {
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultPrefix
	}
	if c.Clients <= 0 {
		c.Clients = DefaultClients
	}
	if c.Commands <= 0 {
		c.Commands = DefaultCommands
	}
	if c.Accounts < 2 {
		c.Accounts = DefaultAccounts
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.TransferTimeout <= 0 {
		c.TransferTimeout = DefaultTransferTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Mode == "" {
		switch {
		case c.Pool == nil:
			c.Mode = "in memory: memory event store, memory read models, runner follows the store (no NATS)"
		case c.NATSURL == "":
			c.Mode = "PostgreSQL schema " + c.Schema + ", runner follows the store (no NATS)"
		default:
			c.Mode = "PostgreSQL schema " + c.Schema + " + NATS " + c.NATSURL + " -> relay -> JetStream -> projection runner"
		}
	}
	return c
}

// serve hands the running service to Config.Serve.
func (d *demo) serve(ctx context.Context) error {
	s := Service{Bank: d.bank, Runner: d.runner, Store: d.events, Pool: d.cfg.Pool}
	if es, ok := d.events.(*espg.Store); ok {
		s.Postgres, s.Schema = es, d.cfg.Schema
		pa, err := process.NewAdmin(d.cfg.Pool, es, d.cfg.Schema)
		if err != nil {
			return err
		}
		s.Processes = pa
	}
	if d.relay != nil {
		s.Relay = []relay.Option{relay.WithSchema(d.cfg.Schema)}
	}
	return d.cfg.Serve(ctx, s)
}

// topology is where the demo's relay publishes and its source reads.
func (d *demo) topology() wire.Topology {
	return wire.Topology{Stream: d.cfg.Stream, SubjectPrefix: d.cfg.SubjectPrefix}
}

type demo struct {
	cfg   Config
	w     io.Writer
	start time.Time
	n     int

	events eventstore.Store
	bank   *bank.Bank
	rm     bank.ReadModel
	runner *projection.Runner
	relay  *relay.Relay
	nc     *nats.Conn

	progress atomic.Pointer[progressBar]

	mu   sync.Mutex
	last eventstore.Position
	res  Result
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.w, format+"\n", args...) }

func (d *demo) step(title string) {
	d.n++
	fmt.Fprintf(d.w, "\n[%d] %s\n", d.n, title)
}

// saw records the position of an append, to wait for the last one.
func (d *demo) saw(res eventstore.AppendResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last.Before(res.Position) {
		d.last = res.Position
	}
}

func (d *demo) run(ctx context.Context) (Result, error) {
	d.say("mode: %s", d.cfg.Mode)
	if err := d.setup(ctx); err != nil {
		return d.res, err
	}
	defer func() {
		if d.nc != nil {
			d.nc.Close()
		}
	}()

	// The relay and the runner run in the background until the demo ends.
	bg, bgCtx := errgroup.WithContext(ctx)
	bgCtx, stop := context.WithCancel(bgCtx)
	defer func() { stop(); _ = bg.Wait() }()
	if err := d.startBackground(ctx, bg, bgCtx); err != nil {
		return d.res, err
	}

	steps := []func(context.Context) error{
		d.legacy, d.openAccounts, d.burst, d.rules, d.processTransfers, d.waitForProjections,
		d.balances, d.statement, d.dailyTotals, d.rebuild, d.status,
	}
	if d.cfg.Serve != nil {
		steps = append(steps, d.serve)
	}
	for _, s := range steps {
		if err := s(ctx); err != nil {
			return d.res, err
		}
		if err := bgCtx.Err(); err != nil {
			stop()
			if werr := bg.Wait(); werr != nil {
				return d.res, fmt.Errorf("demo: background: %w", werr)
			}
			return d.res, fmt.Errorf("demo: background stopped: %w", err)
		}
	}
	stop()
	if err := bg.Wait(); err != nil {
		return d.res, fmt.Errorf("demo: background: %w", err)
	}
	st := d.bank.Stats()
	d.res.Conflicts, d.res.SnapshotsTaken = st.Conflicts, st.SnapshotsTaken
	d.say("\ndone in %s.", time.Since(d.start).Round(time.Millisecond))
	return d.res, nil
}

// setup migrates (or, in memory, builds) the stores and the bank.
func (d *demo) setup(ctx context.Context) error {
	t0 := time.Now()
	opts := []bank.Option{}
	var pstore projection.Store
	if d.cfg.Pool == nil {
		d.step("Set up in memory")
		d.events = memory.New()
		mstore := projection.NewMemoryStore()
		rm, err := bank.NewMemoryReadModel(mstore)
		if err != nil {
			return err
		}
		d.rm, pstore = rm, mstore
		opts = append(opts, bank.WithSnapshots(snapshot.NewMemoryStore(), snapshot.Every(20)))
		d.say("    memory event store, memory snapshots, memory read models: nothing to migrate")
	} else {
		d.step("Migrate")
		pool, schema := d.cfg.Pool, d.cfg.Schema
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			return fmt.Errorf("demo: drop schema %s: %w", schema, err)
		}
		esOpts := []espg.Option{espg.WithSchema(schema), espg.WithPollInterval(100 * time.Millisecond), espg.WithLogger(d.cfg.Logger)}
		if d.cfg.TracerProvider != nil {
			esOpts = append(esOpts, espg.WithTracerProvider(d.cfg.TracerProvider))
		}
		if d.cfg.MeterProvider != nil {
			esOpts = append(esOpts, espg.WithMeterProvider(d.cfg.MeterProvider))
		}
		es, err := espg.New(pool, esOpts...)
		if err != nil {
			return err
		}
		snaps, err := snappg.New(pool, snappg.WithSchema(schema))
		if err != nil {
			return err
		}
		ps, err := projpg.New(pool, projpg.WithSchema(schema))
		if err != nil {
			return err
		}
		rm, err := bank.NewPostgresReadModel(pool, schema)
		if err != nil {
			return err
		}
		migrations := []struct {
			what string
			fn   func(context.Context) error
		}{{"event store", es.Migrate}, {"snapshots", snaps.Migrate}, {"projections", ps.Migrate}}
		if d.cfg.NATSURL != "" {
			if err := d.connectNATS(ctx); err != nil {
				return err
			}
			relayOpts := []relay.Option{relay.WithSchema(schema),
				relay.WithTopology(d.topology()), relay.WithLogger(d.cfg.Logger),
				relay.WithBackoff(50*time.Millisecond, time.Second), relay.WithLockPollInterval(100 * time.Millisecond)}
			if d.cfg.TracerProvider != nil {
				relayOpts = append(relayOpts, relay.WithTracerProvider(d.cfg.TracerProvider))
			}
			if d.cfg.MeterProvider != nil {
				relayOpts = append(relayOpts, relay.WithMeterProvider(d.cfg.MeterProvider))
			}
			r, err := relay.New(es, d.nc, pool, relayOpts...)
			if err != nil {
				return err
			}
			d.relay = r
			migrations = append(migrations, struct {
				what string
				fn   func(context.Context) error
			}{"relay checkpoint", r.Migrate})
		}
		var done []string
		for _, m := range migrations {
			if err := m.fn(ctx); err != nil {
				return fmt.Errorf("demo: migrate %s: %w", m.what, err)
			}
			done = append(done, m.what)
		}
		d.events, d.rm, pstore = es, rm, ps
		opts = append(opts, bank.WithSnapshots(snaps, snapshot.Every(20)))
		d.say("    dropped and recreated schema %q; migrated %s (%s)", schema, strings.Join(done, ", "), since(t0))
	}
	opts = append(opts, bank.WithLogger(d.cfg.Logger), bank.WithTracerProvider(d.cfg.TracerProvider), bank.WithMeterProvider(d.cfg.MeterProvider))
	b, err := bank.New(d.events, opts...)
	if err != nil {
		return err
	}
	d.bank = b

	var source projection.Option
	if d.nc != nil {
		js, err := njs.New(d.nc)
		if err != nil {
			return fmt.Errorf("demo: jetstream: %w", err)
		}
		src, err := projjs.NewSource(js, d.events, projjs.WithTopology(d.topology()),
			projjs.WithConsumerPrefix("bank_demo"), projjs.WithLogger(d.cfg.Logger))
		if err != nil {
			return err
		}
		source = projection.WithSource(src)
	} else {
		source = projection.WithSource(projection.NewStoreSource(d.events))
	}
	runnerOpts := []projection.Option{
		source,
		projection.WithDecoder(b.Chain()),
		projection.WithBackoff(20*time.Millisecond, time.Second),
		projection.WithHaltPoll(100 * time.Millisecond),
		projection.WithLogger(d.cfg.Logger),
		projection.WithProgress(func(p projection.Progress) {
			if bar := d.progress.Load(); bar != nil {
				bar.update(p)
			}
		}),
	}
	if d.cfg.TracerProvider != nil {
		runnerOpts = append(runnerOpts, projection.WithTracerProvider(d.cfg.TracerProvider))
	}
	if d.cfg.MeterProvider != nil {
		runnerOpts = append(runnerOpts, projection.WithMeterProvider(d.cfg.MeterProvider))
	}
	if es, ok := d.events.(*espg.Store); ok {
		runnerOpts = append(runnerOpts, projection.WithLogStatus(projpg.LogStatus(es)))
	}
	r, err := projection.NewRunner(d.events, pstore, d.rm.Projections(), runnerOpts...)
	if err != nil {
		return err
	}
	d.runner = r
	return nil
}

func (d *demo) connectNATS(ctx context.Context) error {
	nc, err := nats.Connect(d.cfg.NATSURL, nats.Name("bank-demo"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("demo: connect to NATS at %s: %w", d.cfg.NATSURL, err)
	}
	d.nc = nc
	// Projections read consumers with several filter subjects, which NATS
	// servers before 2.10 silently ignore: refuse them up front.
	if v := nc.ConnectedServerVersion(); !atLeast(v, 2, 10) {
		return fmt.Errorf("demo: NATS server at %s is version %s; the JetStream projection source needs 2.10 or newer (consumers with several filter subjects)", d.cfg.NATSURL, v)
	}
	js, err := njs.New(nc)
	if err != nil {
		return fmt.Errorf("demo: jetstream: %w", err)
	}
	// The schema was just dropped, positions start again: so must the stream.
	if err := js.DeleteStream(ctx, d.cfg.Stream); err != nil && !errors.Is(err, njs.ErrStreamNotFound) {
		return fmt.Errorf("demo: delete JetStream stream %s: %w", d.cfg.Stream, err)
	}
	return nil
}

func (d *demo) startBackground(ctx context.Context, bg *errgroup.Group, bgCtx context.Context) error {
	if d.relay != nil {
		d.step("Start the relay and the projection runner")
	} else {
		d.step("Start the projection runner")
	}
	t0 := time.Now()
	if d.relay != nil {
		bg.Go(func() error { return d.relay.Run(bgCtx) })
		// The relay creates the JetStream stream when it leads; the
		// runner's consumers need it.
		js, _ := njs.New(d.nc)
		for {
			if _, err := js.Stream(ctx, d.cfg.Stream); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			if time.Since(t0) > 15*time.Second {
				return fmt.Errorf("demo: the relay did not create JetStream stream %s within 15s", d.cfg.Stream)
			}
		}
		d.say("    relay: leader, publishing the event log to JetStream stream %s (subjects %s.>)", d.cfg.Stream, d.cfg.SubjectPrefix)
	}
	bg.Go(func() error { return d.runner.Run(bgCtx) })
	how := "following the event store"
	if d.relay != nil {
		how = "one durable JetStream consumer each"
	}
	d.say("    runner: %s (%s) (%s)", strings.Join(d.runner.Projections(), ", "), how, since(t0))
	return nil
}

// legacy appends events as the first version of the bank stored them, then
// loads the account through the repository: the upcaster migrates them.
func (d *demo) legacy(ctx context.Context) error {
	d.step("Import an account written by version 1 of the bank (MoneyDeposited at schema v1)")
	opened, _ := json.Marshal(bank.AccountOpened{Owner: "Grace (legacy)", Currency: "EUR", OverdraftLimit: 0})
	amounts := []string{"120.50", "79.5"}
	events := []eventstore.Event{{Type: bank.TypeAccountOpened, Data: opened}}
	for _, a := range amounts {
		events = append(events, eventstore.Event{Type: bank.TypeMoneyDeposited, SchemaVersion: 1, Data: bank.LegacyDeposit(a)})
	}
	res, err := d.events.Append(ctx, d.bank.AccountStream("legacy"), eventstore.NoStream, events...)
	if err != nil {
		return fmt.Errorf("demo: import legacy account: %w", err)
	}
	d.saw(res)
	acc, err := d.bank.Account(ctx, "legacy")
	if err != nil {
		return err
	}
	up, err := d.bank.Chain().Upcast(eventstore.Record{StreamID: "account-legacy", Type: bank.TypeMoneyDeposited, SchemaVersion: 1, Data: bank.LegacyDeposit(amounts[0])})
	if err != nil {
		return err
	}
	d.say("    stored:  MoneyDeposited v1 %s", bank.LegacyDeposit(amounts[0]))
	d.say("    read as: MoneyDeposited v%d %s   (the upcaster runs on every read: loads, projections, rebuilds)", up[0].SchemaVersion, up[0].Data)
	d.say("    account legacy loaded through the repository: balance %s %s after %d events", bank.FormatCents(acc.Balance), acc.Currency, acc.Version())
	d.res.Deposits += acc.Balance
	return nil
}

func owner(i int) string {
	owners := [...]string{"Ada", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "Hedy", "Ivan", "John",
		"Ken", "Leslie", "Margaret", "Niklaus", "Ole", "Peter", "Radia", "Shafi", "Tim", "Whitfield"}
	return owners[i%len(owners)]
}

func accountName(i int) string { return fmt.Sprintf("acct-%02d", i+1) }

func (d *demo) openAccounts(ctx context.Context) error {
	d.step(fmt.Sprintf("Open %d accounts with 500.00 EUR each (overdraft limit 100.00)", d.cfg.Accounts))
	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.cfg.Clients)
	for i := range d.cfg.Accounts {
		g.Go(func() error {
			id := accountName(i)
			cctx := eventstore.WithCorrelationID(gctx, "open-"+id)
			res, err := d.bank.OpenAccount(cctx, id, owner(i), "EUR", 100_00)
			if err != nil {
				return err
			}
			d.saw(res)
			if res, err = d.bank.Deposit(cctx, id, 500_00); err != nil {
				return err
			}
			d.saw(res)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("demo: open accounts: %w", err)
	}
	d.res.Deposits += int64(d.cfg.Accounts) * 500_00
	d.say("    %d accounts opened and funded (%s)", d.cfg.Accounts, since(t0))
	return nil
}

type tally struct {
	deposits, withdrawals, transfers                int
	refusedWithdrawals, refusedTransfers            int
	depositCents, withdrawalCents, transferredCents int64
}

func (d *demo) burst(ctx context.Context) error {
	d.step(fmt.Sprintf("Burst: %d concurrent clients send %d commands each (deposits, withdrawals, transfers)", d.cfg.Clients, d.cfg.Commands))
	t0 := time.Now()
	tallies := make([]tally, d.cfg.Clients)
	g, gctx := errgroup.WithContext(ctx)
	for c := range d.cfg.Clients {
		g.Go(func() error {
			rng := rand.New(rand.NewPCG(d.cfg.Seed, uint64(c)))
			t := &tallies[c]
			for n := range d.cfg.Commands {
				cmdID := fmt.Sprintf("c%d-%03d", c+1, n+1)
				cctx := eventstore.WithCorrelationID(gctx, cmdID)
				// Clients favour the first accounts, so they collide.
				i := min(rng.IntN(d.cfg.Accounts), rng.IntN(d.cfg.Accounts))
				acct := accountName(i)
				var res eventstore.AppendResult
				var err error
				switch k := rng.IntN(100); {
				case k < 35:
					cents := int64(10_00 + rng.IntN(190_00))
					if res, err = d.bank.Deposit(cctx, acct, cents); err == nil {
						t.deposits++
						t.depositCents += cents
					}
				case k < 60:
					cents := int64(10_00 + rng.IntN(390_00))
					res, err = d.bank.Withdraw(cctx, acct, cents)
					switch {
					case err == nil:
						t.withdrawals++
						t.withdrawalCents += cents
					case errors.Is(err, bank.ErrOverdraftExceeded):
						t.refusedWithdrawals++
						err = nil
					}
				default:
					to := accountName((i + 1 + rng.IntN(d.cfg.Accounts-1)) % d.cfg.Accounts)
					cents := int64(10_00 + rng.IntN(290_00))
					res, err = d.bank.Transfer(cctx, cmdID, acct, to, cents)
					switch {
					case err == nil:
						t.transfers++
						t.transferredCents += cents
					case errors.Is(err, bank.ErrOverdraftExceeded):
						t.refusedTransfers++
						err = nil
					}
				}
				if err != nil {
					return fmt.Errorf("client %d, command %s: %w", c+1, cmdID, err)
				}
				if !res.Position.IsZero() {
					d.saw(res)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("demo: burst: %w", err)
	}
	var t tally
	for _, x := range tallies {
		t.deposits += x.deposits
		t.withdrawals += x.withdrawals
		t.transfers += x.transfers
		t.refusedWithdrawals += x.refusedWithdrawals
		t.refusedTransfers += x.refusedTransfers
		t.depositCents += x.depositCents
		t.withdrawalCents += x.withdrawalCents
		t.transferredCents += x.transferredCents
	}
	total := d.cfg.Clients * d.cfg.Commands
	el := time.Since(t0)
	d.res.Commands += total
	d.res.Refused += t.refusedWithdrawals + t.refusedTransfers
	d.res.Deposits += t.depositCents
	d.res.Withdrawals += t.withdrawalCents
	st := d.bank.Stats()
	d.say("    %d commands in %s (%.0f commands/s)", total, el.Round(time.Millisecond), float64(total)/el.Seconds())
	d.say("    deposits     %4d accepted                  %12s EUR in", t.deposits, bank.FormatCents(t.depositCents))
	d.say("    withdrawals  %4d accepted, %3d refused    %12s EUR out   (refused: overdraft limit)", t.withdrawals, t.refusedWithdrawals, bank.FormatCents(t.withdrawalCents))
	d.say("    transfers    %4d completed, %3d refused   %12s EUR moved (refused: overdraft limit)", t.transfers, t.refusedTransfers, bank.FormatCents(t.transferredCents))
	d.say("    %d concurrency conflicts met, each retried by Repository.Update on a fresh load; %d snapshots taken (every 20 events)", st.Conflicts, st.SnapshotsTaken)
	return nil
}

// rules shows the aggregates refusing commands, in a fixed order.
func (d *demo) rules(ctx context.Context) error {
	d.step("The rules live in the aggregates")
	ctx = eventstore.WithCorrelationID(ctx, "rules")
	_, err := d.bank.Withdraw(ctx, accountName(0), 1_000_000_00)
	if !errors.Is(err, bank.ErrOverdraftExceeded) {
		return fmt.Errorf("demo: a withdrawal of 1,000,000.00 was not refused: %v", err)
	}
	d.say("    withdraw 1,000,000.00 from %s       -> refused: %v", accountName(0), err)
	d.res.Commands++
	d.res.Refused++

	res, err := d.bank.OpenAccount(ctx, "zed", "Zed", "EUR", 0)
	if err != nil {
		return err
	}
	d.saw(res)
	if res, err = d.bank.CloseAccount(ctx, "zed", "moved away"); err != nil {
		return err
	}
	d.saw(res)
	d.say("    open account zed, then close it         -> ok")
	d.res.Commands += 2

	// Fund the source first: after the random burst it may sit at its
	// overdraft limit, and then the transfer would be refused for that
	// instead of for the closed account.
	from := accountName(1)
	if res, err = d.bank.Deposit(ctx, from, 25_00); err != nil {
		return err
	}
	d.saw(res)
	d.res.Commands++
	d.res.Deposits += 25_00
	res, err = d.bank.Transfer(ctx, "to-zed", from, "zed", 25_00)
	if !errors.Is(err, bank.ErrAccountClosed) {
		return fmt.Errorf("demo: a transfer to a closed account was not refused: %v", err)
	}
	d.saw(res)
	d.res.Commands++
	d.res.Refused++
	d.say("    transfer 25.00 %s -> zed (closed)  -> refused: %v", from, err)
	tr, err := d.bank.LoadTransfer(ctx, "to-zed")
	if err != nil {
		return err
	}
	if tr.Status != bank.TransferCancelled {
		return fmt.Errorf("demo: transfer to-zed is %s, want %s", tr.Status, bank.TransferCancelled)
	}
	d.say("      %s had been debited first, so the transfer credited it back and is now %q", from, tr.Status)
	return nil
}

func (d *demo) waitForProjections(ctx context.Context) error {
	d.step("Read your writes: wait until every projection has applied the last append")
	d.mu.Lock()
	last := d.last
	d.mu.Unlock()
	d.res.Last = last
	t0 := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, name := range d.runner.Projections() {
		if err := d.runner.WaitFor(wctx, name, last); err != nil {
			return fmt.Errorf("demo: wait for projection %s to reach %s: %w", name, last, err)
		}
	}
	d.say("    last append at position %s; %s applied it %s later", last, strings.Join(d.runner.Projections(), ", "), since(t0))
	return nil
}

func (d *demo) balances(ctx context.Context) error {
	d.step("Balances (read model \"balances\")")
	rows, err := d.rm.Balances(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(d.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "    ACCOUNT\tOWNER\tBALANCE\tSTATUS\tVERSION\t")
	var total int64
	for _, b := range rows {
		fmt.Fprintf(tw, "    %s\t%s\t%s %s\t%s\t%d\t\n", b.AccountID, b.Owner, bank.FormatCents(b.Cents), b.Currency, b.Status, b.Version)
		total += b.Cents
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	d.res.TotalBalance, d.res.Accounts = total, len(rows)

	totals, err := d.rm.DailyTotals(ctx)
	if err != nil {
		return err
	}
	var in, out, tin, tout int64
	for _, t := range totals {
		in, out, tin, tout = in+t.Deposits, out+t.Withdrawals, tin+t.TransfersIn, tout+t.TransfersOut
	}
	want := d.res.Deposits - d.res.Withdrawals
	d.say("")
	d.say("    total of the balances                         %14s EUR", bank.FormatCents(total))
	d.say("    deposits - withdrawals the clients saw accepted %12s EUR  (%s - %s)", bank.FormatCents(want), bank.FormatCents(d.res.Deposits), bank.FormatCents(d.res.Withdrawals))
	d.say("    deposits - withdrawals in the daily totals      %12s EUR", bank.FormatCents(in-out))
	d.say("    transfer legs in the daily totals: %s out, %s in (refunds included)", bank.FormatCents(tout), bank.FormatCents(tin))
	var problems []string
	if total != want {
		problems = append(problems, fmt.Sprintf("total of balances %s != deposits - withdrawals %s", bank.FormatCents(total), bank.FormatCents(want)))
	}
	if in-out != want {
		problems = append(problems, fmt.Sprintf("daily totals %s != deposits - withdrawals %s", bank.FormatCents(in-out), bank.FormatCents(want)))
	}
	if tin != tout {
		problems = append(problems, fmt.Sprintf("transfers in %s != transfers out %s", bank.FormatCents(tin), bank.FormatCents(tout)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("demo: the balances do not add up: %s", strings.Join(problems, "; "))
	}
	d.say("    OK: the balances add up (total == deposits - withdrawals; every transfer debit has its credit)")
	return nil
}

func (d *demo) statement(ctx context.Context) error {
	acct := accountName(1)
	d.step(fmt.Sprintf("Statement of %s, last 6 lines (read model \"statements\")", acct))
	lines, err := d.rm.Statement(ctx, acct, 6)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(d.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    VERSION\tKIND\tAMOUNT\tBALANCE\tTRANSFER\tCORRELATION\tCAUSATION")
	for _, l := range lines {
		fmt.Fprintf(tw, "    %d\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Version, l.Kind, bank.FormatCents(l.Cents), bank.FormatCents(l.BalanceCents),
			dash(l.TransferID), dash(l.CorrelationID), dash(short(l.CausationID)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	d.say("    (a transfer's legs share its correlation ID; each leg's causation ID is the event that led to it)")
	return nil
}

func (d *demo) dailyTotals(ctx context.Context) error {
	d.step("Daily totals (read model \"daily_totals\")")
	totals, err := d.rm.DailyTotals(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(d.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "    DAY\tCURRENCY\tDEPOSITS\tWITHDRAWALS\tTRANSFERS OUT\tTRANSFERS IN\tEVENTS\t")
	for _, t := range totals {
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", t.Day.Format("2006-01-02"), t.Currency, bank.FormatCents(t.Deposits),
			bank.FormatCents(t.Withdrawals), bank.FormatCents(t.TransfersOut), bank.FormatCents(t.TransfersIn), t.Events)
	}
	return tw.Flush()
}

func (d *demo) rebuild(ctx context.Context) error {
	name := bank.BalancesProjection
	d.step(fmt.Sprintf("Rebuild the %q projection from the event store, beside the current one", name))
	before, err := d.rm.Balances(ctx)
	if err != nil {
		return err
	}
	bar := &progressBar{w: d.w, name: name, live: isTerminal(d.w)}
	d.progress.Store(bar)
	t0 := time.Now()
	err = d.runner.Rebuild(ctx, name)
	d.progress.Store(nil)
	bar.finish()
	if err != nil {
		return fmt.Errorf("demo: rebuild %s: %w", name, err)
	}
	after, err := d.rm.Balances(ctx)
	if err != nil {
		return err
	}
	if len(after) != len(before) {
		return fmt.Errorf("demo: rebuilt %s has %d accounts, the old build had %d", name, len(after), len(before))
	}
	for i := range before {
		if before[i] != after[i] {
			return fmt.Errorf("demo: rebuilt %s differs on %s: %+v, was %+v", name, before[i].AccountID, after[i], before[i])
		}
	}
	st, err := d.runner.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range st {
		if s.Name == name {
			d.say("    %s is now current (%s); readers kept reading the old build until the switch, then the new one: same %d balances",
				s.Current, since(t0), len(after))
		}
	}
	return nil
}

func (d *demo) status(ctx context.Context) error {
	d.step("Projection status")
	st, err := d.runner.Status(ctx)
	if err != nil {
		return err
	}
	d.res.Status = st
	tw := tabwriter.NewWriter(d.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    PROJECTION\tCURRENT\tSTATE\tCHECKPOINT\tHEAD\tLAG\tDEAD LETTERS")
	for _, s := range st {
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%d\t%d\n", s.Name, s.Current, s.State, s.Checkpoint, s.Head, s.Lag, s.DeadLetters)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if d.relay != nil {
		rs, err := d.relay.Status(ctx)
		if err != nil {
			return err
		}
		d.say("    relay %q: %s, %d records confirmed by JetStream stream %s in this run", rs.Name, rs.State, rs.Published, rs.Stream)
	}
	return nil
}

// progressBar draws a rebuild's progress on one line.
type progressBar struct {
	w    io.Writer
	name string
	mu   sync.Mutex
	live bool // redraw in place; otherwise draw once at the end
	last projection.Progress
	seen bool
	done bool
}

func (b *progressBar) update(p projection.Progress) {
	if !p.Rebuild || p.Build.Name != b.name {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.last, b.seen = p, true
	if b.live {
		b.draw()
	}
}

func (b *progressBar) draw() {
	p := b.last
	const width = 30
	frac := 1.0
	if p.Total > 0 {
		frac = min(1, float64(p.Done)/float64(p.Total))
	}
	if p.Finished {
		frac = 1
	}
	filled := int(frac * width)
	cr := ""
	if b.live {
		cr = "\r"
	}
	fmt.Fprintf(b.w, cr+"    %s [%s%s] %3.0f%%  %d/%d  %.0f events/s  ETA %s   ", p.Build, strings.Repeat("#", filled),
		strings.Repeat(".", width-filled), frac*100, p.Done, p.Total, p.Rate, p.ETA.Round(time.Millisecond))
}

func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	if b.seen {
		b.last.Finished = true
		b.draw()
		fmt.Fprintln(b.w)
	}
}

// atLeast reports whether the version "major.minor.patch" is at least
// major.minor.
func atLeast(version string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(version, "%d.%d", &ma, &mi); err != nil {
		return true // unknown: let the server say
	}
	return ma > major || ma == major && mi >= minor
}

// isTerminal reports whether w is a terminal, where the progress bar can
// redraw itself in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func since(t time.Time) string {
	d := time.Since(t)
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// short abbreviates an event ID to its last 8 characters (a UUIDv7
// begins with the time, so the start is the same for events close in time).
func short(id string) string {
	if len(id) > 13 {
		return "…" + id[len(id)-8:]
	}
	return id
}
