// Package chronicle is the root of Chronicle, an event-sourcing framework
// for Go services on PostgreSQL and NATS JetStream. It holds only the
// framework's version; the framework itself is in the packages below it:
// eventstore and eventstore/postgres (the event store and its global log),
// aggregate (aggregates and repositories), codec and upcast (event types and
// schema versions), snapshot, projection (read models, the runner, dead
// letters, rebuilds), relay (the outbox relay to JetStream) and cli (the
// operations command line). Start with docs/getting-started.md.
package chronicle

// Version is Chronicle's version, as semantic versioning: the release this
// code is, or, with a "-dev" suffix, the release it will become. The
// chronicle command prints it with --version; CHANGELOG.md says what each
// release holds and docs/stability.md what is stable before 1.0.
const Version = "0.2.0-dev"
