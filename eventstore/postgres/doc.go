// Package postgres is Chronicle's PostgreSQL event store, built on pgx v5.
//
// # Tables
//
// [Store.Migrate] creates, in a schema of its own (default "chronicle"), an
// events table: global position, writing transaction id, event id, stream
// id and version, type, schema version, data and metadata as jsonb,
// recording time. Its unique (stream_id, stream_version) index doubles as
// the streams table: a stream's version is that of its last event, one
// backward index probe, so an append writes one table; [Store.ListStreams]
// skips through it. Stream IDs compare byte by byte (COLLATE "C"), like Go
// strings. Constructors never touch the database.
//
// # Appends
//
// [Store.Append] is one round trip whatever the number of events:
// pipelined in one implicit transaction, a transaction-scoped advisory lock
// on the stream, then one INSERT ... SELECT FROM unnest of arrays that reads
// the stream's version, checks the expected version and writes every event
// or none (a single event takes the same statement with plain parameters
// instead of arrays, which runs faster). Taking the lock in a statement of its own, before the
// transaction has an id, means appends to one stream get increasing
// transaction ids, so each stream's events stay in version order in the
// global log. Of N concurrent appends with the same expected version
// exactly one wins; the others get a [*eventstore.ConflictError] with the
// actual version and write nothing. An append whose event IDs are already
// stored in that stream at those versions (a retry after a timeout) returns
// the original result and writes nothing. [Store.AppendTx] appends inside a
// transaction the caller owns. Both statements are built from one
// template, so the concurrency rule is written once (appendsql.go), and
// one function decides why an append wrote nothing (outcome.go).
//
// # Group commit
//
// Concurrent calls to [Store.Append] are coalesced (on by default,
// [WithGroupCommit]): one flusher per Store, on a connection of its own
// taken out of the pool when the first Append comes (and a second one
// while 8 or more appends wait for the first), sends the appends
// waiting at that moment, at most one per stream, as one round trip and one
// transaction: the streams' advisory locks in key order, then one INSERT
// that checks each append's expected version and returns each append's
// version and position or what it found. Each caller gets exactly the
// result or error it would have had alone (a conflict fails only its own
// append; a batch PostgreSQL refuses as a whole is rolled back and each of
// its appends runs alone). A lone append runs the single append's
// statements on the flusher's connection. A notification to followers,
// when one is due, rides in a batch's transaction. [Store.Close] stops the
// flushers; without it they exit after a few idle seconds. A caller whose
// context ends before its append was sent gets the context's error and
// nothing is written; once sent, the error says the outcome is unknown,
// as for a lost connection: appending the same event IDs again tells.
// [Store.GroupCommitStats] counts the transactions appends took (and the
// store's metrics count them too; see [WithMeterProvider]). See ADR 0013.
//
// # Group loads
//
// Concurrent calls to [Store.ReadStreamWithSnapshot] (the one-query loads
// of aggregate repositories) are coalesced the same way (on by default,
// [WithGroupLoads]): a load that finds no other read of its snapshots
// table in flight runs its own query at once; loads that come while one is
// in flight queue, and one flusher per snapshots table, on a connection of
// its own with the statement planned once, reads them all in one query
// (the streams unnested WITH ORDINALITY, each row tagged with its stream's
// ordinal) and hands each caller exactly what its own query would have
// returned, read at one instant. A row that cannot be decoded fails only
// its own load; a batch that fails as a whole hands out nothing, and each
// of its loads runs its own query. [Store.GroupLoadStats] counts them. See
// ADR 0022.
//
// # Input
//
// Appends are checked with [eventstore.PrepareAppend] before anything is
// sent, so the store refuses exactly what the memory store refuses: what
// jsonb cannot keep (invalid UTF-8, \u0000, unpaired surrogate escapes,
// numbers beyond numeric's range), schema versions beyond int32, and events
// larger than [Store.MaxEventSize] ([WithMaxEventSize], default
// [eventstore.DefaultMaxEventSize]) as they will read back: jsonb prints
// numbers in full, so {"n":1e100000} is 14 bytes written and 100,008 read.
// Should PostgreSQL still refuse an event at the insert (SQLSTATE class 22
// or 54), the error matches [eventstore.ErrInvalidInput] and names the
// event, never an error of unknown outcome that a caller would retry.
//
// # The global log
//
// Positions come from a sequence, and transactions can commit in another
// order than they took their positions, so "position > checkpoint" loses
// events. Each row stores the id of the transaction that wrote it, and
// [Store.ReadAll] and [Store.Follow] read only rows whose transaction is
// older than every transaction still running
// (pg_snapshot_xmin(pg_current_snapshot())), in (transaction id, position)
// order; [eventstore.Position] is that pair. A reader therefore never skips
// a committed event: it waits for older transactions to end instead. A long
// open transaction anywhere in the database holds readers back; [Store.Status]
// shows by how much and which transaction is to blame.
//
// # Following
//
// [Store.Follow] reads what is there, then waits for a notification on a
// LISTEN connection taken from the pool or for the poll interval
// ([WithPollInterval]), whichever comes first, and reads again; while
// committed events wait behind an older open transaction it re-reads every
// few milliseconds instead. Notifications are throttled per [Store]: an
// append notifies from a second implicit transaction pipelined after its
// own, in the same round trip, when the store has not notified within
// [NotifyWindow] (3ms); appends that commit within the window are covered
// by one trailing notification sent when it ends, from a timer that takes
// a pool connection (no goroutine lives on, nothing needs closing). A
// follower thus sees each append at most about NotifyWindow after its commit,
// plus a read; under a stream of appends PostgreSQL runs about two
// notifying transactions per window instead of one per append. They are
// separate transactions because a notifying transaction takes an xid and
// holds a cluster-wide lock through its commit, so notifying from the
// appending transaction itself would serialise concurrent appends.
// [WithNotify] turns notifications off; followers then poll. Polling
// ([WithPollInterval]) also covers a notification that was lost.
package postgres
