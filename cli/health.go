package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-go/chronicle/health"
)

// unhealthyError is returned by a status command that printed the status
// and found problems; Run exits with ExitUnhealthy.
type unhealthyError struct{ problems []health.Problem }

func (e *unhealthyError) Error() string {
	parts := make([]string, len(e.problems))
	for i, p := range e.problems {
		parts[i] = p.String()
	}
	return "unhealthy: " + strings.Join(parts, "; ")
}

// unhealthy returns an *unhealthyError for ps, or nil when there are none.
func unhealthy(ps []health.Problem) error {
	if len(ps) == 0 {
		return nil
	}
	return &unhealthyError{problems: ps}
}

// healthFlags are the limits a status command checks.
type healthFlags struct {
	cmd         *cobra.Command
	maxLag      int
	maxLagTime  time.Duration
	maxHeldBack time.Duration
}

func (f *healthFlags) add(c *cobra.Command, what string) {
	f.cmd = c
	c.Flags().IntVar(&f.maxLag, "max-lag", 0, "exit 3 when "+what+" more events behind the log than this (0: no limit)")
	c.Flags().DurationVar(&f.maxLagTime, "max-lag-time", 0, "exit 3 when the oldest event not processed yet is older than this (0: no limit)")
	c.Flags().DurationVar(&f.maxHeldBack, "max-held-back", 0, "exit 3 when an open transaction has held events back from every reader for longer than this (unset: not checked)")
}

// logProblems checks the held-back horizon when --max-held-back is given.
func (f *healthFlags) logProblems(ctx context.Context, s *session) ([]health.Problem, error) {
	if !f.cmd.Flags().Changed("max-held-back") {
		return nil, nil
	}
	es, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	st, err := es.Status(ctx)
	if err != nil {
		return nil, err
	}
	return health.LogProblems(st, f.maxHeldBack), nil
}
