package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
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

// ErrCheckpointAhead is wrapped by the error of a relay whose stored
// checkpoint, or whose stream's last message, is after the head of the
// event store's log: it was written for another store (or the store was
// restored from an older backup), and resuming from it would skip every
// event up to it without a word.
var ErrCheckpointAhead = errors.New("relay: checkpoint ahead of the log's head")

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func wrapTableErr(table, what string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000" || pgErr.Code == "42703") {
		return &fatalError{fmt.Errorf("relay: %s: table %s is missing or not up to date; run the relay's Migrate first: %w", what, table, err)}
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
	// Stream is the JetStream stream the relay last published to, as it
	// recorded with the checkpoint; empty if it never stored one (or
	// stored it with an older version).
	Stream string
	// StoreID is the identity of the event store the relay last published
	// from; uuid.Nil if unknown.
	StoreID uuid.UUID
}

// ReadCheckpoint reads the stored checkpoint of the relay that [New] would
// build with opts: its schema ([WithSchema]) and name ([WithName]) select
// the row; the other options are checked and otherwise ignored. It needs
// only PostgreSQL: operators' tools use it to report a relay's progress
// without a NATS connection and without running a [Relay]. A relay that
// never stored a checkpoint yields a Checkpoint with only its Name set.
// Compare Position with the log's head: a checkpoint ahead of it is an
// error (see [ErrCheckpointAhead] and [CheckHead]).
func ReadCheckpoint(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (Checkpoint, error) {
	if pool == nil {
		return Checkpoint{}, errors.New("relay: read checkpoint: nil PostgreSQL pool")
	}
	cfg := newConfig(opts)
	if err := cfg.validate(); err != nil {
		return Checkpoint{}, err
	}
	return pgCheckpoints{q: pool, table: checkpointTable(cfg.schema), name: cfg.name}.Load(ctx)
}

// CheckHead returns an error wrapping [ErrCheckpointAhead] when cp is
// after head, the head of the log of the event store in schema.
func CheckHead(cp Checkpoint, head eventstore.Position, schema string) error {
	if head.Before(cp.Position) {
		return fmt.Errorf("%w: relay %q checkpoint %s is after the head %s of the event store in schema %s; "+
			"it was written for another event store (or the store was restored or recreated): "+
			"check the relay's schema and stream, then delete the relay's checkpoint row to publish from the start",
			ErrCheckpointAhead, cp.Name, cp.Position, head, schema)
	}
	return nil
}

func checkpointTable(schema string) string {
	return pgmigrate.Quote(schema) + ".relay_checkpoints"
}

// checkpoints keeps a relay's checkpoint.
type checkpoints interface {
	// Load reads the checkpoint; only Name is set when there is none.
	Load(ctx context.Context) (Checkpoint, error)
	// Store moves the checkpoint forward to pos (never backwards), adds n
	// to the published count and records the stream and the store.
	Store(ctx context.Context, pos eventstore.Position, n int64) error
}

// pgCheckpoints keeps checkpoints in the relay_checkpoints table.
type pgCheckpoints struct {
	q      querier
	table  string
	name   string
	stream string
	store  uuid.UUID
}

func (c pgCheckpoints) Load(ctx context.Context) (Checkpoint, error) {
	cp := Checkpoint{Name: c.name}
	var (
		tx, seq string
		stream  *string
		store   *uuid.UUID
	)
	err := c.q.QueryRow(ctx, `SELECT tx_id::text, seq::text, published, updated_at, stream, store_id FROM `+c.table+` WHERE name = $1`,
		c.name).Scan(&tx, &seq, &cp.PublishedTotal, &cp.At, &stream, &store)
	if errors.Is(err, pgx.ErrNoRows) {
		return Checkpoint{Name: c.name}, nil
	}
	if err != nil {
		return Checkpoint{Name: c.name}, wrapTableErr(c.table, "read the checkpoint of relay "+strconv.Quote(c.name), err)
	}
	cp.Position, err = eventstore.ParsePosition(tx + "/" + seq)
	if err != nil {
		return Checkpoint{Name: c.name}, fmt.Errorf("relay: checkpoint of relay %q: %w", c.name, err)
	}
	if stream != nil {
		cp.Stream = *stream
	}
	if store != nil {
		cp.StoreID = *store
	}
	return cp, nil
}

func (c pgCheckpoints) Store(ctx context.Context, pos eventstore.Position, n int64) error {
	var store *uuid.UUID
	if c.store != uuid.Nil {
		store = &c.store
	}
	_, err := c.q.Exec(ctx, `INSERT INTO `+c.table+` AS c (name, tx_id, seq, published, updated_at, stream, store_id)
		VALUES ($1, $2::text::numeric, $3::text::numeric, $4, now(), $5, $6)
		ON CONFLICT (name) DO UPDATE SET
			tx_id = CASE WHEN (EXCLUDED.tx_id, EXCLUDED.seq) > (c.tx_id, c.seq) THEN EXCLUDED.tx_id ELSE c.tx_id END,
			seq = CASE WHEN (EXCLUDED.tx_id, EXCLUDED.seq) > (c.tx_id, c.seq) THEN EXCLUDED.seq ELSE c.seq END,
			published = c.published + EXCLUDED.published, updated_at = now(),
			stream = EXCLUDED.stream, store_id = coalesce(EXCLUDED.store_id, c.store_id)`,
		c.name, strconv.FormatUint(pos.TxID, 10), strconv.FormatUint(pos.Seq, 10), n, c.stream, store)
	if err != nil {
		return wrapTableErr(c.table, fmt.Sprintf("store checkpoint %s of relay %q", pos, c.name), err)
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
	// Elided is the number of records this Relay value published without
	// their Data because they exceeded the server's max_payload (see
	// wire.HeaderElided).
	Elided uint64
	// LastError is the last error this relay logged and retried, if any.
	LastError error
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
}

// Status reports the relay's state, its stored checkpoint and how much it
// published. It reads the checkpoint from PostgreSQL, so it also works on a
// relay that is not running. A checkpoint after the head of the store's
// log is an error wrapping [ErrCheckpointAhead].
func (r *Relay) Status(ctx context.Context) (Status, error) {
	cp, err := pgCheckpoints{q: r.pool, table: r.table, name: r.cfg.name}.Load(ctx)
	if err != nil {
		return Status{}, err
	}
	head, err := r.src.Head(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("relay: read the head of the log: %w", err)
	}
	if err := CheckHead(cp, head, r.cfg.schema); err != nil {
		return Status{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return Status{
		Name: r.cfg.name, Stream: r.cfg.stream.Stream, State: State(r.state.Load()),
		Checkpoint: cp.Position, CheckpointAt: cp.At, PublishedTotal: cp.PublishedTotal, Published: r.published.Load(),
		Elided: r.elided.Load(), LastError: r.lastErr, LastErrorAt: r.lastErrAt,
	}, nil
}
