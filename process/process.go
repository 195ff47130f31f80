package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/snapshot"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalid is wrapped by errors about a type definition or an option.
	ErrInvalid = errors.New("process: invalid")
	// ErrRejected is wrapped by a command handler's error when the command
	// was refused for good (a closed account): the dispatcher does not
	// retry it and reports it to the process at once.
	ErrRejected = errors.New("process: command rejected")
	// ErrNotFound is returned for a process that does not exist.
	ErrNotFound = errors.New("process: not found")
	// ErrNotRetryable is returned by a retry of a process that is not in
	// the state compensation_failed.
	ErrNotRetryable = errors.New("process: not retryable")
)

// Reject marks err as a refusal of a command: the dispatcher reports it to
// the process at once instead of retrying.
func Reject(err error) error { return fmt.Errorf("%w: %w", ErrRejected, err) }

// Status is the state of a process instance.
type Status string

// Statuses of a process. Completed, Failed and Compensated are terminal: a
// terminal process records late triggers and timers and acts on none.
const (
	Running            Status = "running"
	Completed          Status = "completed"
	Failed             Status = "failed"
	Compensating       Status = "compensating"
	Compensated        Status = "compensated"
	CompensationFailed Status = "compensation_failed"
)

// Terminal reports whether s is completed, failed or compensated.
func (s Status) Terminal() bool { return s == Completed || s == Failed || s == Compensated }

// Applier is a process's state: it moves by the events the process records
// (and those it recorded before, when it is loaded), like an aggregate.
type Applier interface {
	Apply(event any)
}

// Type defines a process type with state S.
type Type[S Applier] struct {
	// Name identifies the type: a plain lower-case identifier. Its
	// processes live in the streams "process_<name>-<id>", and its runner
	// is the projection "process_<name>".
	Name string
	// Starts lists the event types that start a process; an event of
	// another type that correlates to no process yet is ignored.
	Starts []string
	// Types, when not empty, lists the event types that reach the process
	// (Starts included). Empty means every event of Categories.
	Types []string
	// Categories, when not empty, lists the stream categories of the
	// events that reach the process.
	Categories []string
	// Correlate returns the ID of the process an event is for, or "" when
	// it is for none. Required. [ByStream], [ByCorrelationID] and a field
	// of the event's data are the usual keys.
	Correlate func(ev projection.Event) string
	// New returns the zero state of process id. Required.
	New func(id string) S
	// Handle reacts to a trigger while the process is running. Required.
	Handle func(ctx context.Context, p *Process[S], t Trigger) error
	// Codec encodes the events the process records with [Process.Record]
	// and decodes them when it is loaded (an *upcast.Chain upcasts them).
	// Required when the process records events of its own.
	Codec aggregate.Codec
	// OnFailure is what happens to a trigger whose handling failed
	// MaxAttempts times: it goes to the dead letters of the projection
	// "process_<name>" with the process ID in its error, then the type
	// skips it or halts.
	OnFailure projection.Policy
	// MaxAttempts is how many times a trigger is tried; zero means
	// projection.DefaultMaxAttempts.
	MaxAttempts int
	// Snapshots, when set, keeps snapshots of the type's processes (their
	// built-in state and S, encoded as JSON: S's exported fields) in this
	// store, so that a long-lived process loads from its latest snapshot
	// and the events after it instead of its whole stream. A snapshot is
	// taken when a process is loaded and SnapshotPolicy says the events
	// read since the last one are due (only committed events are read: a
	// snapshot never holds a trigger's uncommitted work). Snapshots are a
	// cache: one of another SnapshotRevision, or that fails to decode, is
	// ignored and the stream replayed.
	Snapshots snapshot.Store
	// SnapshotPolicy decides when a load takes a snapshot (default
	// snapshot.Every(100)).
	SnapshotPolicy snapshot.Policy
	// SnapshotRevision is the revision of the shape of S (default 1): bump
	// it when S changes shape, and older snapshots are ignored.
	SnapshotRevision int
	// Partitions, when above 1, handles the type's triggers in this many
	// partitions in parallel (by a hash of the trigger's stream: see
	// projection.Projection.Partitions). Two triggers of one process may
	// then be handled at once; the process's stream version guards it, and
	// the loser is retried on the fresh state.
	Partitions int
}

