// Package backoff is Chronicle's one policy for waiting between attempts:
// exponential from a first pause to a longest one, with full jitter, so that
// many clients retrying at once spread out instead of retrying in step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy doubles a pause from First up to Longest. The zero Policy is not
// valid; see Validate.
type Policy struct {
	// First is the ceiling of the pause before the second attempt.
	First time.Duration
	// Longest caps every pause.
	Longest time.Duration
}

// Valid reports whether 0 < First <= Longest.
func (p Policy) Valid() bool { return p.First > 0 && p.Longest >= p.First }

// Ceiling returns the longest pause after failed attempt n (1-based):
// First doubled n-1 times, at most Longest.
func (p Policy) Ceiling(n int) time.Duration {
	d := p.First
	for i := 1; i < n && d < p.Longest; i++ {
		d *= 2
	}
	return min(d, p.Longest)
}

// Delay returns the pause after failed attempt n (1-based): a random
// duration in [Ceiling(n)/2, Ceiling(n)] ("equal jitter"), so a retry never
// comes back immediately yet callers do not retry in step.
func (p Policy) Delay(n int) time.Duration {
	c := p.Ceiling(n)
	if c <= 1 {
		return c
	}
	half := c / 2
	return half + time.Duration(rand.Int64N(int64(c-half)+1))
}

// Sleep waits d, or until ctx ends (returning its error), or until wake
// receives or is closed (returning nil early). A nil wake never fires.
func Sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case <-wake:
		return nil
	}
}

// Attempts counts failed attempts and gives the pause after each.
type Attempts struct {
	Policy Policy
	n      int
}

// Next records a failed attempt and returns the pause before the next one.
func (a *Attempts) Next() time.Duration {
	a.n++
	return a.Policy.Delay(a.n)
}

// Reset forgets the failures, after a success.
func (a *Attempts) Reset() { a.n = 0 }

// Count returns the failures since the last Reset.
func (a *Attempts) Count() int { return a.n }
