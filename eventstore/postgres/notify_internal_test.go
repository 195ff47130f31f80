package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/internal/testenv"
)

// A trailing notification armed for a commit is not sent when a
// notification carried by a transaction that started after that commit
// (a group commit's, noticeCarry) covers it; one armed for a commit
// reported after that transaction started is sent, and reaches a listener.
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
	// the end of the window; then a transaction carrying one starts (lead
	// counts it as sent when the window has passed; here its time is set
	// directly, as lead does).
	n.last.Store(n.now())
	s.trail()
	if !n.armed.Load() {
		t.Fatal("trail armed no timer")
	}
	n.last.Store(n.now()) // the carrying transaction starts after the commit
	waitFired()
	if got := n.trailing.Load(); got != 0 {
		t.Fatalf("%d trailing notifications sent for a commit a carried notification covers, want 0", got)
	}

	// A commit reported after the carrying transaction started is not
	// covered by it: its trailing notification goes out.
	s.trail()
	waitFired()
	if got := n.trailing.Load(); got != 1 {
		t.Fatalf("%d trailing notifications sent for a commit after the carried one, want 1", got)
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
