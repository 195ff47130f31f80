package postgres

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// NotifyWindow bounds how often one [Store] notifies followers, and so how
// much later than its commit a follower may be woken: an append notifies
// only when the store has not notified within this window; otherwise one
// notification is sent when the window ends, covering every append that
// committed meanwhile.
const NotifyWindow = 3 * time.Millisecond

// notifyTimeout bounds a trailing notification, pool wait included.
const notifyTimeout = 5 * time.Second

// notifier throttles one Store's notifications: a follower needs one
// notification sent after each commit, not one per commit. Each
// notification costs PostgreSQL a short cluster-wide lock at a commit (and
// a transaction of its own unless it rides in an append's), so under a
// stream of appends most of them are left out:
//
//   - an append leads when no notification went out within
//     [NotifyWindow]: a group commit's flusher carries it in the batch's
//     or the lone append's own transaction (noticeCarry), a single append
//     without group commit pipelines it after its commit (noticeLead);
//   - any other append, once committed, makes sure a trailing notification
//     is armed: a timer that fires when the window ends and sends one
//     pg_notify through the pool, unless a notification led after that
//     commit already went out. At most one is armed at a time; an append
//     that finds one armed relies on it, since the timer disarms before it
//     sends, so its notification goes out after that append's commit.
//
// It holds no goroutine and needs no closing: an armed timer is the only
// thing in flight, and it ends within notifyTimeout.
type notifier struct {
	base time.Time    // monotonic origin of last, trailed and delivered
	last atomic.Int64 // when the last notification was sent, in ns since base
	// trailed is when the last commit relying on a trailing notification
	// called trail, in ns since base. delivered is when the latest lead
	// whose notification went out (committed) was counted, in ns since
	// base: that notification covers every commit that called trail
	// before, so an armed timer that finds trailed < delivered sends none.
	trailed   atomic.Int64
	delivered atomic.Int64
	armed     atomic.Bool // a trailing notification is armed and not yet sent
	// trailing counts the trailing notifications sent (tests read it).
	trailing atomic.Int64
}

func newNotifier() *notifier {
	n := &notifier{base: time.Now()}
	n.last.Store(-int64(NotifyWindow))
	return n
}

func (n *notifier) now() int64 { return int64(time.Since(n.base)) }

// lead reports whether an append about to be sent should carry a
// notification, and if so counts it as sent.
func (n *notifier) lead() (at int64, ok bool) {
	now, last := n.now(), n.last.Load()
	return now, now-last >= int64(NotifyWindow) && n.last.CompareAndSwap(last, now)
}

// sent records that the notification of the lead counted at at went out:
// its transaction committed.
func (n *notifier) sent(at int64) {
	for {
		d := n.delivered.Load()
		if d >= at || n.delivered.CompareAndSwap(d, at) {
			return
		}
	}
}

// trail is called after an append that did not lead committed: it makes
// sure a notification is sent after now, within the window.
//
// A notification led after this call (carried by a group commit's
// transaction, see noticeCarry) that went out before the timer fires
// covers it too: the timer then sends nothing. One led but not yet
// committed does not count: the timer sends, so that a slow carrying
// transaction never delays a follower beyond the window. The order of the
// atomic operations makes that exact: trail records the time of the call
// before it looks at armed, the timer clears armed before it compares that
// time with the delivered notification's; so either trail arms a new timer,
// or the timer sees the call.
func (s *Store) trail() {
	n := s.notifier
	now := n.now()
	for {
		t := n.trailed.Load()
		if t >= now || n.trailed.CompareAndSwap(t, now) {
			break
		}
	}
	if !n.armed.CompareAndSwap(false, true) {
		return // armed, not yet sent: it will cover this commit
	}
	delay := min(max(time.Duration(n.last.Load()+int64(NotifyWindow)-n.now()), 0), NotifyWindow)
	time.AfterFunc(delay, func() {
		n.armed.Store(false) // before looking at trailed: later commits arm anew
		if n.trailed.Load() < n.delivered.Load() {
			// A notification led after every trail call so far went
			// out: nothing to send.
			return
		}
		n.last.Store(n.now())
		n.trailing.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		defer cancel()
		if _, err := s.pool.Exec(ctx, s.q.notify, s.channel); err != nil {
			s.log.Debug("postgres: trailing notification failed; followers will poll",
				slog.String("channel", s.channel), slog.Any("err", err))
		}
	})
}
