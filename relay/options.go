package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/internal/backoff"
	"github.com/chronicle-go/chronicle/internal/pgmigrate"
	"github.com/chronicle-go/chronicle/internal/telemetry"
	"github.com/chronicle-go/chronicle/relay/wire"
)

// Defaults of the relay's options.
const (
	// DefaultName is the relay's name unless [WithName] says otherwise.
	DefaultName = "default"
	// DefaultWindow is the number of publishes in flight (sent, not yet
	// acknowledged) unless [WithWindow] says otherwise.
	DefaultWindow = 256
)

// StreamConfig describes the JetStream stream the relay creates or updates
// when it becomes the leader. The zero value means every default.
type StreamConfig struct {
	// Topology is the stream's name and subject prefix; empty fields take
	// the defaults of the relay's schema (see [wire.DefaultTopology]).
	// Consumers must be given the same topology.
	wire.Topology
	// Retention is the stream's retention policy; the default is
	// jetstream.LimitsPolicy. A work-queue stream cannot serve several
	// projections and is refused.
	Retention jetstream.RetentionPolicy
	// MaxAge is how long messages are kept; zero keeps them forever.
	MaxAge time.Duration
	// Duplicates is the window in which JetStream drops a message whose
	// Nats-Msg-Id it already stored; zero means the server's default (two
	// minutes).
	Duplicates time.Duration
	// Replicas is the number of replicas in a cluster; zero means 1.
	Replicas int
	// Storage is file (the default) or memory storage.
	Storage jetstream.StorageType
}

func (c StreamConfig) withDefaults(schema string) StreamConfig {
	c.Topology = c.Topology.WithDefaults(schema)
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

func (c StreamConfig) validate() error {
	var errs []error
	if err := c.Topology.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Retention == jetstream.WorkQueuePolicy {
		errs = append(errs, errors.New("a work-queue stream cannot serve several projections; use limits or interest retention"))
	}
	if c.MaxAge < 0 || c.Duplicates < 0 {
		errs = append(errs, errors.New("stream MaxAge and Duplicates must not be negative"))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("stream replicas %d must be between 1 and 5", c.Replicas))
	}
	return errors.Join(errs...)
}

func (c StreamConfig) jetstream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "Chronicle events, published by the relay in global order",
		Subjects:    c.Subjects(),
		Retention:   c.Retention,
		MaxAge:      c.MaxAge,
		Duplicates:  c.Duplicates,
		Replicas:    c.Replicas,
		Storage:     c.Storage,
	}
}

// Option configures a [Relay].
type Option func(*config)

type config struct {
	schema        string
	name          string
	stream        StreamConfig
	window        int
	logger        *slog.Logger
	lockPoll      time.Duration
	ackTimeout    time.Duration
	flushInterval time.Duration
	backoff       backoff.Policy
	maxEventSize  int
	telemetry     telemetry.Providers
}

// newConfig applies opts (skipping nil ones) to the defaults and fills in
// the stream's defaults from the schema.
func newConfig(opts []Option) config {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	cfg.stream = cfg.stream.withDefaults(cfg.schema)
	return cfg
}

func defaultConfig() config {
	return config{
		schema:        pgmigrate.DefaultSchema,
		name:          DefaultName,
		window:        DefaultWindow,
		lockPoll:      time.Second,
		ackTimeout:    5 * time.Second,
		flushInterval: 100 * time.Millisecond,
		backoff:       backoff.Policy{First: 100 * time.Millisecond, Longest: 5 * time.Second},
	}
}

// WithSchema sets the PostgreSQL schema of the relay's checkpoint table;
// the default is "chronicle". Use the event store's schema.
func WithSchema(name string) Option { return func(c *config) { c.schema = name } }

// WithName sets the relay's name, which keys its leadership lock and its
// checkpoint row; the default is [DefaultName]. Relays that publish the same
// store to different JetStream streams need different names.
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithStream sets the JetStream stream the relay publishes to; fields left
// zero keep their defaults.
func WithStream(s StreamConfig) Option { return func(c *config) { c.stream = s } }

