// Package projection turns the event log into read models.
//
// A [Projection] names the events it wants and a [Handler] that applies
// them to a read model. A [Runner] runs many projections at once, each on
// its own goroutine, reading either straight from an [eventstore.Store] or
// from another [Source] such as the JetStream source in
// projection/jetstream.
//
// # Exactly once
//
// The runner applies events inside a unit of work, a [UnitOfWork], that also
// stores the projection's checkpoint: the position of the last applied
// event. Handlers get a narrow view of it, a [Tx]: the build, its tables and,
// through the store's package, its transaction; the checkpoint, the dead
// letters, the switch and the commit stay with the runner. An
// event at or below the checkpoint is recognised and skipped, so a source
// that delivers an event twice (a NATS redelivery, a process that died after
// its commit and before its ack) does not apply it twice. With a
// transactional [Store] (projection/postgres) the handler's writes and the
// checkpoint commit together; events are applied in batches, and a failing
// batch is retried event by event so that only the failing event is set
// aside. With the in-memory [MemoryStore] each event is its own unit of
// work. A unit of work also commits once it has been open 50 ms, and writes
// the checkpoint last, so that it never holds readers of a PostgreSQL log
// back for long (ADR 0008).
//
// # Supervision
//
// Each projection runs under its own supervisor, which runs the build
// pipeline (setup, catch-up, switch, live) again and again. A failure is
// the projection's own state, logged and retried; it never stops the other
// projections, and [Runner.Run] returns only when its context ends.
// [Runner.Ready] is closed once every projection has started.
//
//	                      Run starts
//	                          |
//	                          v
//	+-------------------> starting --(a rebuild is under way)--> rebuilding
//	|                         |                                      |
//	|                  caught up, live                   caught up, switched
//	|                         v                                      |
//	|       +-----------> running <----------------------------------+
//	|       |             |   |   \
//	|       |  dead letter|   |    \ registration ahead of this code
//	|       |   (Halt)    |   |     v
//	|       |             v   |    idle --(looks again now and then)--> starting
//	|  retried or     halted  |
//	|  discarded  ------+     | Setup (error or panic), store or source fails
//	|                         v
//	+---(backoff, jittered)-- failing
//
// [Admin] administers projections without running them (status, rebuilds,
// dead letters); [Runner.Admin] is the runner's own.
//
// # Decoding and upcasting
//
// With [WithDecoder], handlers get decoded values in Event.Data. Pass an
// *upcast.Chain itself: it is an [UpcastingDecoder], so the runner matches
// [Projection.Types] against the upcast records (events stored under a
// type's old name reach a projection listing the new one) and gives each
// event its own upcast record, including each output of a 1->N split.
//
// # Failures and dead letters
//
// A failing event is retried with exponential backoff, in place, so the
// order of events is kept. An event that still fails after the projection's
// MaxAttempts goes to the dead-letter list with its error; the projection
// then skips it ([Skip]) or halts ([Halt]) until the dead letter is retried
// or discarded ([Admin.RetryDeadLetter], [Admin.DiscardDeadLetter]).
//
// # Versions and rebuilds
//
// Each projection has a Version. A [Build] is one version of a projection
// (and a generation, bumped by an explicit [Runner.Rebuild]); its read-model
// tables carry the build's suffix, which handlers obtain with [Tx.Table]
// (balances -> balances_v2). When the Version is bumped, the runner builds
// the new version beside the old one, reading the history straight from the
// event store in batches, catches up, and then switches atomically: the
// store marks the build current and, for Postgres, re-points one view per
// table declared in [Projection.Tables] (balances) at the new build's table
// (balances_v2) in the same transaction. Readers query the stable name and
// keep seeing the old version until the switch, which first catches the new
// build up to the current build's checkpoint (holding it), so the view never
// goes back. An interrupted rebuild resumes from its own checkpoint; the
// current build is never touched.
//
// # Read-your-writes
//
// [Runner.WaitFor] blocks until a projection has applied a position, such as
// the Position of an [eventstore.AppendResult], so a caller can read its own
// write from the read model; it returns a [*DeadLetterError] when the write
// went to the dead letters, and an error matching [ErrHalted] when the
// projection halted before it.
package projection
