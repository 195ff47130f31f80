package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-go/chronicle/health"
	"github.com/chronicle-go/chronicle/projection"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
)

// errNoProjections explains why a command needs a service's own binary.
func (s *session) errNoProjections(what string) error {
	return fmt.Errorf("no projections are registered in %s, and %s needs the service's projection code: "+
		"run the service's own binary built with cli.WithProjections (see docs/cli.md)", s.cfg.name, what)
}

// projectionStore opens the projection store in the session's schema.
func (s *session) projectionStore(ctx context.Context) (*projpg.Store, error) {
	pool, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	return projpg.New(pool, projpg.WithSchema(s.schema))
}

// admin builds the administration of the registered projections: status,
// rebuilds and dead letters, without running them.
func (s *session) admin(ctx context.Context, what string, extra ...projection.Option) (*projection.Admin, error) {
	if len(s.cfg.projections) == 0 {
		return nil, s.errNoProjections(what)
	}
	es, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := s.projectionStore(ctx)
	if err != nil {
		return nil, err
	}
	chain, err := s.chain()
	if err != nil {
		return nil, err
	}
	opts := []projection.Option{
		projection.WithLogger(s.logger(slog.LevelWarn)),
		projection.WithLogStatus(projpg.LogStatus(es)),
	}
	if chain != nil {
		opts = append(opts, projection.WithDecoder(chain))
	}
	opts = append(opts, s.cfg.runnerOpts...)
	opts = append(opts, extra...)
	a, err := projection.NewAdmin(es, ps, s.cfg.projections, opts...)
	if err != nil {
		return nil, fmt.Errorf("build the projections' administration: %w", err)
	}
	return a, nil
}

// checkProjection fails when name is not a registered projection.
func (s *session) checkProjection(name string) error {
	for _, p := range s.cfg.projections {
		if p.Name == name {
			return nil
		}
	}
	if len(s.cfg.projections) == 0 {
		return nil // the caller reports errNoProjections
	}
	return fmt.Errorf("unknown projection %q (registered: %s)", name, strings.Join(s.projectionNames(), ", "))
}

func (s *session) projectionNames() []string {
	names := make([]string, len(s.cfg.projections))
	for i, p := range s.cfg.projections {
		names[i] = p.Name
	}
	return names
}

func (s *session) projectionsCommand() *cobra.Command {
	return group("projections", "Show projection status and rebuild read models",
		s.projectionsStatusCommand(), s.projectionsRebuildCommand())
}

// jsonStatus is the JSON form of a projection's status.
type jsonStatus struct {
	Name          string  `json:"name"`
	Version       int     `json:"version"`
	Current       string  `json:"current"`
	Target        string  `json:"target"`
	State         string  `json:"state"`
	Checkpoint    string  `json:"checkpoint"`
	Head          string  `json:"head"`
	LagEvents     int     `json:"lag_events"`
	LagCapped     bool    `json:"lag_capped"`
	LagSeconds    float64 `json:"lag_seconds"`
	DeadLetters   int     `json:"dead_letters"`
	HeldBack      int64   `json:"held_back"`
	OldestOpenSec float64 `json:"oldest_open_seconds"`
	LastError     string  `json:"last_error,omitempty"`
	jsonHeartbeat
	// Partitions is set for a partitioned projection.
	Partitions []jsonPartition `json:"partitions,omitempty"`
}

// jsonPartition is the JSON form of one partition's status.
type jsonPartition struct {
	Partition  int        `json:"partition"`
	Owner      string     `json:"owner,omitempty"`
	Alive      bool       `json:"alive"`
	Epoch      int64      `json:"epoch"`
	Expires    *time.Time `json:"lease_expires_at,omitempty"`
	State      string     `json:"state,omitempty"`
	Checkpoint string     `json:"checkpoint"`
	Applied    int64      `json:"applied"`
	LagEvents  int        `json:"lag_events"`
	LagCapped  bool       `json:"lag_capped"`
	LastError  string     `json:"last_error,omitempty"`
}

func partitionsJSON(ps []projection.PartitionStatus) []jsonPartition {
	var out []jsonPartition
	for _, p := range ps {
		jp := jsonPartition{Partition: p.Partition, Owner: p.Owner, Alive: p.Alive, Epoch: p.Epoch, State: string(p.State),
			Checkpoint: p.Checkpoint.String(), Applied: p.Applied, LagEvents: p.Lag, LagCapped: p.LagCapped, LastError: p.LastError}
		if p.Owner != "" {
			t := p.Expires
			jp.Expires = &t
		}
		out = append(out, jp)
	}
	return out
}