// WithTopology sets the JetStream stream's name, subject prefix and bucket
// count (see wire.Topology.Buckets), keeping the other fields given by
// [WithStream]; an empty field keeps what earlier options set, or the schema's default (see [wire.DefaultTopology]). Give
// consumers the same topology. Command lines use it for --stream and
// --subject-prefix flags that must not reset the service's stream
// configuration.
func WithTopology(t wire.Topology) Option {
	return func(c *config) {
		if t.Stream != "" {
			c.stream.Stream = t.Stream
		}
		if t.SubjectPrefix != "" {
			c.stream.SubjectPrefix = t.SubjectPrefix
		}
		if t.Buckets != 0 {
			c.stream.Buckets = t.Buckets
		}
	}
}

// ResolveStream returns the JetStream stream configuration that [New]
// would use with opts, defaults filled in (the topology's from the schema
// given by [WithSchema]). Tools use it to show a service's stream without
// building a relay.
func ResolveStream(opts ...Option) StreamConfig {
	cfg := newConfig(opts)
	return cfg.stream
}

// WithWindow sets how many publishes may wait for their acknowledgement at
// once; the default is [DefaultWindow].
func WithWindow(n int) Option { return func(c *config) { c.window = n } }

// WithLogger sets the logger; nil (the default) means slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithLockPollInterval sets how often a waiting relay tries to take the
// leadership; the default is one second.
func WithLockPollInterval(d time.Duration) Option { return func(c *config) { c.lockPoll = d } }

// WithAckTimeout sets how long the relay waits for JetStream to
// acknowledge a publish before it gives up, resynchronises and publishes
// again; the default is five seconds.
func WithAckTimeout(d time.Duration) Option { return func(c *config) { c.ackTimeout = d } }

// WithBackoff sets the first and the longest pause the relay waits, with
// jitter, before it tries again after a failure: taking the leadership
// again after PostgreSQL failed, and resynchronising with the stream after
// a publish, an acknowledgement or a read of the log failed. The pause
// doubles after each failure in a row, up to longest. It does not govern
// the wait for the leadership while another relay leads (see
// [WithLockPollInterval]). The defaults are 100ms and 5s.
func WithBackoff(first, longest time.Duration) Option {
	return func(c *config) { c.backoff = backoff.Policy{First: first, Longest: longest} }
}

// WithMaxEventSize tells the relay the largest event Data the store
// accepts, in bytes, when the store does not say so itself (a store that
// has a MaxEventSize() int method does). At the start of each leadership
// the relay compares it with the NATS server's max_payload and warns when
// events may not fit; such events are published without their Data (see
// wire.HeaderElided) either way. Zero (the default) means the store's own
// figure, or none.
func WithMaxEventSize(n int) Option { return func(c *config) { c.maxEventSize = n } }

func (c *config) validate() error {
	var errs []error
	if err := pgmigrate.ValidateSchema(c.schema); err != nil {
		errs = append(errs, err)
	}
	if c.name == "" {
		errs = append(errs, errors.New("empty relay name"))
	}
	if err := c.stream.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.window < 1 {
		errs = append(errs, fmt.Errorf("window %d must be at least 1", c.window))
	}
	if c.lockPoll <= 0 || c.ackTimeout <= 0 {
		errs = append(errs, errors.New("lock poll interval and ack timeout must be positive"))
	}
	if !c.backoff.Valid() {
		errs = append(errs, fmt.Errorf("backoff %s..%s: want 0 < first <= longest", c.backoff.First, c.backoff.Longest))
	}
	if c.maxEventSize < 0 {
		errs = append(errs, fmt.Errorf("max event size %d must not be negative", c.maxEventSize))
	}
	if len(errs) > 0 {
		return fmt.Errorf("relay: invalid options: %w", errors.Join(errs...))
	}
	return nil
}