// Definition is a process type ready for a [Runner]: a *[Type].
type Definition interface {
	kind() (*kind, error)
}

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// Category returns the stream category of the type's processes.
func (t *Type[S]) Category() string { return "process_" + t.Name }

// StreamID returns the stream of process id.
func (t *Type[S]) StreamID(id string) string { return t.Category() + "-" + id }

// Validate reports every problem with t, joined.
func (t *Type[S]) Validate() error {
	var errs []error
	if !nameRE.MatchString(t.Name) {
		errs = append(errs, fmt.Errorf("%w: process type name %q: want a plain lower-case identifier of at most 40 bytes", ErrInvalid, t.Name))
	}
	if t.Correlate == nil {
		errs = append(errs, fmt.Errorf("%w: process type %q: no Correlate", ErrInvalid, t.Name))
	}
	if t.New == nil {
		errs = append(errs, fmt.Errorf("%w: process type %q: no New", ErrInvalid, t.Name))
	}
	if t.Handle == nil {
		errs = append(errs, fmt.Errorf("%w: process type %q: no Handle", ErrInvalid, t.Name))
	}
	if len(t.Starts) == 0 {
		errs = append(errs, fmt.Errorf("%w: process type %q: no Starts", ErrInvalid, t.Name))
	}
	for _, s := range t.Starts {
		if len(t.Types) > 0 && !slices.Contains(t.Types, s) {
			errs = append(errs, fmt.Errorf("%w: process type %q: start type %q is not in Types", ErrInvalid, t.Name, s))
		}
	}
	if t.OnFailure != projection.Skip && t.OnFailure != projection.Halt {
		errs = append(errs, fmt.Errorf("%w: process type %q: unknown failure policy %d", ErrInvalid, t.Name, int(t.OnFailure)))
	}
	return errors.Join(errs...)
}

func (t *Type[S]) kind() (*kind, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &kind{
		name: t.Name, category: t.Category(), starts: t.Starts, types: t.Types, categories: t.Categories,
		correlate: t.Correlate, codec: t.Codec, policy: t.OnFailure, attempts: t.MaxAttempts, partitions: t.Partitions,
		snapshots: t.Snapshots, snapPolicy: t.SnapshotPolicy, snapRevision: max(t.SnapshotRevision, 1),
		newState: func(id string) Applier { return t.New(id) },
		handle: func(ctx context.Context, c *core, tr Trigger) error {
			return t.Handle(ctx, &Process[S]{c: c}, tr)
		},
	}, nil
}

// ByStream correlates an event by the ID of its stream without the
// category: the event of "order-42" is for process "42".
func ByStream(ev projection.Event) string {
	id := ev.Record.StreamID
	if c := ev.Record.Category(); len(c) < len(id) {
		return id[len(c)+1:]
	}
	return id
}

// ByCorrelationID correlates an event by its correlation ID.
func ByCorrelationID(ev projection.Event) string { return ev.Record.Metadata.CorrelationID() }

// kind is a process type with its state type erased.
type kind struct {
	name, category            string
	starts, types, categories []string
	correlate                 func(projection.Event) string
	codec                     aggregate.Codec
	policy                    projection.Policy
	attempts                  int
	partitions                int
	snapshots                 snapshot.Store
	snapPolicy                snapshot.Policy
	snapRevision              int
	newState                  func(id string) Applier
	handle                    func(ctx context.Context, c *core, t Trigger) error
}

// TriggerKind says what triggered a handler.
type TriggerKind int

// Kinds of triggers.
const (
	// EventTrigger is an event of the log correlated to the process.
	EventTrigger TriggerKind = iota
	// TimerTrigger is one of the process's timers firing.
	TimerTrigger
	// CommandSucceeded is a command of the process delivered.
	CommandSucceeded
	// CommandFailed is a command of the process rejected, or given up
	// after its attempts.
	CommandFailed
)

// String names the kind.
func (k TriggerKind) String() string {
	switch k {
	case EventTrigger:
		return "event"
	case TimerTrigger:
		return "timer"
	case CommandSucceeded:
		return "command succeeded"
	case CommandFailed:
		return "command failed"
	}
	return fmt.Sprintf("TriggerKind(%d)", int(k))
}

