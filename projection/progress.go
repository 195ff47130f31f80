package projection

import (
	"sync"

	"github.com/chronicle-go/chronicle/eventstore"
)

// maxRecentDeadLetters bounds the dead letters a progress remembers for
// WaitFor.
const maxRecentDeadLetters = 1024

// progress is what a projection's supervisor and pipeline publish and what
// Status, WaitFor, heartbeats and Ready read: a small value behind a lock,
// with a channel closed at every change.
type progress struct {
	mu      sync.Mutex
	running bool // a supervisor runs the projection in this process
	started bool // it went live or reached a state of its own once
	state   State
	build   Build
	current bool // build is the one readers see
	applied eventstore.Position
	lastErr error
	// halted is the dead letter the projection halted on, while halted.
	halted *DeadLetter
	// dead are the dead letters recorded by this process since the build
	// started, the latest last, so that WaitFor can tell a caller its
	// write was set aside.
	dead []DeadLetter
	// shared is set once another runner has been seen applying the same
	// build: its dead letters are not in dead, so WaitFor asks the store.
	shared  bool
	changed chan struct{}
	// onStart is called once, when started first becomes true.
	onStart func()
	// wake, when set, is woken at every change too (a follower wakes the
	// waiters of the projection it keeps live).
	wake *progress
	// parts is the partitioned build this runner runs, while it does.
	parts *partitionSet
}

func newProgress(onStart func()) *progress {
	return &progress{state: Stopped, changed: make(chan struct{}), onStart: onStart}
}

// update changes the progress under its lock and wakes waiters.
func (p *progress) update(f func(p *progress)) {
	p.mu.Lock()
	f(p)
	close(p.changed)
	p.changed = make(chan struct{})
	start := false
	if !p.started && p.running && p.state != Starting && p.state != Rebuilding && p.state != Stopped {
		p.started, start = true, true
	}
	p.mu.Unlock()
	if start && p.onStart != nil {
		p.onStart()
	}
	if p.wake != nil {
		p.wake.update(func(*progress) {})
	}
}

// markStarted records that the projection has started even though its
// state says otherwise (a rebuild whose current build is live meanwhile).
func (p *progress) markStarted() {
	p.mu.Lock()
	start := !p.started && p.running
	p.started = p.started || start
	p.mu.Unlock()
	if start && p.onStart != nil {
		p.onStart()
	}
}

func (p *progress) setApplied(pos eventstore.Position) {
	p.update(func(p *progress) {
		if p.applied.Before(pos) {
			p.applied = pos
		}
	})
}

func (p *progress) addDead(dl DeadLetter) {
	p.update(func(p *progress) {
		p.dead = append(p.dead, dl)
		if len(p.dead) > maxRecentDeadLetters {
			p.dead = p.dead[len(p.dead)-maxRecentDeadLetters:]
		}
	})
}

// snapshot is a copy of the progress fields, read under the lock.
type snapshot struct {
	running, current bool
	shared           bool
	state            State
	build            Build
	applied          eventstore.Position
	lastErr          error
	halted           *DeadLetter
	dead             []DeadLetter
	changed          <-chan struct{}
}

func (p *progress) snapshot() snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return snapshot{running: p.running, current: p.current, shared: p.shared, state: p.state, build: p.build,
		applied: p.applied, lastErr: p.lastErr, halted: p.halted, dead: p.dead, changed: p.changed}
}
