package projection

import (
	"log/slog"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/backoff"
	"github.com/chronicle-go/chronicle/internal/telemetry"
)

// Decoder turns a stored record into the events a handler sees: upcast to
// the current schema and decoded into Go values. An upcaster that splits one
// event into several returns several values. *upcast.Chain is one, and
// more: an [UpcastingDecoder]; pass the chain itself to [WithDecoder] rather
// than wrapping its Decode method, so that the runner can see the upcast
// records.
type Decoder interface {
	Decode(rec eventstore.Record) ([]any, error)
}

// UpcastingDecoder is a [Decoder] that can also bring a record to the
// current schema without decoding it, as *upcast.Chain does. With one, the
// runner upcasts each stored record first, matches the projection's Types
// against the upcast records (so events stored under a type's old name
// still reach a projection that lists the new one), decodes only the
// wanted ones, and hands each handler call its own upcast record in
// Event.Record (type, schema version and, for a split, the output's ID).
type UpcastingDecoder interface {
	Decoder
	// NeedsUpcast reports whether rec is not at its type's current schema
	// version, so that Upcast would change it.
	NeedsUpcast(rec eventstore.Record) bool
	// Upcast returns rec brought to the current schema: one record, or
	// several for a split, in order. Decode of each returned record yields
	// its value.
	Upcast(rec eventstore.Record) ([]eventstore.Record, error)
}

// DecoderFunc adapts a function to a [Decoder].
type DecoderFunc func(rec eventstore.Record) ([]any, error)

// Decode calls f.
func (f DecoderFunc) Decode(rec eventstore.Record) ([]any, error) { return f(rec) }

// SingleDecoder adapts a function that decodes a record into one value,
// such as a codec registry's DecodeRecord, to a [Decoder].
func SingleDecoder(f func(rec eventstore.Record) (any, error)) Decoder {
	return DecoderFunc(func(rec eventstore.Record) ([]any, error) {
		v, err := f(rec)
		if err != nil {
			return nil, err
		}
		return []any{v}, nil
	})
}

// DeadLetterPublisher announces dead letters beyond the store, for example
// on a NATS subject (projection/jetstream). Failing to publish is logged and
// does not stop the projection.
type DeadLetterPublisher interface {
	PublishDeadLetter(dl DeadLetter) error
}

// Progress reports how far a catch-up or rebuild has come. Done and Total
// are measured in global log sequence numbers since the start of the
// catch-up, so they are an estimate when the projection filters events.
type Progress struct {
	// Build is the build being caught up.
	Build Build
	// Rebuild is true when the build is not the current one yet.
	Rebuild bool
	// Done and Total are the progress so far and the expected end.
	Done, Total int64
	// Applied is the number of events handled so far.
	Applied int64
	// Rate is in events handled per second.
	Rate float64
	// ETA estimates the time left.
	ETA time.Duration
	// Finished is set on the last report, when the catch-up reached the end
	// of the log.
	Finished bool
}

// Option configures a [Runner] or an [Admin]. A nil Option is ignored.
type Option func(*options)

type options struct {
	source       Source
	decoder      Decoder
	logger       *slog.Logger
	backoff      backoff.Policy
	publisher    DeadLetterPublisher
	progress     func(Progress)
	catchUpBatch int
	haltPoll     time.Duration
	logStatus    LogStatusFunc
	heartbeat    time.Duration
	owner        string
	leaseTTL     time.Duration
	telemetry    telemetry.Providers
}

func defaultOptions() options {
	return options{
		backoff:      backoff.Policy{First: 50 * time.Millisecond, Longest: 5 * time.Second},
		catchUpBatch: 1000,
		haltPoll:     time.Second,
		heartbeat:    DefaultHeartbeatInterval,
		leaseTTL:     DefaultLeaseTTL,
	}
}

// WithSource sets where live records come from; the default follows the
// event store ([StoreSource]).
func WithSource(s Source) Option { return func(o *options) { o.source = s } }

// WithDecoder sets how records are decoded (and upcast) before handlers see
// them. Without one, Event.Data is nil and handlers read Record.Data.
func WithDecoder(d Decoder) Option { return func(o *options) { o.decoder = d } }

// WithLogger sets the logger (default [slog.Default]); nil keeps the
// default. Errors are logged under the key "err".
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithBackoff sets the first and the longest wait (default 50ms, doubling
// up to 5s, jittered) between attempts of a failing event and between
// retries while the store is unavailable; the restarts of a failing
// projection (Setup failing, the source or the store down) wait four times
// first, up to six times longest.
func WithBackoff(first, longest time.Duration) Option {
	return func(o *options) { o.backoff = backoff.Policy{First: first, Longest: longest} }
}

// restartPolicy is the backoff of a failing projection's restarts.
func (o options) restartPolicy() backoff.Policy {
	return backoff.Policy{First: o.backoff.First * 4, Longest: o.backoff.Longest * 6}
}

// WithDeadLetterPublisher announces dead letters through p.
func WithDeadLetterPublisher(p DeadLetterPublisher) Option {
	return func(o *options) { o.publisher = p }
}

// WithProgress calls f with the progress of catch-ups and rebuilds, at most
// a few times a second and once more when one finishes. f must not block.
func WithProgress(f func(Progress)) Option { return func(o *options) { o.progress = f } }

// WithCatchUpBatchSize sets how many events a unit of work applies while
// catching up or rebuilding from the event store (default 1000, and never
// fewer than the projection's BatchSize).
func WithCatchUpBatchSize(n int) Option { return func(o *options) { o.catchUpBatch = n } }

// WithHaltPoll sets how often a halted projection looks for its dead letter
// being retried or discarded by another process (default 1s).
func WithHaltPoll(d time.Duration) Option { return func(o *options) { o.haltPoll = d } }

// WithHeartbeat sets how often a running runner records a heartbeat per
// projection build in its store (default [DefaultHeartbeatInterval]), when
// the store is a [HeartbeatStore]. Readers take a runner not heard from
// for [HeartbeatTolerance] intervals for stopped. At the same pace the
// runner looks for builds registered or switched by other processes. Zero
// or less turns both off.
func WithHeartbeat(interval time.Duration) Option { return func(o *options) { o.heartbeat = interval } }

// WithOwner sets the name under which the runner records its heartbeats
// (default: host name and process ID, "host:1234").
func WithOwner(name string) Option { return func(o *options) { o.owner = name } }
