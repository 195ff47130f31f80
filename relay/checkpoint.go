package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
)

// errFatal marks errors Run does not retry.
var errFatal = errors.New("relay: fatal")

type fatalError struct{ err error }

func (e *fatalError) Error() string        { return e.err.Error() }
func (e *fatalError) Unwrap() error        { return e.err }
func (e *fatalError) Is(target error) bool { return target == errFatal }

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func (r *Relay) wrapTableErr(what string, err error) error {
	return wrapTableErr(r.table, what, err)
}

func wrapTableErr(table, what string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") {
		return &fatalError{fmt.Errorf("relay: %s: table %s is missing; run the relay's Migrate first: %w", what, table, err)}
	}
	return fmt.Errorf("relay: %s in %s: %w", what, table, err)
}

// Checkpoint is a relay's progress as stored in PostgreSQL.
type Checkpoint struct {
	// Name is the relay's name.
	Name string
	// Position is the last position JetStream confirmed; the zero Position
	// when the relay has published nothing yet.
	Position eventstore.Position
	// At is when the checkpoint was last stored; zero if never.
	At time.Time
	// PublishedTotal is the number of records JetStream confirmed over the
	// relay's whole history.
	PublishedTotal int64
}

// ReadCheckpoint reads the stored checkpoint of the relay that [New] would
// build with opts: its schema ([WithSchema]) and name ([WithName]) select
// the row; the other options are checked and otherwise ignored. It needs
// only PostgreSQL: operators' tools use it to report a relay's progress
// without a NATS connection and without running a [Relay]. A relay that
// never stored a checkpoint yields a Checkpoint with only its Name set.
func ReadCheckpoint(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (Checkpoint, error) {
	if pool == nil {
		return Checkpoint{}, errors.New("relay: read checkpoint: nil PostgreSQL pool")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	cfg.stream = cfg.stream.withDefaults()
	if err := cfg.validate(); err != nil {
		return Checkpoint{}, err
	}
	return readCheckpoint(ctx, pool, checkpointTable(cfg.schema), cfg.name)
}

func checkpointTable(schema string) string {
	return pgmigrate.Quote(schema) + ".relay_checkpoints"
}

// loadCheckpoint reads the relay's checkpoint; the zero Position when it
// has none.
func (r *Relay) loadCheckpoint(ctx context.Context, q querier) (eventstore.Position, int64, time.Time, error) {
	cp, err := readCheckpoint(ctx, q, r.table, r.cfg.name)
	return cp.Position, cp.PublishedTotal, cp.At, err
}

func readCheckpoint(ctx context.Context, q querier, table, name string) (Checkpoint, error) {
	cp := Checkpoint{Name: name}
	var tx, seq string
	err := q.QueryRow(ctx, `SELECT tx_id::text, seq::text, published, updated_at FROM `+table+` WHERE name = $1`,
		name).Scan(&tx, &seq, &cp.PublishedTotal, &cp.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{Name: name}, nil
	}
	if err != nil {
		return Checkpoint{Name: name}, wrapTableErr(table, "read the checkpoint of relay "+strconv.Quote(name), err)
	}
	cp.Position, err = eventstore.ParsePosition(tx + "/" + seq)
	if err != nil {
		return Checkpoint{Name: name}, fmt.Errorf("relay: checkpoint of relay %q: %w", name, err)
	}
	return cp, nil
}

// storeCheckpoint moves the checkpoint forward to pos (never backwards) and
// adds n to the published count.
func (r *Relay) storeCheckpoint(ctx context.Context, q querier, pos eventstore.Position, n int64) error {
	_, err := q.Exec(ctx, `INSERT INTO `+r.table+` AS c (name, tx_id, seq, published, updated_at)
		VALUES ($1, $2::text::numeric, $3::text::numeric, $4, now())
		ON CONFLICT (name) DO UPDATE SET
			tx_id = CASE WHEN (EXCLUDED.tx_id, EXCLUDED.seq) > (c.tx_id, c.seq) THEN EXCLUDED.tx_id ELSE c.tx_id END,
			seq = CASE WHEN (EXCLUDED.tx_id, EXCLUDED.seq) > (c.tx_id, c.seq) THEN EXCLUDED.seq ELSE c.seq END,
			published = c.published + EXCLUDED.published, updated_at = now()`, r.cfg.name, strconv.FormatUint(pos.TxID, 10), strconv.FormatUint(pos.Seq, 10), n)
	if err != nil {
		return r.wrapTableErr(fmt.Sprintf("store checkpoint %s of relay %q", pos, r.cfg.name), err)
	}
	return nil
}

// State is what a relay is doing.
type State int

// The states of a relay.
const (
	// StateStopped means Run is not running.
	StateStopped State = iota
	// StateWaiting means Run waits for the leadership (or for PostgreSQL).
	StateWaiting
	// StateLeading means Run holds the leadership and publishes.
	StateLeading
)

// String returns "stopped", "waiting" or "leading".
func (s State) String() string {
	switch s {
	case StateStopped:
		return "stopped"
	case StateWaiting:
		return "waiting"
	case StateLeading:
		return "leading"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Status is a snapshot of a relay for operators.
type Status struct {
	// Name is the relay's name.
	Name string
	// Stream is the JetStream stream's name.
	Stream string
	// State says whether this relay leads, waits, or is stopped.
	State State
	// Checkpoint is the last position JetStream confirmed, as stored in
	// PostgreSQL by whichever relay of this name led last.
	Checkpoint eventstore.Position
	// CheckpointAt is when the checkpoint was last stored; zero if never.
	CheckpointAt time.Time
	// PublishedTotal is the number of records confirmed by JetStream over
	// the relay's whole history, as stored with the checkpoint.
	PublishedTotal int64
	// Published is the number of records this Relay value had confirmed
	// by JetStream since it was created.
	Published uint64
	// LastError is the last error this relay logged and retried, if any.
	LastError error
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
}

// Status reports the relay's state, its stored checkpoint and how much it
// published. It reads the checkpoint from PostgreSQL, so it also works on a
// relay that is not running.
func (r *Relay) Status(ctx context.Context) (Status, error) {
	cp, total, at, err := r.loadCheckpoint(ctx, r.pool)
	if err != nil {
		return Status{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return Status{
		Name: r.cfg.name, Stream: r.cfg.stream.Name, State: State(r.state.Load()),
		Checkpoint: cp, CheckpointAt: at, PublishedTotal: total, Published: r.published.Load(),
		LastError: r.lastErr, LastErrorAt: r.lastErrAt,
	}, nil
}
