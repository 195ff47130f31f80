package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chronicle-go/chronicle/internal/pgmigrate"
)

// Defaults of the relay's options.
const (
	// DefaultName is the relay's name unless [WithName] says otherwise.
	DefaultName = "default"
	// DefaultStreamName is the JetStream stream's name unless
	// [WithStream] says otherwise.
	DefaultStreamName = "CHRONICLE"
	// DefaultWindow is the number of publishes in flight (sent, not yet
	// acknowledged) unless [WithWindow] says otherwise.
	DefaultWindow = 256
)

// StreamConfig describes the JetStream stream the relay creates or updates
// when it becomes the leader. The zero value means every default.
type StreamConfig struct {
	// Name is the stream's name; the default is [DefaultStreamName].
	Name string
	// SubjectPrefix is the prefix of every subject; the default is
	// [DefaultSubjectPrefix]. The stream captures SubjectPrefix + ".>".
	SubjectPrefix string
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

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Name == "" {
		c.Name = DefaultStreamName
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

func (c StreamConfig) validate() error {
	var errs []error
	if strings.ContainsAny(c.Name, " \t\r\n.*>/\\") {
		errs = append(errs, fmt.Errorf("stream name %q must not contain spaces, '.', '*', '>', '/' or '\\'", c.Name))
	}
	if c.SubjectPrefix != escapeTokens(c.SubjectPrefix) {
		errs = append(errs, fmt.Errorf("subject prefix %q must be dot-separated tokens without wildcards or spaces", c.SubjectPrefix))
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

// escapeTokens applies [EscapeToken] to each dot-separated token of a
// subject, so an invalid subject prefix differs from its escaped form.
func escapeTokens(subject string) string {
	parts := strings.Split(subject, ".")
	for i, p := range parts {
		parts[i] = EscapeToken(p)
	}
	return strings.Join(parts, ".")
}

func (c StreamConfig) jetstream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.Name,
		Description: "Chronicle events, published by the relay in global order",
		Subjects:    []string{c.SubjectPrefix + ".>"},
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
	minBackoff    time.Duration
	maxBackoff    time.Duration
}

func defaultConfig() config {
	return config{
		schema:        pgmigrate.DefaultSchema,
		name:          DefaultName,
		window:        DefaultWindow,
		lockPoll:      time.Second,
		ackTimeout:    5 * time.Second,
		flushInterval: 100 * time.Millisecond,
		minBackoff:    100 * time.Millisecond,
		maxBackoff:    5 * time.Second,
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

// WithStreamName sets only the JetStream stream's name, keeping the other
// fields given by [WithStream] (or their defaults). Command lines use it for
// a --stream flag that must not reset the service's stream configuration.
// An empty name means [DefaultStreamName].
func WithStreamName(name string) Option { return func(c *config) { c.stream.Name = name } }

// WithSubjectPrefix sets only the subject prefix of the JetStream stream,
// keeping its other fields. An empty prefix means [DefaultSubjectPrefix].
func WithSubjectPrefix(prefix string) Option {
	return func(c *config) { c.stream.SubjectPrefix = prefix }
}

// ResolveStream returns the JetStream stream configuration that [New]
// would use with opts, defaults filled in. Tools use it to show a
// service's stream without building a relay.
func ResolveStream(opts ...Option) StreamConfig {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return cfg.stream.withDefaults()
}

// WithWindow sets how many publishes may wait for their acknowledgement at
// once; the default is [DefaultWindow].
func WithWindow(n int) Option { return func(c *config) { c.window = n } }

// WithLogger sets the logger; nil discards logs (the default).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithLockPollInterval sets how often a waiting relay tries to take the
// leadership; the default is one second.
func WithLockPollInterval(d time.Duration) Option { return func(c *config) { c.lockPoll = d } }

// WithAckTimeout sets how long the relay waits for JetStream to
// acknowledge a publish before it gives up, resynchronises and publishes
// again; the default is five seconds.
func WithAckTimeout(d time.Duration) Option { return func(c *config) { c.ackTimeout = d } }

// WithBackoff sets the first and the longest pause between attempts after
// a failure (NATS or PostgreSQL unreachable); the pause doubles up to max.
// The defaults are 100ms and 5s.
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) { c.minBackoff, c.maxBackoff = min, max }
}

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
	if c.minBackoff <= 0 || c.maxBackoff < c.minBackoff {
		errs = append(errs, fmt.Errorf("backoff %s..%s: want 0 < min <= max", c.minBackoff, c.maxBackoff))
	}
	if len(errs) > 0 {
		return fmt.Errorf("relay: invalid options: %w", errors.Join(errs...))
	}
	return nil
}