// Trigger is what a handler reacts to.
type Trigger struct {
	// Kind says what happened.
	Kind TriggerKind
	// Event is the triggering record: the event of the log, or the
	// TimerFired, CommandSucceeded or CommandFailed event in the process's
	// stream. Event.Data is the decoded event for an EventTrigger when the
	// runner has a decoder.
	Event projection.Event
	// Timer is the name of the timer that fired (TimerTrigger).
	Timer string
	// Command is the command the result is about (CommandSucceeded,
	// CommandFailed).
	Command CommandResult
}

// Is reports whether t is an event of type typ.
func (t Trigger) Is(typ string) bool { return t.Kind == EventTrigger && t.Event.Record.Type == typ }

// CommandResult is the outcome of one command.
type CommandResult struct {
	// ID is the command's ID.
	ID uuid.UUID
	// Name is the command's name.
	Name string
	// Error is why it failed (CommandFailed).
	Error string
	// Rejected is true when the handler refused it ([ErrRejected]); false
	// when the dispatcher gave up after its attempts.
	Rejected bool
}

// Process is a handler's view of one process instance: its state, and the
// decisions of this trigger, recorded when the handler returns nil and
// committed with the trigger.
type Process[S Applier] struct{ c *core }

// ID returns the process's ID.
func (p *Process[S]) ID() string { return p.c.id }

// State returns the process's state, moved by the events recorded so far.
func (p *Process[S]) State() S { return p.c.state.(S) }

// Status returns the process's status.
func (p *Process[S]) Status() Status { return p.c.meta.Status }

// Now returns the runner's clock's time.
func (p *Process[S]) Now() time.Time { return p.c.now }

// Record records an event of the process (encoded by the type's Codec) and
// applies it to the state.
func (p *Process[S]) Record(event any) { p.c.record(event) }

// Send decides to send a command, with a deterministic ID, returned here:
// a local command ([WithLocalCommand]) runs once the handler returns, in
// the trigger's transaction; another ([WithCommand]) is handed to its
// handler by the dispatcher at least once, after the trigger committed.
// Its outcome comes back as a CommandSucceeded or CommandFailed trigger.
func (p *Process[S]) Send(name string, data any) uuid.UUID { return p.c.send(name, data, nil) }

// Command is a command's name and payload.
type Command struct {
	Name string
	Data any
}

// SendCompensable sends a command like [Process.Send], with the command
// that undoes it: once the command succeeds, undo is recorded as a
// compensation, before the handler sees the success. A process that
// compensates while such a command is out waits for its outcome, so a step
// done after a timeout is still undone.
func (p *Process[S]) SendCompensable(name string, data any, undo Command) uuid.UUID {
	return p.c.send(name, data, &undo)
}

// AddCompensation records the command that undoes a step done, to be sent
// by [Process.Compensate] (compensations run in reverse order).
func (p *Process[S]) AddCompensation(name string, data any) { p.c.addCompensation(name, data) }

// Schedule sets the timer name to fire after d (replacing one of the same
// name).
func (p *Process[S]) Schedule(name string, d time.Duration) { p.c.schedule(name, p.c.now.Add(d)) }

// ScheduleAt sets the timer name to fire at t.
func (p *Process[S]) ScheduleAt(name string, t time.Time) { p.c.schedule(name, t) }

// Cancel cancels the timer name; cancelling none is not an error.
func (p *Process[S]) Cancel(name string) { p.c.cancel(name) }

// Complete ends the process successfully.
func (p *Process[S]) Complete() { p.c.end(typeCompleted, Completed, "") }

// Fail ends the process as failed, without compensating.
func (p *Process[S]) Fail(reason string) { p.c.end(typeFailed, Failed, reason) }

// Compensate starts running the recorded compensations in reverse order;
// the process ends compensated once the last one succeeded. Its timers are
// cancelled.
func (p *Process[S]) Compensate(reason string) {
	if p.c.meta.Status == Running {
		p.c.emit(typeCompensationStarted, reasonData{Reason: reason})
		p.c.clearAll = true
	}
}

// Timers returns the process's pending timers and when they are due.
func (p *Process[S]) Timers() map[string]time.Time {
	out := map[string]time.Time{}
	for n, t := range p.c.meta.Timers {
		out[n] = t.Due
	}
	return out
}

