package backoff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/internal/backoff"
)

func TestCeilingDoublesToLongest(t *testing.T) {
	p := backoff.Policy{First: 10 * time.Millisecond, Longest: 75 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 75, 75}
	for i, w := range want {
		if got := p.Ceiling(i + 1); got != w*time.Millisecond {
			t.Errorf("Ceiling(%d) = %s, want %s", i+1, got, w*time.Millisecond)
		}
	}
}

func TestDelayIsJitteredWithinBounds(t *testing.T) {
	p := backoff.Policy{First: 8 * time.Millisecond, Longest: time.Second}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := p.Delay(3)
		if d < 16*time.Millisecond || d > 32*time.Millisecond {
			t.Fatalf("Delay(3) = %s, want within [16ms, 32ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Fatalf("Delay(3) took only %d distinct values in 200 draws; want jitter", len(seen))
	}
}

func TestValid(t *testing.T) {
	for _, c := range []struct {
		p  backoff.Policy
		ok bool
	}{
		{backoff.Policy{First: 1, Longest: 1}, true},
		{backoff.Policy{First: 0, Longest: 1}, false},
		{backoff.Policy{First: 2, Longest: 1}, false},
	} {
		if c.p.Valid() != c.ok {
			t.Errorf("%+v.Valid() = %v, want %v", c.p, !c.ok, c.ok)
		}
	}
}

func TestSleepReturnsEarly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := backoff.Sleep(ctx, time.Hour, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	wake := make(chan struct{})
	close(wake)
	if err := backoff.Sleep(context.Background(), time.Hour, wake); err != nil {
		t.Fatalf("Sleep woken = %v, want nil", err)
	}
}

func TestAttempts(t *testing.T) {
	a := backoff.Attempts{Policy: backoff.Policy{First: time.Millisecond, Longest: 4 * time.Millisecond}}
	for range 5 {
		if d := a.Next(); d > 4*time.Millisecond {
			t.Fatalf("Next() = %s beyond Longest", d)
		}
	}
	if a.Count() != 5 {
		t.Fatalf("Count = %d, want 5", a.Count())
	}
	a.Reset()
	if a.Count() != 0 {
		t.Fatalf("Count after Reset = %d", a.Count())
	}
}
