// Package cli is Chronicle's operations command line, as a library.
//
// The generic binary cmd/chronicle is built from it with nothing
// registered: it migrates, lists and shows streams, tails the global log,
// runs the relay and lists dead letters. Commands that run a service's own
// code — rebuilding a projection, retrying a dead letter, showing projection
// status, upcasting stored events — need that code, so a service builds its
// own binary from this package with its projections, codec registry and
// upcaster chain registered:
//
//	func main() {
//		chain, err := bank.NewChain() // the bank's codec registry and upcasters
//		if err != nil {
//			log.Fatal(err)
//		}
//		cli.New(
//			cli.WithName("bankctl"),
//			cli.WithVersion("1.4.2"),
//			cli.WithSchema(bank.Schema),
//			cli.WithUpcasters(chain),
//			cli.WithProjections(bank.PostgresProjections()...),
//		).Main()
//	}
//
// # Commands
//
//	migrate                          create or upgrade every Chronicle table
//	streams list [--category C]      streams with their versions, paged
//	streams show ID                  a stream's events (upcast, or --raw)
//	tail                             follow the global log live
//	projections status               checkpoint, lag, dead letters per projection
//	projections rebuild NAME         rebuild a read model with a progress bar
//	dlq list|retry|discard           dead letters by projection, id or --all
//	relay                            publish the log to NATS JetStream until stopped
//	relay status                     the relay's stored checkpoint
//
// # Conventions
//
// Every command has --help. The database comes from --database-url or
// DATABASE_URL, NATS from --nats-url or NATS_URL, the schema from --schema
// (default "chronicle", or the one given to [WithSchema]). Commands that print
// data take --json: a JSON array for bounded results (status, dead letters),
// one JSON object per line for streams of records (streams, tail). A failure
// prints one line, "name: command: what went wrong", to stderr and exits
// with 1 (2 for a usage error). [App.Main] stops cleanly on Ctrl-C or
// SIGTERM: tail and relay exit 0, other commands print "interrupted" and
// exit 130. Text output escapes what users wrote (stream IDs, types,
// metadata, data, errors) when it holds control characters, bidi overrides
// or invalid UTF-8, so that a value cannot forge a row or drive the
// terminal. --version prints the version ([WithVersion]); the hidden
// completion command prints shell completion scripts (docs/cli.md).
package cli
