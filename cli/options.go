package cli

import (
	"log/slog"
	"os"

	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/upcast"
)

// DefaultSchema is the PostgreSQL schema used when neither [WithSchema] nor
// --schema says otherwise; it is the default of every Chronicle store.
const DefaultSchema = "chronicle"

// DefaultName is the binary name used in usage and error messages unless
// [WithName] says otherwise.
const DefaultName = "chronicle"

// Environment variables read by the commands. Flags take precedence.
const (
	// EnvDatabaseURL holds the PostgreSQL connection string.
	EnvDatabaseURL = "DATABASE_URL"
	// EnvNATSURL holds the NATS server URL.
	EnvNATSURL = "NATS_URL"
)

// Option configures an [App].
type Option func(*config)

type config struct {
	name        string
	short       string
	schema      string
	projections []projection.Projection
	registry    *codec.Registry
	chain       *upcast.Chain
	runnerOpts  []projection.Option
	relayOpts   []relay.Option
	relayStream *relay.StreamConfig
	getenv      func(string) string
	logger      *slog.Logger
	version     string
}

func defaultConfig() config {
	return config{name: DefaultName, schema: DefaultSchema, getenv: os.Getenv}
}

// WithName sets the binary's name, shown in usage and at the start of error
// messages ("bankctl: streams show: ..."). The default is [DefaultName].
func WithName(name string) Option {
	return func(c *config) {
		if name != "" {
			c.name = name
		}
	}
}

// WithVersion sets the service's version, which --version prints with
// Chronicle's beside it ("bankctl version 1.4.2 (chronicle 0.2.0)"). By
// default --version prints Chronicle's version, [chronicle.Version].
func WithVersion(version string) Option { return func(c *config) { c.version = version } }

// WithDescription sets the one-line description shown at the top of the
// binary's help.
func WithDescription(short string) Option { return func(c *config) { c.short = short } }

// WithSchema sets the default PostgreSQL schema of the event store and of
// the snapshot, projection and relay tables; --schema overrides it. The
// default is [DefaultSchema].
func WithSchema(schema string) Option {
	return func(c *config) {
		if schema != "" {
			c.schema = schema
		}
	}
}

// WithProjections registers the service's projections, so that
// "projections status", "projections rebuild" and "dlq retry|discard" can
// run their code. Their handlers must work with the PostgreSQL projection
// store (projection/postgres) in the chosen schema, as they do in the
// service. Calling it again adds more.
func WithProjections(ps ...projection.Projection) Option {
	return func(c *config) { c.projections = append(c.projections, ps...) }
}

// WithRegistry registers the service's codec registry. "streams show" and
// "tail" then report the Go type of each event, and the projections
// registered with [WithProjections] receive decoded events. Without
// [WithUpcasters], records that are not at their type's current schema
// version cannot be upcast.
func WithRegistry(reg *codec.Registry) Option { return func(c *config) { c.registry = reg } }

// WithUpcasters registers the service's upcaster chain (built with
// upcast.New over its codec registry, which it implies). "streams show"
// and "tail" show events upcast to their current schema unless --raw is
// given, and projections receive decoded, upcast events as they do in the
// service.
func WithUpcasters(chain *upcast.Chain) Option { return func(c *config) { c.chain = chain } }

// WithRunnerOptions passes options to the projection runner the commands
// build (for example projection.WithCatchUpBatchSize). The CLI already sets
// the decoder, the log status, the progress callback and the logger.
func WithRunnerOptions(opts ...projection.Option) Option {
	return func(c *config) { c.runnerOpts = append(c.runnerOpts, opts...) }
}

// WithRelayOptions passes options to the relay that "relay" runs (for
// example relay.WithWindow). The CLI already sets the schema and the
// logger; --relay-name overrides the name, and --stream and
// --subject-prefix change only the stream's name and subject prefix,
// keeping the rest of a relay.WithStream given here. [WithRelayStream] is
// the plainer way to give the stream.
func WithRelayOptions(opts ...relay.Option) Option {
	return func(c *config) { c.relayOpts = append(c.relayOpts, opts...) }
}

// WithRelayStream sets the JetStream stream the relay publishes to, as
// the service's relay does, over any relay.WithStream among
// [WithRelayOptions]; --stream and --subject-prefix override only its name
// and subject prefix, and their --help shows the service's values. The
// default is the relay's for the schema (wire.DefaultTopology): stream
// CHRONICLE and subjects chronicle.events.> for schema "chronicle",
// CHRONICLE_BANK and chronicle_bank.events.> for schema "bank".
func WithRelayStream(sc relay.StreamConfig) Option {
	return func(c *config) { c.relayStream = &sc }
}

// WithEnv sets how environment variables are read; the default is
// os.Getenv. Tests use it to run the CLI with an environment of their own.
func WithEnv(getenv func(key string) string) Option {
	return func(c *config) {
		if getenv != nil {
			c.getenv = getenv
		}
	}
}

// WithLogger sets the logger of the stores, runner and relay the commands
// build. By default "relay" logs at info level and other commands at warn
// level to stderr, and --verbose turns on debug logs.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }
