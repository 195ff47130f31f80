// Package aggregate keeps event-sourced aggregates in an event store.
//
// # Defining an aggregate
//
// An aggregate is a struct that embeds [Root] and has an Apply method that
// switches on the event values it knows. Commands are methods that check
// the state and call [Raise], which applies the event and records it as
// uncommitted:
//
//	type Account struct {
//		aggregate.Root
//		Balance int
//	}
//
//	func (a *Account) Apply(event any) {
//		switch e := event.(type) {
//		case Deposited:
//			a.Balance += e.Amount
//		}
//	}
//
//	func (a *Account) Deposit(n int) error {
//		if n <= 0 {
//			return ErrBadAmount
//		}
//		aggregate.Raise(a, Deposited{Amount: n})
//		return nil
//	}
//
// Events are plain values registered in a [codec.Registry]; Apply receives
// the same value types when the aggregate is loaded (never pointers). Apply
// must not fail and must not do I/O: it only moves state.
//
// # The repository
//
// [NewRepository] binds an event store, a [Codec] and a constructor, and
// returns an error for a nil one or an option it cannot use. The codec is
// the *codec.Registry, or the *upcast.Chain built on it once events have
// older schema versions: one value that encodes and decodes, so the
// registry and the upcasters cannot disagree.
// [Repository.Load] reads the latest snapshot (when snapshots are enabled)
// and the events after it, brings them to their current schema (when the
// codec is an [UpcastingCodec]), decodes and applies them. [Repository.Save]
// appends the uncommitted events, expecting the version the aggregate was
// loaded at (or no stream at all for a new aggregate), so a concurrent
// writer makes it fail with [eventstore.ErrConcurrencyConflict].
// [Repository.Update] loads, runs a command and saves, and runs the command
// again on a fresh load when the save conflicts, after a wait set by
// [WithBackoff]. [Repository.Create] runs a
// command on a new aggregate and fails with [ErrAlreadyExists] when the
// stream exists. [Repository.LoadAt] returns the state as of a version.
//
// # Stream IDs
//
// By default an aggregate's stream ID is its ID as given. With
// WithCategory("account") the stream of the aggregate "42" is "account-42",
// so every account lands in the category "account" that projections can
// subscribe to.
//
// # Metadata
//
// Save stamps every event with the metadata the context carries: see
// [eventstore.WithCorrelationID], [eventstore.WithCausationID],
// [eventstore.WithMetadata] and [eventstore.CausedBy].
//
// # Snapshots
//
// WithSnapshots(store, snapshot.Every(100)) stores the aggregate's state
// whenever a save crosses a multiple of 100 events. The state is encoded
// with encoding/json: exported fields only, unless the aggregate type
// implements json.Marshaler and json.Unmarshaler. An aggregate declares the
// revision of its state's shape with a SnapshotRevision() int method (see
// [Revisioner]; 1 when absent); bump it whenever the shape changes, and
// snapshots of another revision are ignored. A snapshot that is missing,
// unreadable, of another revision or ahead of the stream means a full
// replay and a warning in the log, never an error. Storing a snapshot never
// fails the save. With [WithAsyncSnapshots] the snapshot is written in the
// background; [Repository.Flush] and [Repository.Close] wait for those
// writes, each of which is bounded by [WithSnapshotTimeout].
//
// # The state cache
//
// [WithCache] keeps the encoded state of recently saved aggregates in
// memory. [Repository.Update] then skips the read: it runs the command on
// the cached state and appends expecting the cached version; the store's
// optimistic check catches a stale entry, which is dropped before the
// command runs again on a fresh load. [Repository.Load] uses a cached state
// like a snapshot, so it never returns stale state. It pays off when one
// process does most of the writing to an aggregate.
package aggregate
