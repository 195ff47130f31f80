package projection

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/internal/telemetry"
)

// engine is what a [Runner] and an [Admin] share: the stores, the options
// and the projections, validated.
type engine struct {
	events eventstore.Store
	store  Store
	opts   options
	log    *slog.Logger
	order  []string
	projs  map[string]*proj
	// member names this engine's runner in partition leases.
	member string
	tel    *telemetry.Projections // spans and metrics (telemetry.go)
}

// proj is one projection as the engine runs it.
type proj struct {
	p Projection
	// readTypes is the type filter of reads of the log: p.Types, or nil
	// when the decoder upcasts, since an event stored under an old name of
	// a wanted type must be read to be upcast and matched.
	readTypes []string
}

func newEngine(events eventstore.Store, store Store, projections []Projection, opts []Option) (*engine, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	var errs []error
	if events == nil {
		errs = append(errs, errors.New("projection: nil event store"))
	}
	if store == nil {
		errs = append(errs, errors.New("projection: nil projection store"))
	}
	if !o.backoff.Valid() {
		errs = append(errs, fmt.Errorf("projection: invalid backoff %s..%s", o.backoff.First, o.backoff.Longest))
	}
	if o.catchUpBatch <= 0 {
		errs = append(errs, fmt.Errorf("projection: invalid catch-up batch size %d", o.catchUpBatch))
	}
	if o.haltPoll <= 0 {
		errs = append(errs, fmt.Errorf("projection: invalid halt poll interval %s", o.haltPoll))
	}
	if o.leaseTTL <= 0 {
		o.leaseTTL = DefaultLeaseTTL
	}
	e := &engine{events: events, store: store, opts: o, projs: map[string]*proj{}}
	_, parts := store.(PartitionStore)
	_, upcasts := o.decoder.(UpcastingDecoder)
	for _, p := range projections {
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if p.partitioned() && store != nil && !parts {
			errs = append(errs, fmt.Errorf("%w: projection %q has %d partitions, store %T", ErrPartitionsUnsupported, p.Name, p.Partitions, store))
			continue
		}
		if _, dup := e.projs[p.Name]; dup {
			errs = append(errs, fmt.Errorf("projection: two projections named %q", p.Name))
			continue
		}
		pr := &proj{p: p, readTypes: p.Types}
		if upcasts {
			pr.readTypes = nil
		}
		e.projs[p.Name] = pr
		e.order = append(e.order, p.Name)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e.tel = telemetry.NewProjections(o.telemetry, e.order)
	e.log = o.logger
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.opts.owner == "" {
		e.opts.owner = defaultOwner()
	}
	// A runner's leases name it uniquely, even beside another runner of
	// the same owner name in one process.
	e.member = e.opts.owner + "/" + uuid.NewString()[:8]
	if e.opts.source == nil {
		e.opts.source = NewStoreSource(events)
	}
	if hb, ok := events.(HeldBackReporter); ok && e.opts.logStatus == nil {
		e.opts.logStatus = hb.HeldBack
	}
	return e, nil
}

func (e *engine) proj(name string) (*proj, error) {
	pr, ok := e.projs[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownProjection, name)
	}
	return pr, nil
}

// readOpts returns the options of a read of the log after pos with the
// projection's filters.
func (pr *proj) readOpts(after eventstore.Position, limit, batch int) eventstore.ReadAllOptions {
	return eventstore.ReadAllOptions{After: after, Types: pr.readTypes, Categories: pr.p.Categories, Limit: limit, BatchSize: batch}
}

func describe(rec eventstore.Record) string {
	return fmt.Sprintf("event %s (%s, stream %q version %d, position %s)", rec.ID, rec.Type, rec.StreamID, rec.StreamVersion, rec.Position)
}