// Built-in event types, recorded in the process's stream.
const (
	typeTriggered           = "process.Triggered"
	typeIgnored             = "process.Ignored"
	typeCommandSent         = "process.CommandSent"
	typeCommandSucceeded    = "process.CommandSucceeded"
	typeCommandFailed       = "process.CommandFailed"
	typeTimerScheduled      = "process.TimerScheduled"
	typeTimerCancelled      = "process.TimerCancelled"
	typeTimerFired          = "process.TimerFired"
	typeCompensationAdded   = "process.CompensationAdded"
	typeCompensationStarted = "process.CompensationStarted"
	typeCompensated         = "process.Compensated"
	typeCompensationFailed  = "process.CompensationFailed"
	typeCompensationRetried = "process.CompensationRetried"
	typeTimerExpired        = "process.TimerExpired"
	typeCompensationDone    = "process.CompensationDone"
	typeCommandDone         = "process.CommandDone"
	typeCompensationResumed = "process.CompensationResumed"
	typeCompleted           = "process.Completed"
	typeFailed              = "process.Failed"
)

// triggerTypes are the built-in events written by others (the poller, the
// dispatcher, an operator) that trigger the process.
var triggerTypes = []string{typeTimerFired, typeCommandSucceeded, typeCommandFailed, typeCompensationRetried}

func builtin(t string) bool { return len(t) > 8 && t[:8] == "process." }

type triggered struct {
	EventID       uuid.UUID `json:"event_id"`
	Type          string    `json:"type"`
	StreamID      string    `json:"stream_id"`
	StreamVersion int64     `json:"stream_version"`
	Correlation   string    `json:"correlation_id,omitempty"`
	Causation     string    `json:"causation_id,omitempty"`
}

type commandSent struct {
	ID           uuid.UUID       `json:"id"`
	Name         string          `json:"name"`
	Data         json.RawMessage `json:"data"`
	Compensation bool            `json:"compensation,omitempty"`
	Undo         *compensation   `json:"undo,omitempty"`
}

type commandDone struct {
	ID       uuid.UUID `json:"id"`
	Name     string    `json:"name"`
	Failed   bool      `json:"failed,omitempty"`
	Error    string    `json:"error,omitempty"`
	Rejected bool      `json:"rejected,omitempty"`
}

type commandOutcome struct {
	ID           uuid.UUID `json:"id"`
	Name         string    `json:"name"`
	Compensation bool      `json:"compensation,omitempty"`
	Error        string    `json:"error,omitempty"`
	Rejected     bool      `json:"rejected,omitempty"`
}

type timerScheduled struct {
	Name string    `json:"name"`
	ID   uuid.UUID `json:"id"`
	Due  time.Time `json:"due"`
}

type timerFired struct {
	Name string    `json:"name"`
	ID   uuid.UUID `json:"id"`
	Due  time.Time `json:"due"`
}

type nameData struct {
	Name string `json:"name"`
}

type reasonData struct {
	Reason string `json:"reason,omitempty"`
}

type compensation struct {
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
}

type timerState struct {
	ID  uuid.UUID
	Due time.Time
}

// meta is the built-in part of a process's state.
type meta struct {
	Status        Status
	Reason        string
	Timers        map[string]timerState
	Compensations []compensation
	InFlight      uuid.UUID // the compensation command being delivered
	// Outstanding are the forward commands sent whose outcome has not
	// been handled, with the compensation each brings once it succeeded.
	Outstanding map[uuid.UUID]*compensation
}

