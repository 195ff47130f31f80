package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// A caller's transaction that holds a stream's lock (AppendTx, then slow
// work before its commit) delays appends to that stream only. With group
// commit the flusher's connection waited for that lock too, and every
// append of the Store queued behind it until the caller's transaction
// ended; now the flusher gives up on a busy lock within its lock timeout
// and the waiting append runs alone on a pool connection.
func TestGroupCommitIsNotHeldByAnotherTransactionsStreamLock(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	c := ctx(t)
	tx, err := pool.Begin(c)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(c))
	if _, err := s.AppendTx(c, tx, "hot-1", eventstore.NoStream, events(1)...); err != nil {
		t.Fatal(err)
	}

	// An append to the locked stream waits, as it must.
	hotDone := make(chan error, 1)
	go func() {
		_, err := s.Append(c, "hot-1", eventstore.Any, events(1)...)
		hotDone <- err
	}()

	// Appends to other streams, from several goroutines, go on.
	const goroutines, each = 8, 5
	quick, cancel := context.WithTimeout(c, 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				stream := fmt.Sprintf("cold-%d-%d", g, i)
				if _, err := s.Append(quick, stream, eventstore.NoStream, events(1)...); err != nil {
					errs <- fmt.Errorf("append to %s: %w", stream, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("while another transaction holds hot-1's lock: %v", err)
	}
	select {
	case err := <-hotDone:
		t.Fatalf("the append to the locked stream returned before the lock was released: %v", err)
	default:
	}

	if err := tx.Commit(c); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-hotDone:
		if err != nil {
			t.Fatalf("append to hot-1 after the lock was released: %v", err)
		}
	case <-c.Done():
		t.Fatal("the append to hot-1 never completed")
	}
	var n int
	for _, err := range s.ReadStream(c, "hot-1", eventstore.ReadStreamOptions{}) {
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("hot-1 holds %d events, want 2", n)
	}
}
