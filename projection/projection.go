package projection

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Policy says what a projection does after an event has failed
// MaxAttempts times and gone to the dead-letter list.
type Policy int

const (
	// Skip records the dead letter and goes on with the next event.
	Skip Policy = iota
	// Halt records the dead letter and stops the projection at that event
	// until the dead letter is retried successfully or discarded.
	Halt
)

// String returns "skip" or "halt".
func (p Policy) String() string {
	switch p {
	case Skip:
		return "skip"
	case Halt:
		return "halt"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Defaults used when a Projection leaves a field zero.
const (
	DefaultMaxAttempts = 5
	DefaultBatchSize   = 256
)

// Projection describes a read model fed by events.
type Projection struct {
	// Name identifies the projection: a plain lower-case identifier
	// ([a-z_][a-z0-9_]*), used in checkpoint rows, consumer names and
	// messages.
	Name string
	// Version is the version of the projection's code and read-model shape;
	// zero means 1. Bumping it rebuilds the read model beside the old one.
	Version int
	// Types, when not empty, keeps only events of these types. With a
	// decoder that upcasts ([UpcastingDecoder], such as *upcast.Chain) the
	// types are matched after upcasting: list the current names, and events
	// stored under an older name (an upcast.Rename) or split into a wanted
	// type reach the handler too. The runner then cannot narrow its reads
	// by stored type, so it reads every event of the projection's categories
	// and drops the unwanted ones before decoding them. With a plain
	// [Decoder], or none, the stored type is matched.
	Types []string
	// Categories, when not empty, keeps only events of streams in these
	// categories.
	Categories []string
	// Handler applies events to the read model. Required.
	Handler Handler
	// Setup, when set, prepares a build's read model (creates its tables
	// with CREATE TABLE IF NOT EXISTS and tx.Table). It runs in its own
	// unit of work each time a build starts, so it must be idempotent.
	Setup func(ctx context.Context, tx Tx) error
	// Tables lists the base names of the read-model tables that readers
	// query by a stable name. When a build becomes current, a transactional
	// store re-points each name at the build's table in the same
	// transaction (for Postgres, a view balances over balances_v2).
	Tables []string
	// OnFailure is what happens after an event failed MaxAttempts times.
	OnFailure Policy
	// MaxAttempts is how many times an event is tried before it becomes a
	// dead letter; zero means DefaultMaxAttempts.
	MaxAttempts int
	// BatchSize is the most events applied in one unit of work; zero means
	// DefaultBatchSize.
	BatchSize int
	// Partitions, when above 1, splits the projection's events into this
	// many partitions by a hash of the stream ID ([PartitionOf]): each
	// stream's events stay in order in their partition, different
	// partitions are applied in parallel, by workers in one runner and by
	// runners in several processes, each partition owned by one runner at a
	// time under a fenced lease (see [PartitionStore]). Zero or 1 is one
	// partition, the projection as a whole. Changing it is a new build:
	// bump Version. At most [MaxPartitions]. The runner follows the event
	// store once per build for its partitions, or, with a
	// [PartitionSource] that supports the count (projection/jetstream on a
	// topology with buckets), reads each partition it owns from its own
	// feed once the partition has caught up.
	Partitions int
}

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)

// Validate reports every problem with p, joined.
func (p Projection) Validate() error {
	var errs []error
	if !nameRE.MatchString(p.Name) {
		errs = append(errs, fmt.Errorf("projection: invalid name %q: want a plain lower-case identifier ([a-z_][a-z0-9_]*, at most 48 bytes)", p.Name))
	}
	if p.Version < 0 {
		errs = append(errs, fmt.Errorf("projection %q: negative version %d", p.Name, p.Version))
	}
	if p.Handler == nil {
		errs = append(errs, fmt.Errorf("projection %q: no handler", p.Name))
	}
	if p.OnFailure != Skip && p.OnFailure != Halt {
		errs = append(errs, fmt.Errorf("projection %q: unknown failure policy %d", p.Name, int(p.OnFailure)))
	}
	if p.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("projection %q: negative MaxAttempts %d", p.Name, p.MaxAttempts))
	}
	if p.Partitions < 0 || p.Partitions > MaxPartitions {
		errs = append(errs, fmt.Errorf("projection %q: Partitions %d out of range [0, %d]", p.Name, p.Partitions, MaxPartitions))
	}
	if p.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("projection %q: negative BatchSize %d", p.Name, p.BatchSize))
	}
	for _, t := range p.Tables {
		if !nameRE.MatchString(t) {
			errs = append(errs, fmt.Errorf("projection %q: invalid table name %q: want a plain lower-case identifier", p.Name, t))
		}
	}
	return errors.Join(errs...)
}

