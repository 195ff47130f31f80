package projection

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
)

// Admin administers projections without running them: their status,
// rebuilds and dead letters, from the projections' code, the event store
// and the projection store. The CLI builds one with [NewAdmin]; a [Runner]
// has its own ([Runner.Admin]) that also reaches the projections it runs.
type Admin struct {
	e     *engine
	local *Runner // the runner whose projections this Admin also reaches; nil for none
}

// NewAdmin returns the administration of projections over an event store
// and a projection store. It validates its arguments like [NewRunner] and
// has no side effects.
func NewAdmin(events eventstore.Store, store Store, projections []Projection, opts ...Option) (*Admin, error) {
	e, err := newEngine(events, store, projections, opts)
	if err != nil {
		return nil, err
	}
	return &Admin{e: e}, nil
}

// Projections returns the names of the projections, in the order given.
func (a *Admin) Projections() []string { return append([]string(nil), a.e.order...) }

// Migrate creates or upgrades the tables of the projection store when it
// keeps any (projection/postgres, component "projection"); with a store
// that has none, such as [MemoryStore], it does nothing. It is idempotent
// and safe to run from several processes at once.
func (a *Admin) Migrate(ctx context.Context) error {
	if m, ok := a.e.store.(interface{ Migrate(context.Context) error }); ok {
		if err := m.Migrate(ctx); err != nil {
			return fmt.Errorf("projection: migrate: %w", err)
		}
	}
	return nil
}

// supervisor returns the local runner's supervisor of a projection that
// runs now, or nil.
func (a *Admin) supervisor(name string) *supervisor {
	if a.local == nil {
		return nil
	}
	s := a.local.sups[name]
	if s == nil || !s.prog.snapshot().running {
		return nil
	}
	return s
}

// resume wakes the local supervisor of a projection, if it runs here,
// after its dead letter of eventID was retried or discarded: it no longer
// counts as halted on it.
func (a *Admin) resume(name string, eventID uuid.UUID) {
	s := a.supervisor(name)
	if s == nil {
		return
	}
	s.prog.update(func(p *progress) {
		if p.halted != nil && p.halted.EventID == eventID {
			p.halted = nil
			if p.state == Halted {
				p.state = Starting
			}
		}
	})
	s.signal()
}
