// Package eventstore is Chronicle's vocabulary for storing events: the
// [Event] a caller appends, the [Record] a store returns once the event is
// committed, the [Position] of a record in the global log, the
// [ExpectedVersion] that makes appends optimistic, and the [Store] interface
// that every implementation satisfies.
//
// # Streams and versions
//
// A stream is an ordered list of events identified by an opaque string ID.
// The part of the ID before the first '-' is the stream's category, so
// "account-42" belongs to the category "account" (see [Category]). Each
// event in a stream has a 1-based stream version with no holes: a stream
// holding n events has versions 1..n.
//
// # Expected versions
//
// Every [Store.Append] names the version the caller believes the stream is
// at. [Any] skips the check, [NoStream] requires that the stream does not
// exist, [StreamExists] requires that it does, and an exact version (see
// [Exact]) requires that the stream is at exactly that version. When the
// check fails, the append writes nothing and returns an error that matches
// [ErrConcurrencyConflict] with errors.Is and converts to a
// [*ConflictError] with errors.As.
//
// Appending events whose IDs were already appended to the same stream at the
// same versions (a client retrying after a timeout) succeeds without writing
// them again.
//
// A negative exact version is not a condition in disguise: Exact(-1) is
// invalid input, not Any.
//
// # Input
//
// Every store checks an append with [PrepareAppend] before writing anything,
// so all stores refuse the same input with an error matching
// [ErrInvalidInput] (a [*ValidationError] naming the stream, the event's
// index and type, and what is wrong): bad stream IDs, types and metadata,
// schema versions beyond [MaxSchemaVersion], data that is not JSON or that
// PostgreSQL's jsonb cannot keep exactly, and events larger than the
// store's maximum event size ([DefaultMaxEventSize] unless configured; such
// errors also match [ErrEventTooLarge]). An event's size is measured as it
// will read back ([EventSize]), so that every event a store accepts fits in
// a NATS message.
//
// # The global log
//
// Every committed record also has a [Position] in the global log. Reading the
// log with [Store.ReadAll] or following it with [Store.Follow] never skips a
// committed event, even when transactions commit in another order than they
// took their positions; see the package eventstore/postgres for how.
//
// # Implementations
//
// The package eventstore/postgres stores events in PostgreSQL through pgx;
// eventstore/memory keeps them in memory for unit tests and embedded use.
// Both pass the conformance suite in eventstore/eventstoretest.
package eventstore
