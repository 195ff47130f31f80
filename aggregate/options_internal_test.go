package aggregate

import (
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/internal/backoff"
)

// The wait policy is internal; the black-box tests cannot see it without
// sleeping.
func TestWithBackoffSetsThePolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []Option
		want backoff.Policy
	}{
		{"defaults", nil, backoff.Policy{First: time.Millisecond, Longest: 100 * time.Millisecond}},
		{"both", []Option{WithBackoff(2*time.Millisecond, 30*time.Millisecond)}, backoff.Policy{First: 2 * time.Millisecond, Longest: 30 * time.Millisecond}},
		{"equal bounds", []Option{WithBackoff(time.Second, time.Second)}, backoff.Policy{First: time.Second, Longest: time.Second}},
		{"nil option skipped", []Option{nil}, backoff.Policy{First: time.Millisecond, Longest: 100 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := apply(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.backoff != tc.want {
				t.Fatalf("policy = %+v, want %+v", cfg.backoff, tc.want)
			}
		})
	}
}
