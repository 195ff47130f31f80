package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Problem is one reason a service is not ready.
type Problem struct {
	// Component is what the problem is in: "projection", "relay" or "log"
	// for the checks of this package, or a name a user's check chooses.
	Component string `json:"component"`
	// Name names the projection or relay, when there is one.
	Name string `json:"name,omitempty"`
	// Reason says what is wrong, with the figures that crossed a limit.
	Reason string `json:"reason"`
}

// String returns "component name: reason".
func (p Problem) String() string {
	if p.Name == "" {
		return p.Component + ": " + p.Reason
	}
	return p.Component + " " + p.Name + ": " + p.Reason
}

// Check reports the problems of one part of a service. An error means it
// could not tell; the Checker counts it as a problem of component.
type Check struct {
	// Component names what the check looks at, for its error.
	Component string
	// Run returns the problems found, or an error.
	Run func(ctx context.Context) ([]Problem, error)
}

// Report is the result of running every check once.
type Report struct {
	// Ready is true when no check found a problem or failed.
	Ready bool `json:"ready"`
	// Problems lists what is wrong, in the order of the checks.
	Problems []Problem `json:"problems"`
	// CheckedAt is when the checks ran.
	CheckedAt time.Time `json:"checked_at"`
}

// DefaultTimeout bounds a readiness check unless [WithTimeout] says
// otherwise.
const DefaultTimeout = 5 * time.Second

// Option configures a [Checker]. A nil Option is ignored.
type Option func(*Checker)

// WithCheck adds a check that readiness runs.
func WithCheck(c Check) Option { return func(k *Checker) { k.checks = append(k.checks, c) } }

// WithTimeout bounds how long the checks of one readiness request may
// take together (default [DefaultTimeout]); a check still running then is
// a problem.
func WithTimeout(d time.Duration) Option { return func(k *Checker) { k.timeout = d } }

// Checker runs checks and serves them as HTTP probes. It is safe for
// concurrent use.
type Checker struct {
	checks  []Check
	timeout time.Duration
}

// New returns a Checker running the checks given with [WithCheck].
func New(opts ...Option) *Checker {
	k := &Checker{timeout: DefaultTimeout}
	for _, o := range opts {
		if o != nil {
			o(k)
		}
	}
	if k.timeout <= 0 {
		k.timeout = DefaultTimeout
	}
	return k
}

// Check runs every check, at the same time, and reports what they found.
func (k *Checker) Check(ctx context.Context) Report {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	found := make([][]Problem, len(k.checks))
	var wg sync.WaitGroup
	for i, c := range k.checks {
		wg.Go(func() {
			ps, err := run(ctx, c)
			if err != nil {
				ps = append(ps, Problem{Component: c.Component, Reason: "check failed: " + err.Error()})
			}
			found[i] = ps
		})
	}
	wg.Wait()
	r := Report{Problems: []Problem{}, CheckedAt: time.Now().UTC()}
	for _, ps := range found {
		r.Problems = append(r.Problems, ps...)
	}
	r.Ready = len(r.Problems) == 0
	return r
}

// run runs c, turning a panic or a missing function into an error.
func run(ctx context.Context, c Check) (ps []Problem, err error) {
	if c.Run == nil {
		return nil, errors.New("health: check has no Run function")
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("health: check panicked: %v", v)
		}
	}()
	return c.Run(ctx)
}

// Readiness returns a handler that runs the checks and answers 200 with
// the JSON [Report] when the service is ready, 503 with it when not.
func (k *Checker) Readiness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r := k.Check(req.Context())
		code := http.StatusOK
		if !r.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, r)
	})
}

// Liveness returns a handler that answers 200 while the process serves
// HTTP. It runs no check: a database or NATS outage makes a service
// unready, and restarting it would not help.
func (k *Checker) Liveness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			Live bool `json:"live"`
		}{true})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
