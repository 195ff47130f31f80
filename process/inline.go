package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Local commands (ADR 0016): a command registered with [WithLocalCommand]
// runs inside the transaction of the trigger that decided it, and its
// outcome is handled at once, in the same transaction, as the process's
// next trigger. A process whose steps are all local commands so moves
// from one event of the log to its next wait (a timer, a remote command,
// an event of another stream) in one transaction, with no second hop
// through the log and no dispatcher.

const (
	// maxInline bounds the local commands one trigger runs inline; the
	// rest go to the outbox (a process that sends a command on every
	// success would otherwise never commit).
	maxInline = 64
	// maxSavepoints bounds the triggers of one unit of work that run
	// local commands under a savepoint: each that writes takes a
	// subtransaction ID, and beyond 64 of them PostgreSQL's snapshots of
	// every session slow down (subxid overflow). Later triggers of the
	// unit send their commands through the outbox.
	maxSavepoints = 48
)

// spName is the savepoint of a trigger that runs local commands.
const spName = "chronicle_process_trigger"

// spTx is the unit of work's transaction as the router and local commands
// use it: statements without arguments (the trigger's savepoint, its
// release) wait in pre and go out with the next statement, in the same
// round trip, so a savepoint that nothing writes under costs nothing.
type spTx struct {
	pgx.Tx
	pre []string
	// open says the trigger's savepoint is set (pending or sent); sent
	// says it reached the server.
	open, sent bool
}

func (t *spTx) flush(ctx context.Context) error {
	if len(t.pre) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, s := range t.pre {
		b.Queue(s)
	}
	t.markSent()
	return t.Tx.SendBatch(ctx, b).Close()
}

func (t *spTx) markSent() {
	if t.open {
		t.sent = true
	}
	t.pre = nil
}

// savepoint sets the trigger's savepoint, lazily.
func (t *spTx) savepoint() {
	if !t.open {
		t.pre = append(t.pre, "SAVEPOINT "+spName)
		t.open, t.sent = true, false
	}
}

// release ends the trigger's savepoint, keeping what was done under it.
func (t *spTx) release() {
	if !t.open {
		return
	}
	if t.sent {
		t.pre = append(t.pre, "RELEASE SAVEPOINT "+spName)
	} else {
		t.dropPending()
	}
	t.open, t.sent = false, false
}

// rollback undoes what was done under the trigger's savepoint and ends it.
func (t *spTx) rollback(ctx context.Context) error {
	if !t.open {
		return nil
	}
	defer func() { t.open, t.sent = false, false }()
	if !t.sent {
		t.dropPending()
		return nil
	}
	_, err := t.Tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+spName+"; RELEASE SAVEPOINT "+spName)
	return err
}

// dropPending removes the pending SAVEPOINT and what was queued after it.
func (t *spTx) dropPending() {
	for i := len(t.pre) - 1; i >= 0; i-- {
		if t.pre[i] == "SAVEPOINT "+spName {
			t.pre = t.pre[:i]
			return
		}
	}
}

// SendBatch sends the pending statements first, in the same batch.
func (t *spTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if len(t.pre) == 0 {
		return t.Tx.SendBatch(ctx, b)
	}
	nb := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(t.pre)+b.Len())}
	for _, s := range t.pre {
		nb.Queue(s)
	}
	nb.QueuedQueries = append(nb.QueuedQueries, b.QueuedQueries...)
	n := len(t.pre)
	t.markSent()
	return &prefixed{BatchResults: t.Tx.SendBatch(ctx, nb), skip: n}
}

// Exec sends the pending statements, then sql.
func (t *spTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.Tx.Exec(ctx, sql, args...)
}

// Query sends the pending statements, then the query.
func (t *spTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.Tx.Query(ctx, sql, args...)
}

// QueryRow sends the pending statements, then the query.
func (t *spTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return t.Tx.QueryRow(ctx, sql, args...)
}

// CopyFrom sends the pending statements, then copies.
func (t *spTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	return t.Tx.CopyFrom(ctx, table, cols, src)
}