// lease describes a partition's lease for the table: its end, or that it
// expired or is free.
func lease(p projection.PartitionStatus, now time.Time) string {
	switch {
	case p.Owner == "":
		return "free"
	case !p.Alive:
		return "expired " + formatDuration(now.Sub(p.Expires)) + " ago"
	}
	return "ends in " + formatDuration(p.Expires.Sub(now))
}

// printPartitions prints a table of the partitions of each partitioned
// projection.
func printPartitions(w io.Writer, sts []projection.Status) error {
	tw := newTable(w)
	header := false
	now := time.Now()
	for _, st := range sts {
		for _, p := range st.Partitions {
			if !header {
				fmt.Fprintln(tw, "\nNAME\tPARTITION\tOWNER\tEPOCH\tLEASE\tCHECKPOINT\tLAG\tAPPLIED")
				header = true
			}
			lag := fmt.Sprint(p.Lag)
			if p.LagCapped {
				lag = ">" + lag
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%d\n", field(st.Name), p.Partition, dash(field(p.Owner)), p.Epoch,
				lease(p, now), p.Checkpoint, lag, p.Applied)
		}
	}
	return tw.Flush()
}

// jsonHeartbeat is the JSON form of the heartbeat that speaks for a
// projection: which runner, and when it was last heard from.
type jsonHeartbeat struct {
	Owner      string     `json:"owner,omitempty"`
	LastSeenAt *time.Time `json:"last_seen_at,omitempty"`
}

func heartbeatJSON(h projection.Heartbeat) jsonHeartbeat {
	if h.SeenAt.IsZero() {
		return jsonHeartbeat{}
	}
	t := h.SeenAt.UTC()
	return jsonHeartbeat{Owner: h.Owner, LastSeenAt: &t}
}

// lastSeen says how long ago a heartbeat was recorded.
func lastSeen(h projection.Heartbeat) string {
	if h.SeenAt.IsZero() {
		return "-"
	}
	return formatDuration(time.Since(h.SeenAt)) + " ago"
}

func buildName(b projection.Build) string {
	if b.IsZero() {
		return ""
	}
	return b.String()
}

