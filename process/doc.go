// Package process runs process managers (sagas): long-running processes
// across aggregates and services, with compensation and durable timeouts,
// on PostgreSQL.
//
// # Defining a process type
//
// A [Type] names the events that start a process (Starts), the events that
// reach it (Types, Categories) and how an event finds its process
// (Correlate: [ByStream], [ByCorrelationID], or an ID in the event's
// data). Its Handle reacts to a [Trigger] (an event of the log, a timer, a
// command's outcome) through a [Process]: it may record the process's own
// events ([Process.Record]), send commands ([Process.Send],
// [Process.SendCompensable]), schedule and cancel timers, and complete,
// fail or compensate. Handle decides; the runner does, after it returns.
//
// # Event-sourced state
//
// A process's state is a stream in the event store, "process_<type>-<id>":
// its own events, and the runner's records of what it did (the triggers it
// handled, the commands it sent and their outcomes, its timers, its status
// changes), each with the correlation and causation IDs of its trigger. So
// the stream is the process's audit trail; upcasters apply to its events
// (a Codec that is an *upcast.Chain), and optimistic concurrency guards it.
//
// # Exactly once
//
// The runner is a projection runner ("process_<type>"). For each trigger,
// the process's new events (appended with AppendTx), its timers, the
// commands it decided (rows of an outbox) and the projection's checkpoint
// commit in one PostgreSQL transaction, so a trigger is handled once. Every
// ID a trigger produces is a UUIDv5 of the process, the trigger's event ID
// and the step ([StepID]).
//
// A command registered with [WithLocalCommand] (one that only updates
// aggregates of the same store, through a repository built on [TxStore])
// runs inside the trigger's transaction, and the process handles its
// outcome at once, in that transaction, as its next trigger: the
// aggregate's events, the process's and the checkpoint commit together
// (ADR 0016).
//
// A dispatcher delivers the other commands at least once, to the
// [CommandHandler] registered under the command's name ([WithCommand]). A handler that
// updates an aggregate of the same store through a repository built on
// [TxStore] appends inside the dispatcher's transaction, which also
// records the command's outcome in the process's stream and marks it
// done: the aggregate sees each command once, and its events get IDs
// derived from the command's. A handler that publishes to JetStream
// ([Publish]) sets Nats-Msg-Id to the command's ID, so JetStream drops a
// redelivery. A handler's error wrapping [ErrRejected] ([Reject]) refuses
// the command; other errors are retried with backoff, and reported as
// CommandFailed after the runner's command attempts.
//
// # Timers
//
// Timers are rows of a table shared by every runner, claimed for a lease
// with FOR UPDATE SKIP LOCKED by the runner's clock ([WithClock]); firing
// one appends a TimerFired event with a deterministic ID to the process's
// stream (a second firing after a crash is absorbed by the store's
// idempotent append) and deletes the row, and the runner then handles it
// like any trigger. A timer due while no runner is alive fires when one
// starts.
//
// # Snapshots
//
// A type with Snapshots loads its processes from their latest snapshot
// (built-in state and the type's state, as JSON) and the events after it,
// and takes one, from committed events, when its SnapshotPolicy says so.
//
// # Terminal processes
//
// A completed, failed or compensated process records a late event
// (process.Ignored) and acts on none; a late timer is in its stream and
// changes nothing.
//
// # Compensation
//
// [Process.SendCompensable] sends a command with the command that undoes
// it, recorded once the command succeeded ([Process.AddCompensation]
// records one directly). [Process.Compensate] waits for the forward
// commands still out, then sends the recorded compensations one at a time,
// last first, each a durable command like any other; the process ends
// compensated after the last. A compensation that fails (rejected, or
// given up after its attempts) leaves the process in
// compensation_failed, which [Admin.Retry] (chronicle processes retry)
// resumes.
//
// # Failures
//
// A trigger whose handling keeps failing goes to the dead letters of the
// projection "process_<type>", its error naming the process, and the
// type's OnFailure policy (skip or halt) applies, as for any projection.
//
// # Testing
//
// process/processtest runs a type's logic in memory ([Harness]) in the
// given-when-then style.
package process
