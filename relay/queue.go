package relay

import (
	"context"
	"sync"

	"github.com/chronicle-go/chronicle/eventstore"
)

// queue hands records from the log reader to the publisher. The publisher
// takes everything queued at once, so that a catch-up costs one goroutine
// switch per batch, not per record, while a single live record still goes
// through at once.
type queue struct {
	mu       sync.Mutex
	buf      []eventstore.Record
	max      int
	closed   bool
	notEmpty chan struct{} // signalled when buf becomes non-empty or closed
	notFull  chan struct{} // signalled when buf is emptied
}

func newQueue(max int) *queue {
	return &queue{buf: make([]eventstore.Record, 0, max), max: max,
		notEmpty: make(chan struct{}, 1), notFull: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// push queues rec, waiting while the queue is full; false when ctx ended.
func (q *queue) push(ctx context.Context, rec eventstore.Record) bool {
	q.mu.Lock()
	for len(q.buf) >= q.max {
		q.mu.Unlock()
		select {
		case <-q.notFull:
		case <-ctx.Done():
			return false
		}
		q.mu.Lock()
	}
	q.buf = append(q.buf, rec)
	if len(q.buf) == 1 {
		signal(q.notEmpty)
	}
	q.mu.Unlock()
	return true
}

// close tells the publisher that no more records come.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	signal(q.notEmpty)
}

// take waits for records and returns all of them, reusing spare's memory
// for the queue; it returns nil when the queue is closed and empty or ctx
// ended.
func (q *queue) take(ctx context.Context, spare []eventstore.Record) []eventstore.Record {
	q.mu.Lock()
	for len(q.buf) == 0 {
		if q.closed {
			q.mu.Unlock()
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.notEmpty:
		case <-ctx.Done():
			return nil
		}
		q.mu.Lock()
	}
	out := q.buf
	clear(spare[:cap(spare)])
	q.buf = spare[:0]
	q.mu.Unlock()
	signal(q.notFull)
	return out
}