func (m *meta) apply(typ string, data []byte) error {
	if m.Timers == nil {
		m.Timers = map[string]timerState{}
	}
	if m.Outstanding == nil {
		m.Outstanding = map[uuid.UUID]*compensation{}
	}
	switch typ {
	case typeCommandSent:
		var e commandSent
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		if e.Compensation {
			m.InFlight = e.ID
		} else {
			m.Outstanding[e.ID] = e.Undo
		}
	case typeCommandDone:
		var e commandDone
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		if undo, ok := m.Outstanding[e.ID]; ok {
			delete(m.Outstanding, e.ID)
			if undo != nil && !e.Failed {
				m.Compensations = append(m.Compensations, *undo)
			}
		}
	case typeCompensationDone:
		var e commandOutcome
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		if e.ID == m.InFlight && m.InFlight != uuid.Nil && len(m.Compensations) > 0 {
			m.Compensations = m.Compensations[:len(m.Compensations)-1]
			m.InFlight = uuid.Nil
		}
	case typeTimerScheduled:
		var e timerScheduled
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		m.Timers[e.Name] = timerState{ID: e.ID, Due: e.Due}
	case typeTimerCancelled:
		var e nameData
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		delete(m.Timers, e.Name)
	case typeTimerExpired:
		var e timerFired
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		if t, ok := m.Timers[e.Name]; ok && t.ID == e.ID {
			delete(m.Timers, e.Name)
		}
	case typeCompensationAdded:
		var e compensation
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		m.Compensations = append(m.Compensations, e)
	case typeCompensationStarted:
		var e reasonData
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		// The process's timers no longer matter: the compensation runs to
		// its end whatever time it takes.
		m.Status, m.Reason, m.Timers = Compensating, e.Reason, map[string]timerState{}
	case typeCompensationFailed:
		var e reasonData
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		m.Status, m.Reason, m.InFlight = CompensationFailed, e.Reason, uuid.Nil
	case typeCompensationResumed:
		if m.Status == CompensationFailed {
			m.Status = Compensating
		}
	case typeCompensated:
		m.Status, m.Timers = Compensated, map[string]timerState{}
	case typeCompleted:
		m.Status, m.Timers = Completed, map[string]timerState{}
	case typeFailed:
		var e reasonData
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		m.Status, m.Reason, m.Timers = Failed, e.Reason, map[string]timerState{}
	}
	return nil
}

// outCommand is a command decided in this trigger, for the outbox.
type outCommand struct {
	commandSent
}

// timerOp is a timer to set (Due not zero) or to cancel.
type timerOp struct {
	Name string
	ID   uuid.UUID
	Due  time.Time
}

// core is one process instance being handled: its loaded state and the
// decisions of the trigger at hand.
type core struct {
	k       *kind
	id      string
	stream  string
	version int64     // the stream's version as loaded (or after our append)
	started time.Time // when the store recorded the stream's first event
	meta    meta
	state   Applier
	now     time.Time

	// The trigger at hand.
	trigger  uuid.UUID
	step     int
	pending  []eventstore.Event
	commands []outCommand
	timers   []timerOp
	clearAll bool
	err      error
	md       eventstore.Metadata
	recorded []any // the user events recorded by the trigger, as values
	// inlineCause, when set, is the local command whose outcome is the
	// next trigger: its causation ID (the outcome is not stored).
	inlineCause uuid.UUID
}

func newCore(k *kind, id string) *core {
	return &core{k: k, id: id, stream: k.category + "-" + id, state: k.newState(id),
		meta: meta{Status: Running, Timers: map[string]timerState{}, Outstanding: map[uuid.UUID]*compensation{}}}
}

// load applies one stored record.
func (c *core) load(rec eventstore.Record) error {
	c.version = rec.StreamVersion
	if rec.StreamVersion == 1 {
		c.started = rec.RecordedAt
	}
	if builtin(rec.Type) {
		if err := c.meta.apply(rec.Type, rec.Data); err != nil {
			return fmt.Errorf("process %s/%s: decode %s at version %d: %w", c.k.name, c.id, rec.Type, rec.StreamVersion, err)
		}
		return nil
	}
	if c.k.codec == nil {
		return fmt.Errorf("%w: process %s/%s: event %s at version %d but the type has no Codec", ErrInvalid, c.k.name, c.id, rec.Type, rec.StreamVersion)
	}
	recs := []eventstore.Record{rec}
	if u, ok := c.k.codec.(aggregate.UpcastingCodec); ok && u.NeedsUpcast(rec) {
		var err error
		if recs, err = u.Upcast(rec); err != nil {
			return fmt.Errorf("process %s/%s: upcast %s at version %d: %w", c.k.name, c.id, rec.Type, rec.StreamVersion, err)
		}
	}
	for _, r := range recs {
		v, err := c.k.codec.DecodeRecord(r)
		if err != nil {
			return fmt.Errorf("process %s/%s: decode %s at version %d: %w", c.k.name, c.id, rec.Type, rec.StreamVersion, err)
		}
		c.state.Apply(v)
	}
	return nil
}

// begin starts handling a trigger.
func (c *core) begin(trigger eventstore.Record, now time.Time) {
	c.trigger, c.step, c.now = trigger.ID, 0, now
	c.pending, c.commands, c.timers, c.clearAll, c.err, c.recorded = nil, nil, nil, false, nil, nil
	c.md = eventstore.Metadata{eventstore.CausationIDKey: trigger.ID.String()}
	if c.inlineCause != uuid.Nil {
		c.md[eventstore.CausationIDKey], c.inlineCause = c.inlineCause.String(), uuid.Nil
	}
	if cid := trigger.Metadata.CorrelationID(); cid != "" {
		c.md[eventstore.CorrelationIDKey] = cid
	} else {
		c.md[eventstore.CorrelationIDKey] = c.stream
	}
}