// Begin sends the pending statements, then starts a nested savepoint.
func (t *spTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.Tx.Begin(ctx)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// prefixed is a batch's results after the pending statements sent before
// it, whose results it skips.
type prefixed struct {
	pgx.BatchResults
	skip int
}

func (p *prefixed) drop() {
	for ; p.skip > 0; p.skip-- {
		// A failed savepoint fails the statements after it too; their
		// errors are the caller's.
		_, _ = p.BatchResults.Exec()
	}
}

func (p *prefixed) Exec() (pgconn.CommandTag, error) { p.drop(); return p.BatchResults.Exec() }
func (p *prefixed) Query() (pgx.Rows, error)         { p.drop(); return p.BatchResults.Query() }
func (p *prefixed) QueryRow() pgx.Row                { p.drop(); return p.BatchResults.QueryRow() }
func (p *prefixed) Close() error                     { p.drop(); return p.BatchResults.Close() }

// inlineKind is how a local command run inline ended.
type inlineKind int

const (
	inlineDone     inlineKind = iota // succeeded
	inlineRejected                   // refused (ErrRejected)
	inlineOutbox                     // failed otherwise: the dispatcher retries it
)

type inlineResult struct {
	kind inlineKind
	err  error
}

// errRedo asks the router to handle the trigger again, from its savepoint:
// a local command failed after writing, so its writes must be undone and
// its outcome (kept in the trigger's memo) used instead of running it.
var errRedo = errors.New("process: local command failed after writing; handling the trigger again")

// runInline runs a local command in tx and says how it ended; dirty says
// whether it wrote (or tried to) through a [TxStore].
func (r *Runner) runInline(ctx context.Context, tx pgx.Tx, typ, id string, md eventstore.Metadata, cmd commandSent) (res inlineResult, dirty bool) {
	h := r.opts.handlers[cmd.Name]
	var wrote atomic.Bool
	hctx := context.WithValue(ctx, txKey{}, txValue{tx: tx, cmd: cmd.ID, wrote: &wrote})
	hctx = eventstore.WithCorrelationID(hctx, md.CorrelationID())
	hctx = eventstore.WithCausationID(hctx, cmd.ID.String())
	env := Envelope{ID: cmd.ID, Type: typ, ProcessID: id, Name: cmd.Name, Data: cmd.Data, Compensation: cmd.Compensation,
		Attempt: 1, Local: true, Metadata: eventstore.Metadata{eventstore.CorrelationIDKey: md.CorrelationID(), eventstore.CausationIDKey: md.CausationID()}}
	err := callCommand(hctx, h, env)
	switch {
	case err == nil:
		return inlineResult{kind: inlineDone}, wrote.Load()
	case errors.Is(err, ErrRejected):
		return inlineResult{kind: inlineRejected, err: err}, wrote.Load()
	}
	r.log.Info("process: local command failed; the dispatcher retries it", "type", typ, "process", id, "command", cmd.Name, "command_id", cmd.ID, "err", err)
	return inlineResult{kind: inlineOutbox, err: err}, wrote.Load()
}

// outcomeRecord is the outcome of a local command as the process handles
// it: the record the dispatcher would have appended, not stored (the
// process's CommandDone, CompensationDone or CompensationFailed carries
// it), so nothing comes back through the log.
func (c *core) outcomeRecord(cmd commandSent, res inlineResult) (eventstore.Record, error) {
	typ, o := typeCommandSucceeded, commandOutcome{ID: cmd.ID, Name: cmd.Name, Compensation: cmd.Compensation}
	if res.kind == inlineRejected {
		typ, o.Error, o.Rejected = typeCommandFailed, res.err.Error(), true
	}
	data, err := json.Marshal(o)
	if err != nil {
		return eventstore.Record{}, fmt.Errorf("process %s/%s: encode the outcome of command %s: %w", c.k.name, c.id, cmd.ID, err)
	}
	md := eventstore.Metadata{eventstore.CausationIDKey: cmd.ID.String()}
	if cid := c.md.CorrelationID(); cid != "" {
		md[eventstore.CorrelationIDKey] = cid
	}
	return eventstore.Record{ID: uuid.NewSHA1(cmd.ID, []byte(typ)), StreamID: c.stream, Type: typ, Data: data, Metadata: md,
		RecordedAt: c.now}, nil
}
