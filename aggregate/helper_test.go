package aggregate_test

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
	"github.com/chronicle-go/chronicle/snapshot"
	snappg "github.com/chronicle-go/chronicle/snapshot/postgres"
)

type Opened struct {
	Owner string `json:"owner"`
}

type Deposited struct {
	Amount int `json:"amount"`
}

type Withdrawn struct {
	Amount int `json:"amount"`
}

var errInsufficient = errors.New("insufficient funds")

type Account struct {
	aggregate.Root
	Owner    string `json:"owner"`
	Balance  int    `json:"balance"`
	Deposits int    `json:"deposits"`
	revision int
}

func newAccount(string) *Account { return &Account{revision: 1} }

func (a *Account) SnapshotRevision() int { return a.revision }

func (a *Account) Apply(event any) {
	switch e := event.(type) {
	case Opened:
		a.Owner = e.Owner
	case Deposited:
		a.Balance += e.Amount
		a.Deposits++
	case Withdrawn:
		a.Balance -= e.Amount
	}
}

func (a *Account) Open(owner string) error {
	aggregate.Raise(a, Opened{Owner: owner})
	return nil
}

func (a *Account) Deposit(n int) error {
	aggregate.Raise(a, Deposited{Amount: n})
	return nil
}

func (a *Account) Withdraw(n int) error {
	if n > a.Balance {
		return errInsufficient
	}
	aggregate.Raise(a, Withdrawn{Amount: n})
	return nil
}

func registry(t testing.TB) *codec.Registry {
	t.Helper()
	r := codec.NewRegistry()
	codec.MustRegister[Opened](r, "Opened", 1)
	codec.MustRegister[Deposited](r, "Deposited", 2)
	codec.MustRegister[Withdrawn](r, "Withdrawn", 1)
	return r
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// backend is an event store and a snapshot store of one kind.
type backend struct {
	name   string
	events eventstore.Store
	snaps  snapshot.Store
}

// backends returns a memory backend and a PostgreSQL one (each in a fresh
// schema) for table tests.
func backends(t *testing.T) []func(t *testing.T) backend {
	return []func(t *testing.T) backend{
		func(*testing.T) backend {
			return backend{"memory", memory.New(), snapshot.NewMemoryStore()}
		},
		func(t *testing.T) backend { return pgBackend(t) },
	}
}

func pgBackend(t testing.TB) backend {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	es, err := espg.New(pool, espg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := snappg.New(pool, snappg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Migrate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := ss.Migrate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return backend{"postgres", es, ss}
}

// eachBackend runs f against memory and PostgreSQL.
func eachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	t.Helper()
	for i, mk := range backends(t) {
		name := []string{"memory", "postgres"}[i]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, mk(t))
		})
	}
}

// logBuffer is a concurrency-safe buffer for a text slog handler.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// failingSnapshots fails every Save.
type failingSnapshots struct{ snapshot.Store }

func (failingSnapshots) Save(context.Context, snapshot.Snapshot) error {
	return errors.New("disk on fire")
}

// countingStore counts the calls a repository makes to its event store and
// the records it reads.
type countingStore struct {
	aggregate.EventStore
	reads, appends, records atomic.Int64
}

func (c *countingStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.Event) (eventstore.AppendResult, error) {
	c.appends.Add(1)
	return c.EventStore.Append(ctx, stream, expected, events...)
}

func (c *countingStore) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) iter.Seq2[eventstore.Record, error] {
	c.reads.Add(1)
	return func(yield func(eventstore.Record, error) bool) {
		for rec, err := range c.EventStore.ReadStream(ctx, stream, opts) {
			if err == nil {
				c.records.Add(1)
			}
			if !yield(rec, err) {
				return
			}
		}
	}
}

// calls returns the reads, appends and records counted since the last call.
func (c *countingStore) calls() (reads, appends, records int64) {
	return c.reads.Swap(0), c.appends.Swap(0), c.records.Swap(0)
}

// newRepo returns a repository or fails the test.
func newRepo[T aggregate.Aggregate](t testing.TB, store aggregate.EventStore, c aggregate.Codec, newT func(string) T, opts ...aggregate.Option) *aggregate.Repository[T] {
	t.Helper()
	r, err := aggregate.NewRepository(store, c, newT, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