func (s *session) projectionsStatusCommand() *cobra.Command {
	var (
		asJSON bool
		hf     healthFlags
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Show each projection's build, state, checkpoint, lag and dead letters",
		Long: `Show, for each projection registered in this binary: its version, the
build readers see and the build under way, its state, checkpoint, the head
of the log, its lag in events and in time, its dead letters, how many
committed events an old open transaction holds back from every reader,
and which runner runs it. A partitioned projection (Projection.Partitions)
gets a second table, a row per partition: the runner owning its lease
(OWNER), the lease's fencing EPOCH and when it ends, the partition's
CHECKPOINT, its LAG in events of its streams, and the events it APPLIED;
its CHECKPOINT in the first table is the lowest of its partitions', its
LAG their sum.

A binary without projections registered (the generic chronicle) shows
what the database knows of every projection instead: builds, state,
checkpoint, head of the log, dead letters and runner; the lag needs the
projection's filters, so only the service's own binary shows it.

STATE is what the projection is doing where it runs: a runner records a
heartbeat every few seconds (projection.WithHeartbeat, default 5s), and
while one was heard from within three of its intervals STATE is what that
runner reports (running, halted, rebuilding, failing...), with its OWNER
(host:pid) and when it was LAST SEEN. Otherwise STATE is "rebuilding"
while a rebuild is under way, else "stopped".

The command exits 3 (unhealthy), after printing the status, when a
projection is halted or failing, or past a limit given with --max-lag,
--max-lag-time or --max-held-back; stderr then lists the problems. Scripts
and probes can rely on it. Without the projections' code (generic
chronicle), only halted and failing states and --max-held-back are checked.`,
		Example: `  chronicle projections status
  chronicle projections status --json | jq '.[] | select(.lag_events > 1000)'
  chronicle projections status --json | jq '.[] | select(.state != "running")'
  chronicle projections status --max-lag-time 1m --max-held-back 30s || alert`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if len(s.cfg.projections) == 0 {
				return s.storedStatus(ctx, asJSON, &hf)
			}
			r, err := s.admin(ctx, "projections status")
			if err != nil {
				return err
			}
			sts, err := r.Status(ctx)
			if err != nil {
				return err
			}
			problems := health.ProjectionProblems(sts, health.ProjectionLimits{MaxLag: hf.maxLag, MaxLagTime: hf.maxLagTime})
			lp, err := hf.logProblems(ctx, s)
			if err != nil {
				return err
			}
			problems = append(problems, lp...)
			if asJSON {
				out := make([]jsonStatus, len(sts))
				for i, st := range sts {
					out[i] = jsonStatus{
						Name: st.Name, Version: st.Version, Current: buildName(st.Current), Target: buildName(st.Target),
						State: string(st.State), Checkpoint: st.Checkpoint.String(), Head: st.Head.String(),
						LagEvents: st.Lag, LagCapped: st.LagCapped, LagSeconds: st.LagTime.Seconds(),
						DeadLetters: st.DeadLetters, HeldBack: st.HeldBack, OldestOpenSec: st.OldestOpen.Seconds(),
						LastError: st.LastError, jsonHeartbeat: heartbeatJSON(st.Heartbeat),
						Partitions: partitionsJSON(st.Partitions),
					}
				}
				if err := writeJSONIndent(s.stdout, out); err != nil {
					return err
				}
				return unhealthy(problems)
			}
			tw := newTable(s.stdout)
			fmt.Fprintln(tw, "NAME\tVERSION\tCURRENT\tTARGET\tSTATE\tCHECKPOINT\tHEAD\tLAG\tLAG TIME\tDEAD LETTERS\tHELD BACK\tOWNER\tLAST SEEN")
			var errs []string
			for _, st := range sts {
				lag := fmt.Sprint(st.Lag)
				if st.LagCapped {
					lag = ">" + lag
				}
				held := "0"
				if st.HeldBack > 0 {
					held = fmt.Sprintf("%d (open %s)", st.HeldBack, formatDuration(st.OldestOpen))
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
					field(st.Name), st.Version, dash(buildName(st.Current)), dash(buildName(st.Target)), st.State,
					st.Checkpoint, st.Head, lag, formatDuration(st.LagTime), st.DeadLetters, held,
					dash(field(st.Heartbeat.Owner)), lastSeen(st.Heartbeat))
				if st.LastError != "" {
					errs = append(errs, fmt.Sprintf("%s: last error: %s", field(st.Name), escapeText(st.LastError)))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if err := printPartitions(s.stdout, sts); err != nil {
				return err
			}
			for _, e := range errs {
				fmt.Fprintln(s.stdout, e)
			}
			return unhealthy(problems)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as a JSON array")
	hf.add(c, "a projection is")
	return c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type jsonRebuild struct {
	Projection string  `json:"projection"`
	Build      string  `json:"build"`
	Events     int64   `json:"events"`
	Seconds    float64 `json:"seconds"`
}

func (s *session) projectionsRebuildCommand() *cobra.Command {
	var (
		asJSON     bool
		noProgress bool
	)
	c := &cobra.Command{
		Use:   "rebuild NAME",
		Short: "Rebuild a projection's read model from the start of the log",
		Long: `Rebuild a projection's read model from the start of the event log, beside
the current one: readers keep seeing the current build until the new one
has caught up and the switch is made, atomically. A progress bar on
stderr shows events done out of the total, the rate and the time left.

If the rebuild is interrupted (Ctrl-C), the current build is untouched and
the next run or rebuild resumes the new build from its own checkpoint.
When the projection's runner is running elsewhere, it notices the new
build at its next heartbeat and works on it too, and after the switch it
goes on live on the new build.`,
		Example: `  chronicle projections rebuild balances
  chronicle projections rebuild balances --no-progress --json`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name := args[0]
			if err := s.checkProjection(name); err != nil {
				return err
			}
			bar := newProgressBar(s.stderr, name)
			s.logOut = bar // logs go above the bar, not through it
			progress := func(p projection.Progress) {
				if p.Build.Name != name {
					return
				}
				if noProgress {
					bar.record(p)
					return
				}
				bar.update(p)
			}
			r, err := s.admin(ctx, "projections rebuild", projection.WithProgress(progress))
			if err != nil {
				return err
			}
			start := time.Now()
			err = r.Rebuild(ctx, name)
			bar.done()
			if err != nil {
				return err
			}
			elapsed := time.Since(start)
			reg, err := mustRegistration(ctx, s, name)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(s.stdout, jsonRebuild{Projection: name, Build: buildName(reg.Current), Events: bar.applied(), Seconds: elapsed.Seconds()})
			}
			_, err = fmt.Fprintf(s.stdout, "rebuilt %s: build %s is current (%d events applied in %s)\n",
				name, dash(buildName(reg.Current)), bar.applied(), formatDuration(elapsed))
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	c.Flags().BoolVar(&noProgress, "no-progress", false, "do not show the progress bar")
	return c
}

func mustRegistration(ctx context.Context, s *session, name string) (projection.Registration, error) {
	ps, err := s.projectionStore(ctx)
	if err != nil {
		return projection.Registration{}, err
	}
	reg, err := ps.Registration(ctx, name)
	if err != nil {
		return reg, fmt.Errorf("projection %q: read registration: %w", name, err)
	}
	return reg, nil
}

// jsonSummary is the JSON form of what the store knows of a projection.
type jsonSummary struct {
	Name        string `json:"name"`
	Current     string `json:"current"`
	Target      string `json:"target"`
	Previous    string `json:"previous,omitempty"`
	State       string `json:"state"`
	Checkpoint  string `json:"checkpoint"`
	Head        string `json:"head"`
	DeadLetters int    `json:"dead_letters"`
	SwitchedAt  string `json:"switched_at,omitempty"`
	jsonHeartbeat
}

// summaries lists every projection the database knows.
func (s *session) summaries(ctx context.Context) ([]projection.Summary, error) {
	ps, err := s.projectionStore(ctx)
	if err != nil {
		return nil, err
	}
	sums, err := ps.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list projections: %w", err)
	}
	return sums, nil
}

// storedStatus prints what the database knows of every projection, for a
// binary without the projections' code.
func (s *session) storedStatus(ctx context.Context, asJSON bool, hf *healthFlags) error {
	es, err := s.store(ctx)
	if err != nil {
		return err
	}
	sums, err := s.summaries(ctx)
	if err != nil {
		return err
	}
	head, err := es.Head(ctx)
	if err != nil {
		return fmt.Errorf("read head of the log: %w", err)
	}
	now := time.Now()
	states := make([]projection.Status, len(sums))
	for i, sum := range sums {
		states[i] = projection.Status{Name: sum.Name, State: sum.State(now)}
	}
	problems := health.ProjectionProblems(states, health.ProjectionLimits{})
	lp, err := hf.logProblems(ctx, s)
	if err != nil {
		return err
	}
	problems = append(problems, lp...)
	if asJSON {
		out := make([]jsonSummary, len(sums))
		for i, sum := range sums {
			out[i] = jsonSummary{
				Name: sum.Name, Current: buildName(sum.Current), Target: buildName(sum.Target), Previous: buildName(sum.Previous),
				State: string(sum.State(now)), Checkpoint: sum.Checkpoint.String(), Head: head.String(),
				DeadLetters: sum.DeadLetters, jsonHeartbeat: heartbeatJSON(sum.Heartbeat(now)),
			}
			if !sum.SwitchedAt.IsZero() {
				out[i].SwitchedAt = formatTime(sum.SwitchedAt)
			}
		}
		if err := writeJSONIndent(s.stdout, out); err != nil {
			return err
		}
		return unhealthy(problems)
	}
	if len(sums) == 0 {
		if _, err := fmt.Fprintln(s.stdout, "(no projections have run on this database)"); err != nil {
			return err
		}
		return unhealthy(problems)
	}
	tw := newTable(s.stdout)
	fmt.Fprintln(tw, "NAME\tCURRENT\tTARGET\tSTATE\tCHECKPOINT\tHEAD\tDEAD LETTERS\tOWNER\tLAST SEEN")
	for _, sum := range sums {
		hb := sum.Heartbeat(now)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", field(sum.Name), dash(buildName(sum.Current)), dash(buildName(sum.Target)),
			sum.State(now), sum.Checkpoint, head, sum.DeadLetters, dash(field(hb.Owner)), lastSeen(hb))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return unhealthy(problems)
}
