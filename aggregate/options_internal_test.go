package aggregate

import (
	"testing"
	"time"
)

// The wait bounds are internal; the black-box tests cannot see them
// without sleeping.
func TestWithBackoffBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		opts           []Option
		first, longest time.Duration
	}{
		{"defaults", nil, time.Millisecond, 100 * time.Millisecond},
		{"both", []Option{WithBackoff(2*time.Millisecond, 30*time.Millisecond)}, 2 * time.Millisecond, 30 * time.Millisecond},
		{"longest below first is raised to first", []Option{WithBackoff(50*time.Millisecond, 10*time.Millisecond)}, 50 * time.Millisecond, 50 * time.Millisecond},
		{"first above the default longest", []Option{WithBackoff(time.Second, 0)}, time.Second, time.Second},
		{"longest below the default first", []Option{WithBackoff(0, time.Microsecond)}, time.Millisecond, time.Millisecond},
		{"zero keeps defaults", []Option{WithBackoff(0, 0)}, time.Millisecond, 100 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := defaults()
			for _, o := range tc.opts {
				o(&cfg)
			}
			if cfg.backoffMin != tc.first || cfg.backoffMax != tc.longest {
				t.Fatalf("bounds = %v, %v; want %v, %v", cfg.backoffMin, cfg.backoffMax, tc.first, tc.longest)
			}
			r := &Repository[*testAgg]{cfg: cfg}
			for attempt := range 30 {
				if d := r.backoff(attempt); d < 0 || d > tc.longest {
					t.Fatalf("attempt %d: wait %v outside [0, %v]", attempt, d, tc.longest)
				}
			}
		})
	}
}

type testAgg struct{ Root }

func (*testAgg) Apply(any) {}