// version returns the effective version.
func (p Projection) version() int {
	if p.Version == 0 {
		return 1
	}
	return p.Version
}

// partitioned reports whether the projection runs in partitions.
func (p Projection) partitioned() bool { return p.Partitions > 1 }

func (p Projection) maxAttempts() int {
	if p.MaxAttempts == 0 {
		return DefaultMaxAttempts
	}
	return p.MaxAttempts
}

func (p Projection) batchSize() int {
	if p.BatchSize == 0 {
		return DefaultBatchSize
	}
	return p.BatchSize
}

// Wants reports whether rec passes the projection's type and category
// filters. The runner asks it of the upcast record when its decoder is an
// [UpcastingDecoder], of the stored record otherwise.
func (p Projection) Wants(rec eventstore.Record) bool {
	return p.wantsCategory(rec) && p.wantsType(rec.Type)
}

func (p Projection) wantsCategory(rec eventstore.Record) bool {
	return len(p.Categories) == 0 || slices.Contains(p.Categories, rec.Category())
}

func (p Projection) wantsType(t string) bool {
	return len(p.Types) == 0 || slices.Contains(p.Types, t)
}

// Event is what a handler receives: a decoded (and upcast) event and the
// record it came from.
type Event struct {
	// Data is the decoded event, or nil when the runner has no decoder; the
	// raw JSON is always in Record.Data.
	Data any
	// Record is the record Data was decoded from: stream, version,
	// position, type, schema version, metadata, raw data. With an
	// [UpcastingDecoder] (such as *upcast.Chain) it is the upcast record:
	// its Type, SchemaVersion and Data are the current ones, and each event
	// of a 1->N split has its own deterministic ID, while all share the
	// stored record's stream version and position. With a plain [Decoder]
	// it is the stored record, shared by every value the decoder returns.
	Record eventstore.Record
}

// Handler applies one event to a read model inside tx.
type Handler interface {
	Handle(ctx context.Context, tx Tx, ev Event) error
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, tx Tx, ev Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, tx Tx, ev Event) error { return f(ctx, tx, ev) }

// Build is one build of a projection's read model: a version and a
// generation within that version (bumped by an explicit rebuild).
type Build struct {
	// Name is the projection's name.
	Name string
	// Version is the projection's version.
	Version int
	// Generation counts explicit rebuilds of the same version, from 0.
	Generation int
}

// IsZero reports whether b is the zero Build (no build).
func (b Build) IsZero() bool { return b.Version == 0 }

// Suffix returns the suffix of the build's tables: "v2", or "v2_1" for
// generation 1 of version 2.
func (b Build) Suffix() string {
	if b.Generation == 0 {
		return fmt.Sprintf("v%d", b.Version)
	}
	return fmt.Sprintf("v%d_%d", b.Version, b.Generation)
}

// String returns "name@v2" or "name@v2_1".
func (b Build) String() string { return b.Name + "@" + b.Suffix() }

// Registration is a store's record of a projection's builds.
type Registration struct {
	// Name is the projection's name.
	Name string
	// Current is the build readers see; zero when none is current yet.
	Current Build
	// Target is the build being run; equal to Current unless a rebuild is
	// under way.
	Target Build
	// SwitchedAt is when Current became current.
	SwitchedAt time.Time
	// Previous is the build that was current before Current; zero when
	// there was none. A runner going live on Current retires it from its
	// source (see [Retirer]).
	Previous Build
}

// Rebuilding reports whether a build other than the current one is under
// way.
func (r Registration) Rebuilding() bool { return !r.Target.IsZero() && r.Target != r.Current }