// nextID returns the deterministic ID of the trigger's next step.
func (c *core) nextID(what string) uuid.UUID {
	c.step++
	return StepID(c.k.name, c.id, c.trigger, fmt.Sprintf("%s/%d", what, c.step))
}

// StepID returns the deterministic ID of a step of a process: a UUIDv5 of
// the process type and ID, the triggering event's ID and the step.
func StepID(typ, id string, trigger uuid.UUID, step string) uuid.UUID {
	return uuid.NewSHA1(namespace, []byte(typ+"\x00"+id+"\x00"+trigger.String()+"\x00"+step))
}

// namespace is the UUID namespace of process IDs.
var namespace = uuid.MustParse("9b0a3c2e-5f41-4d7e-8c36-1f2a7e6b4d01")

func (c *core) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// emit records a built-in event.
func (c *core) emit(typ string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		c.fail(fmt.Errorf("process %s/%s: encode %s: %w", c.k.name, c.id, typ, err))
		return
	}
	if err := c.meta.apply(typ, data); err != nil {
		c.fail(err)
		return
	}
	c.pending = append(c.pending, eventstore.Event{ID: c.nextID("event"), Type: typ, Data: data, Metadata: c.md})
}

func (c *core) record(v any) {
	if c.k.codec == nil {
		c.fail(fmt.Errorf("%w: process %s/%s records %T but the type has no Codec", ErrInvalid, c.k.name, c.id, v))
		return
	}
	name, sv, data, err := c.k.codec.Encode(v)
	if err != nil {
		c.fail(fmt.Errorf("process %s/%s: encode %T: %w", c.k.name, c.id, v, err))
		return
	}
	c.state.Apply(v)
	c.recorded = append(c.recorded, v)
	c.pending = append(c.pending, eventstore.Event{ID: c.nextID("event"), Type: name, SchemaVersion: sv, Data: data, Metadata: c.md})
}

func (c *core) send(name string, data any, undo *Command) uuid.UUID {
	raw, err := json.Marshal(data)
	if err != nil {
		c.fail(fmt.Errorf("process %s/%s: encode command %s: %w", c.k.name, c.id, name, err))
		return uuid.Nil
	}
	var u *compensation
	if undo != nil {
		udata, err := json.Marshal(undo.Data)
		if err != nil {
			c.fail(fmt.Errorf("process %s/%s: encode compensation %s of command %s: %w", c.k.name, c.id, undo.Name, name, err))
			return uuid.Nil
		}
		u = &compensation{Name: undo.Name, Data: udata}
	}
	return c.sendRaw(name, raw, false, u)
}

func (c *core) sendRaw(name string, raw json.RawMessage, comp bool, undo *compensation) uuid.UUID {
	id := c.nextID("command")
	cmd := commandSent{ID: id, Name: name, Data: raw, Compensation: comp, Undo: undo}
	c.emit(typeCommandSent, cmd)
	c.commands = append(c.commands, outCommand{cmd})
	return id
}

func (c *core) addCompensation(name string, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		c.fail(fmt.Errorf("process %s/%s: encode compensation %s: %w", c.k.name, c.id, name, err))
		return
	}
	c.emit(typeCompensationAdded, compensation{Name: name, Data: raw})
}

func (c *core) schedule(name string, due time.Time) {
	id := c.nextID("timer")
	c.emit(typeTimerScheduled, timerScheduled{Name: name, ID: id, Due: due.UTC()})
	c.timers = append(c.timers, timerOp{Name: name, ID: id, Due: due.UTC()})
}

func (c *core) cancel(name string) {
	if _, ok := c.meta.Timers[name]; !ok {
		return
	}
	c.emit(typeTimerCancelled, nameData{Name: name})
	c.timers = append(c.timers, timerOp{Name: name})
}

func (c *core) end(typ string, s Status, reason string) {
	if c.meta.Status != Running && !(typ == typeCompensated && c.meta.Status == Compensating) {
		return
	}
	c.emit(typ, reasonData{Reason: reason})
	c.clearAll = true
}

