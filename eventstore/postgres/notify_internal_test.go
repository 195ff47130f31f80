package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/internal/testenv"
)

// A trailing notification armed for a commit is not sent when a
// notification led after that commit (carried by a group commit's
// transaction, noticeCarry) went out before the timer fired; it is sent
// when that notification has not gone out yet (a slow carrying transaction
// must not delay followers beyond the window), and for a commit reported
// after the lead; and it reaches a listener.
func TestTrailingNotificationSkipsWhatACarriedOneCovers(t *testing.T) {
	t.Parallel()
	pool, schema := testenv.Postgres(t)
	s, err := New(pool, WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listener, err := pool.Acquire(c)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(c, `LISTEN "`+s.channel+`"`); err != nil {
		t.Fatal(err)
	}
	n := s.notifier
	// waitFired waits until the armed timer has fired (it disarms first).
	waitFired := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for n.armed.Load() {
			if time.Now().After(deadline) {
				t.Fatal("the trailing notification's timer never fired")
			}
			time.Sleep(time.Millisecond)
		}
	}

	// A notification went out just now: a commit arms a trailing one for
	// the end of the window; then a transaction carrying one is led (its
	// time set directly, as lead does once the window has passed) and
	// commits before the timer fires.
	n.last.Store(n.now())
	s.trail()
	if !n.armed.Load() {
		t.Fatal("trail armed no timer")
	}
	at := n.now() // the carrying transaction is led after the commit
	n.last.Store(at)
	n.sent(at) // and it committed
	waitFired()
	if got := n.trailing.Load(); got != 0 {
		t.Fatalf("%d trailing notifications sent for a commit a delivered carried notification covers, want 0", got)
	}

	// Led after the commit, but not committed when the timer fires: the
	// trailing notification goes out.
	n.last.Store(n.now())
	s.trail()
	n.last.Store(n.now()) // led, never marked sent
	waitFired()
	if got := n.trailing.Load(); got != 1 {
		t.Fatalf("%d trailing notifications sent while the carrying transaction had not committed, want 1", got)
	}
	if _, err := listener.Conn().WaitForNotification(c); err != nil {
		t.Fatalf("no notification reached the listener: %v", err)
	}

	// A commit reported after a delivered lead is not covered by it.
	at = n.now()
	n.last.Store(at)
	n.sent(at)
	s.trail()
	waitFired()
	if got := n.trailing.Load(); got != 2 {
		t.Fatalf("%d trailing notifications sent for a commit after the delivered one, want 2", got)
	}
	wc, wcancel := context.WithTimeout(c, 10*time.Second)
	defer wcancel()
	note, err := listener.Conn().WaitForNotification(wc)
	if err != nil {
		t.Fatalf("no notification reached the listener: %v", err)
	}
	if note.Channel != s.channel {
		t.Fatalf("notification on %q, want %q", note.Channel, s.channel)
	}
}
