package postgres

import (
	"context"
	"log/slog"
	"sync"
)

// notifier coalesces the notifications of one Store's appends. A follower
// needs one notification sent after each commit, not one per commit; while
// a notification is on its way, appends that commit meanwhile wait for it
// instead of sending their own, unless it may have gone out before they
// committed, in which case one of them sends the next. Under concurrent
// appends this sends about one notification per round trip instead of one
// per append: notifying costs PostgreSQL a cluster-wide lock at commit, so
// fewer notifications leave more room for appends.
type notifier struct {
	mu       sync.Mutex
	cond     *sync.Cond
	inFlight bool
	started  uint64 // notifications started so far
}

func newNotifier() *notifier {
	n := &notifier{}
	n.cond = sync.NewCond(&n.mu)
	return n
}

// claim is called before an append: true means no notification is on its
// way, so this append carries one, pipelined after its commit, and must
// call done when it is through.
func (n *notifier) claim() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inFlight {
		return false
	}
	n.inFlight = true
	n.started++
	return true
}

// done ends a notification started by claim or after.
func (n *notifier) done() {
	n.mu.Lock()
	n.inFlight = false
	n.cond.Broadcast()
	n.mu.Unlock()
}

// after is called once an append that did not carry a notification has
// committed: it returns when a notification started after that commit, by
// this call (send) or by another.
func (n *notifier) after(ctx context.Context, log *slog.Logger, send func() error) {
	n.mu.Lock()
	mine := n.started
	for {
		if n.started > mine {
			// Started after the commit: it covers it.
			n.mu.Unlock()
			return
		}
		if !n.inFlight {
			n.inFlight = true
			n.started++
			n.mu.Unlock()
			if err := send(); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "postgres: append committed but notifying followers failed; they will poll", slog.Any("error", err))
			}
			n.done()
			return
		}
		n.cond.Wait()
	}
}
