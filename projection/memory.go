package projection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chronicle-go/chronicle/eventstore"
)

// MemoryStore is a [Store] that keeps checkpoints, registrations and dead
// letters in memory, for unit tests and embedded use with in-memory read
// models. It is not atomic: a handler's writes to an in-memory read model
// are not undone by a rollback, so the runner commits after every event.
// The zero value is not usable; call [NewMemoryStore].
type MemoryStore struct {
	mu     sync.Mutex
	locks  map[Build]chan struct{}
	cps    map[Build]memCheckpoint
	regs   map[string]Registration
	dead   map[string]map[uuid.UUID]DeadLetter
	tables map[string]string // stable name -> current build table, for inspection
	beats  map[beatKey]Heartbeat
}

type beatKey struct {
	b     Build
	owner string
}

var (
	_ HeartbeatStore = (*MemoryStore)(nil)
	_ Lister         = (*MemoryStore)(nil)
)

type memCheckpoint struct {
	pos     eventstore.Position
	applied int64
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		locks:  map[Build]chan struct{}{},
		cps:    map[Build]memCheckpoint{},
		regs:   map[string]Registration{},
		dead:   map[string]map[uuid.UUID]DeadLetter{},
		tables: map[string]string{},
		beats:  map[beatKey]Heartbeat{},
	}
}

// Beat records heartbeats, stamped with the current time.
func (s *MemoryStore) Beat(_ context.Context, beats []Heartbeat) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range beats {
		h.SeenAt = now
		s.beats[beatKey{h.Build, h.Owner}] = h
	}
	return nil
}

// Heartbeats returns the heartbeats of a projection's builds, freshest
// first.
func (s *MemoryStore) Heartbeats(_ context.Context, name string) ([]Heartbeat, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heartbeatsLocked(name), nil
}

func (s *MemoryStore) heartbeatsLocked(name string) []Heartbeat {
	var out []Heartbeat
	for k, h := range s.beats {
		if k.b.Name == name {
			out = append(out, h)
		}
	}
	sortHeartbeats(out)
	return out
}

// List returns a summary of every registered projection, by name.
func (s *MemoryStore) List(_ context.Context) ([]Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Summary, 0, len(s.regs))
	for _, r := range s.regs {
		out = append(out, Summary{Registration: r, Checkpoint: s.cps[r.Target].pos, DeadLetters: len(s.dead[r.Name]),
			Heartbeats: s.heartbeatsLocked(r.Name)})
	}
	slices.SortFunc(out, func(a, b Summary) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Atomic reports false: see [MemoryStore].
func (s *MemoryStore) Atomic() bool { return false }

// Begin opens a unit of work on b, waiting for any other one on b to end.
func (s *MemoryStore) Begin(ctx context.Context, b Build) (UnitOfWork, error) {
	l, err := s.lock(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("projection: begin unit of work for %s: %w", b, err)
	}
	s.mu.Lock()
	cp := s.cps[b]
	s.mu.Unlock()
	return &memTx{s: s, b: b, lock: l, cp: cp.pos, newCP: cp.pos}, nil
}

// lock takes b's lock, waiting for its holder.
func (s *MemoryStore) lock(ctx context.Context, b Build) (chan struct{}, error) {
	s.mu.Lock()
	l, ok := s.locks[b]
	if !ok {
		l = make(chan struct{}, 1)
		s.locks[b] = l
	}
	s.mu.Unlock()
	select {
	case l <- struct{}{}:
		return l, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Checkpoint returns b's checkpoint.
func (s *MemoryStore) Checkpoint(_ context.Context, b Build) (eventstore.Position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cps[b].pos, nil
}

// Registration returns the projection's registration.
func (s *MemoryStore) Registration(_ context.Context, name string) (Registration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.regs[name]
	if !ok {
		r.Name = name
	}
	return r, nil
}

// SetTarget records b as its projection's build under way.
func (s *MemoryStore) SetTarget(_ context.Context, b Build) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regs[b.Name]
	r.Name = b.Name
	r.Target = b
	s.regs[b.Name] = r
	return nil
}

// DeadLetters lists a projection's dead letters in log order.
func (s *MemoryStore) DeadLetters(_ context.Context, name string) ([]DeadLetter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []DeadLetter
	for _, dl := range s.dead[name] {
		out = append(out, dl)
	}
	slices.SortFunc(out, func(a, b DeadLetter) int { return a.Position.Compare(b.Position) })
	return out, nil
}

// DeleteDeadLetter removes a dead letter.
func (s *MemoryStore) DeleteDeadLetter(_ context.Context, name string, eventID uuid.UUID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.dead[name], eventID)
	return nil
}

// CurrentTable returns the build table a stable table name points at, or ""
// when none does; useful in tests of the switch.
func (s *MemoryStore) CurrentTable(base string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tables[base]
}

type memTx struct {
	s        *MemoryStore
	b        Build
	lock     chan struct{}
	cp       eventstore.Position
	newCP    eventstore.Position
	applied  int
	adds     []DeadLetter
	dels     []uuid.UUID
	activate []string
	active   bool
	done     bool
}

// memView is what handlers of a MemoryStore get.
type memView struct{ b Build }

func (v memView) Build() Build             { return v.b }
func (v memView) Table(base string) string { return base + "_" + v.b.Suffix() }

func (t *memTx) Handlers() Tx                    { return memView{t.b} }
func (t *memTx) Checkpoint() eventstore.Position { return t.cp }
func (t *memTx) SetCheckpoint(_ context.Context, pos eventstore.Position, applied int) error {
	t.newCP = pos
	t.applied += applied
	return nil
}
func (t *memTx) AddDeadLetter(_ context.Context, dl DeadLetter) error {
	t.adds = append(t.adds, dl)
	return nil
}
func (t *memTx) DeleteDeadLetter(_ context.Context, id uuid.UUID) error {
	t.dels = append(t.dels, id)
	return nil
}
func (t *memTx) Activate(_ context.Context, tables []string) error {
	t.active = true
	t.activate = tables
	return nil
}

func (t *memTx) unlock() { <-t.lock }

func (t *memTx) Commit(context.Context) error {
	if t.done {
		return errors.New("projection: unit of work already ended")
	}
	t.done = true
	s := t.s
	s.mu.Lock()
	cp := s.cps[t.b]
	cp.pos = t.newCP
	cp.applied += int64(t.applied)
	s.cps[t.b] = cp
	for _, dl := range t.adds {
		m := s.dead[dl.Projection]
		if m == nil {
			m = map[uuid.UUID]DeadLetter{}
			s.dead[dl.Projection] = m
		}
		m[dl.EventID] = dl
	}
	for _, id := range t.dels {
		delete(s.dead[t.b.Name], id)
	}
	if t.active {
		r := s.regs[t.b.Name]
		r.Name = t.b.Name
		if !r.Current.IsZero() && r.Current != t.b {
			r.Previous = r.Current
		}
		r.Current = t.b
		if r.Target.IsZero() {
			r.Target = t.b
		}
		r.SwitchedAt = time.Now()
		s.regs[t.b.Name] = r
		for _, base := range t.activate {
			s.tables[base] = memView{t.b}.Table(base)
		}
	}
	s.mu.Unlock()
	t.unlock()
	return nil
}

func (t *memTx) Rollback(context.Context) error {
	if t.done {
		return nil
	}
	t.done = true
	t.unlock()
	return nil
}
