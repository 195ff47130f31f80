package process

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/backoff"
	"github.com/chronicle-go/chronicle/internal/telemetry"
	"github.com/chronicle-go/chronicle/projection"
)

// Envelope is a command as a command handler gets it.
type Envelope struct {
	// ID is the command's deterministic ID: a UUIDv5 of the process, the
	// triggering event and the step. Use it as Nats-Msg-Id, or let
	// [TxStore] derive the IDs of the events the command appends.
	ID uuid.UUID
	// Type and ProcessID name the process that sent it.
	Type, ProcessID string
	// Name is the command's name, Data its JSON payload.
	Name string
	Data json.RawMessage
	// Compensation is true for a compensating command.
	Compensation bool
	// Attempt counts deliveries, from 1.
	Attempt int
	// Local is true when a local command ([WithLocalCommand]) runs inside
	// the transaction of the trigger that decided it. A handler that
	// would keep that transaction open (a slow call) can return an error
	// instead: the command then goes to the dispatcher, which delivers it
	// in a transaction of its own (Local false).
	Local bool
	// Metadata carries the correlation ID of the process's trigger and the
	// command's ID as causation ID; the context a handler gets carries
	// them too, so events it appends through a repository are stamped.
	Metadata eventstore.Metadata
}

// Decode decodes the command's payload into v.
func (e Envelope) Decode(v any) error { return json.Unmarshal(e.Data, v) }

// CommandHandler delivers a command: to an aggregate of the same store
// (through a repository built on [TxStore], inside the dispatcher's
// transaction), or to another service ([Publish]). An error wrapping
// [ErrRejected] refuses the command for good; any other error is retried
// with backoff, and after the runner's command attempts reported to the
// process as CommandFailed.
type CommandHandler func(ctx context.Context, cmd Envelope) error

// Option configures a [Runner] or an [Admin]. A nil Option is ignored.
type Option func(*options)

type options struct {
	schema       string
	clock        func() time.Time
	logger       *slog.Logger
	backoff      backoff.Policy
	timerPoll    time.Duration
	commandPoll  time.Duration
	timerBatch   int
	commandBatch int
	cmdAttempts  int
	lease        time.Duration
	handlers     map[string]CommandHandler
	local        map[string]bool
	projOpts     []projection.Option
	noDispatcher bool
	noTimers     bool
	workers      int
	owner        string
	telemetry    telemetry.Providers
}

func defaultOptions() options {
	return options{
		clock:        time.Now,
		backoff:      backoff.Policy{First: 50 * time.Millisecond, Longest: 5 * time.Second},
		timerPoll:    time.Second,
		commandPoll:  time.Second,
		timerBatch:   1000,
		commandBatch: 64,
		cmdAttempts:  10,
		lease:        30 * time.Second,
		handlers:     map[string]CommandHandler{},
		local:        map[string]bool{},
	}
}

// WithSchema sets the schema of the process tables (default: the schema of
// the projection store).
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithClock sets the clock that dates timers and decides when they are
// due (default time.Now); tests pass one they can advance.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.clock = now
		}
	}
}

// WithLogger sets the logger (default [slog.Default]); nil keeps the
// default. Errors are logged under the key "err".
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithBackoff sets the first and the longest wait (default 50ms, doubling
// up to 5s, jittered) between deliveries of a failing command, and between
// polls of the timers and commands tables while the database fails. The
// retries of a failing trigger are the projection runner's (pass its own
// WithBackoff through [WithProjectionOptions]).
func WithBackoff(first, longest time.Duration) Option {
	return func(o *options) { o.backoff = backoff.Policy{First: first, Longest: longest} }
}

// WithTimerPoll sets how often the runner looks for due timers (default
// 1s); a timer scheduled in this process wakes it at once.
func WithTimerPoll(d time.Duration) Option { return func(o *options) { o.timerPoll = d } }

// WithCommandPoll sets how often the dispatcher looks for commands decided
// in other processes (default 1s); a command decided by this runner wakes
// it once committed.
func WithCommandPoll(d time.Duration) Option { return func(o *options) { o.commandPoll = d } }

// WithCommand registers the handler that delivers the commands named name:
// the dispatcher delivers each at least once, in a transaction of its own,
// after the trigger that decided it committed.
func WithCommand(name string, h CommandHandler) Option {
	return func(o *options) { o.handlers[name] = h; delete(o.local, name) }
}

// WithLocalCommand registers the handler of the commands named name as a
// local command: one that only writes to aggregates of the runner's event
// store, through a repository built on [TxStore]. It runs inside the
// transaction of the trigger that decided it, and its outcome is handled
// at once, in the same transaction, as the process's next trigger (ADR
// 0016): the aggregate's events, the process's events and the checkpoint
// commit together, and a process whose steps are local commands takes one
// transaction per event of the log instead of two per step. A local
// command must have no effect outside that transaction (no message, no
// call to another service: use [WithCommand] for those), since the
// transaction may roll back and the trigger be handled again.
//
// A local command that fails with an error wrapping [ErrRejected] is
// reported to the process at once; one that fails otherwise goes to the
// outbox, and the dispatcher retries it as a command registered with
// [WithCommand].
func WithLocalCommand(name string, h CommandHandler) Option {
	return func(o *options) { o.handlers[name] = h; o.local[name] = true }
}

// WithCommandAttempts sets how many times a command is delivered before it
// is reported to its process as failed (default 10).
func WithCommandAttempts(n int) Option { return func(o *options) { o.cmdAttempts = n } }

// WithProjectionOptions passes options to the projection runner under the
// process runner (its decoder, source, backoff, ...).
func WithProjectionOptions(opts ...projection.Option) Option {
	return func(o *options) { o.projOpts = append(o.projOpts, opts...) }
}

// WithoutDispatcher runs no command dispatcher in this runner (another
// process delivers the commands).
func WithoutDispatcher() Option { return func(o *options) { o.noDispatcher = true } }

// WithoutTimers runs no timer poller in this runner.
func WithoutTimers() Option { return func(o *options) { o.noTimers = true } }

// WithDispatchWorkers sets how many commands the dispatcher delivers at
// once (default: a third of the pool's connections, between 1 and 8). Each
// holds a transaction while its handler runs, and a handler that loads an
// aggregate takes a second connection: keep it well below the pool's size.
func WithDispatchWorkers(n int) Option { return func(o *options) { o.workers = n } }