// handle runs one trigger: built-in progress (timers, compensations) and
// the user's handler while the process runs. exists says whether the
// process was loaded from a stream.
func (c *core) handle(ctx context.Context, rec eventstore.Record, ev projection.Event, now time.Time) error {
	c.begin(rec, now)
	own := rec.StreamID == c.stream
	if c.meta.Status.Terminal() {
		if !own {
			c.emit(typeIgnored, triggerOf(rec))
		}
		return c.err
	}
	t := Trigger{Kind: EventTrigger, Event: ev}
	callUser := c.meta.Status == Running
	if own {
		switch rec.Type {
		case typeTimerFired:
			var e timerFired
			if err := json.Unmarshal(rec.Data, &e); err != nil {
				return fmt.Errorf("process %s/%s: decode %s: %w", c.k.name, c.id, rec.Type, err)
			}
			// The fired event is in the stream already; it only counts
			// when it is the timer still pending.
			if ts, ok := c.meta.Timers[e.Name]; !ok || ts.ID != e.ID {
				return nil
			}
			c.emit(typeTimerExpired, e)
			t.Kind, t.Timer = TimerTrigger, e.Name
		case typeCommandSucceeded, typeCommandFailed:
			var e commandOutcome
			if err := json.Unmarshal(rec.Data, &e); err != nil {
				return fmt.Errorf("process %s/%s: decode %s: %w", c.k.name, c.id, rec.Type, err)
			}
			if !e.Compensation {
				if _, ok := c.meta.Outstanding[e.ID]; !ok {
					// Handled already (a local command's outcome is
					// handled in the trigger that sent it).
					return nil
				}
				c.emit(typeCommandDone, commandDone{ID: e.ID, Name: e.Name, Failed: rec.Type == typeCommandFailed, Error: e.Error, Rejected: e.Rejected})
			} else {
				callUser = false
				switch {
				case e.ID != c.meta.InFlight:
					// An outcome of a compensation no longer awaited.
					return nil
				case rec.Type == typeCommandFailed:
					c.emit(typeCompensationFailed, reasonData{Reason: fmt.Sprintf("compensation %s (%s) failed: %s", e.Name, e.ID, e.Error)})
				default:
					c.emit(typeCompensationDone, e)
				}
			}
			t.Kind, t.Command = CommandSucceeded, CommandResult{ID: e.ID, Name: e.Name}
			if rec.Type == typeCommandFailed {
				t.Kind, t.Command.Error, t.Command.Rejected = CommandFailed, e.Error, e.Rejected
			}
		case typeCompensationRetried:
			callUser = false
			if c.meta.Status != CompensationFailed {
				return nil
			}
			c.emit(typeCompensationResumed, struct{}{})
		default:
			return nil
		}
	} else {
		c.emit(typeTriggered, triggerOf(rec))
	}
	if callUser {
		if err := c.callHandler(ctx, t); err != nil {
			return err
		}
	}
	c.advance()
	return c.err
}

func (c *core) callHandler(ctx context.Context, t Trigger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("process %s/%s: handler panicked on %s: %v", c.k.name, c.id, t.Event.Record.Type, v)
		}
	}()
	if err := c.k.handle(ctx, c, t); err != nil {
		return fmt.Errorf("process %s/%s: handle %s %s: %w", c.k.name, c.id, t.Kind, t.Event.Record.Type, err)
	}
	return nil
}

// advance moves a compensating process on: it sends the last compensation
// not run yet, or ends the process compensated.
func (c *core) advance() {
	if c.meta.Status != Compensating || c.meta.InFlight != uuid.Nil || len(c.meta.Outstanding) > 0 {
		// A forward command still out may yet succeed and bring its own
		// compensation: wait for its outcome.
		return
	}
	if n := len(c.meta.Compensations); n > 0 {
		top := c.meta.Compensations[n-1]
		c.sendRaw(top.Name, top.Data, true, nil)
		return
	}
	c.end(typeCompensated, Compensated, "")
}

func triggerOf(rec eventstore.Record) triggered {
	return triggered{
		EventID: rec.ID, Type: rec.Type, StreamID: rec.StreamID, StreamVersion: rec.StreamVersion,
		Correlation: rec.Metadata.CorrelationID(), Causation: rec.Metadata.CausationID(),
	}
}
