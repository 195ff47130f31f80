package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/chronicle-go/chronicle/process"
)

func (s *session) processesCommand() *cobra.Command {
	c := group("processes", "List process managers (sagas), show their history, retry a failed compensation",
		s.processesListCommand(), s.processesShowCommand(), s.processesRetryCommand())
	c.Long = `A process (saga) is a stream "process_<type>-<id>" in the event store and
a row of the process tables. list prints the status per type (running,
completed, failed, compensating, compensated, compensation_failed, timers
and commands pending) and the processes; show prints one process's history:
its triggers, the commands it sent and their outcomes, its timers and state
changes, with correlation and causation IDs; retry resumes a process whose
compensation failed. None of them needs the processes' code.`
	return c
}

// noTables explains a missing process table: the tables are created by
// chronicle migrate or a process runner's Migrate.
func noTables(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return fmt.Errorf("%w (the process tables are created by chronicle migrate or process.Runner.Migrate: has either run on this schema?)", err)
	}
	return err
}

func (s *session) processAdmin(cmd *cobra.Command) (*process.Admin, error) {
	es, err := s.store(cmd.Context())
	if err != nil {
		return nil, err
	}
	return process.NewAdmin(s.pool, es, s.schema)
}

func (s *session) processesListCommand() *cobra.Command {
	var (
		typ, status string
		limit       int
		asJSON      bool
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "Status per process type, then the processes",
		Example: `  chronicle processes list
  chronicle processes list --type transfer --status compensation_failed
  chronicle processes list --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			a, err := s.processAdmin(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			sts, err := a.Status(ctx)
			if err != nil {
				return noTables(err)
			}
			list, err := a.List(ctx, typ, process.Status(status), limit)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(s.stdout, map[string]any{"types": sts, "processes": list})
			}
			tw := newTable(s.stdout)
			fmt.Fprintln(tw, "TYPE\tRUNNING\tCOMPLETED\tFAILED\tCOMPENSATING\tCOMPENSATED\tCOMP. FAILED\tTIMERS\tOLDEST TIMER\tSTUCK\tCOMMANDS\tFAILED CMDS\tAVG COMPLETION")
			for _, st := range sts {
				oldest := "-"
				if !st.OldestTimer.IsZero() {
					oldest = st.OldestTimer.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%s\n", escapeText(st.Type),
					st.Counts[process.Running], st.Counts[process.Completed], st.Counts[process.Failed], st.Counts[process.Compensating],
					st.Counts[process.Compensated], st.Counts[process.CompensationFailed], st.PendingTimers, oldest, st.Stuck,
					st.PendingCommands, st.FailedCommands, st.AvgCompletion.Round(time.Millisecond))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(sts) == 0 {
				_, err := fmt.Fprintln(s.stdout, "(no processes)")
				return err
			}
			fmt.Fprintln(s.stdout)
			tw = newTable(s.stdout)
			fmt.Fprintln(tw, "TYPE\tID\tSTATUS\tVERSION\tSTARTED\tUPDATED\tREASON")
			for _, i := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", escapeText(i.Type), escapeText(i.ID), i.Status, i.Version,
					i.StartedAt.UTC().Format(time.RFC3339), i.UpdatedAt.UTC().Format(time.RFC3339), escapeText(i.Reason))
			}
			return tw.Flush()
		},
	}
	f := c.Flags()
	f.StringVar(&typ, "type", "", "only processes of this type")
	f.StringVar(&status, "status", "", "only processes in this status (running, completed, failed, compensating, compensated, compensation_failed)")
	f.IntVar(&limit, "limit", 100, "the most processes to list; 0 lists all")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func (s *session) processesShowCommand() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show TYPE ID",
		Short: "Show a process's status and history",
		Example: `  chronicle processes show transfer t-42
  chronicle processes show transfer t-42 --json`,
		Args: exactArgs("TYPE", "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := s.processAdmin(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			inst, err := a.Get(ctx, args[0], args[1])
			if err != nil {
				return noTables(err)
			}
			hist, err := a.History(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			if asJSON {
				type ev struct {
					Version     int64           `json:"version"`
					Type        string          `json:"type"`
					Data        json.RawMessage `json:"data"`
					Correlation string          `json:"correlation_id,omitempty"`
					Causation   string          `json:"causation_id,omitempty"`
					RecordedAt  time.Time       `json:"recorded_at"`
				}
				out := struct {
					process.Instance
					History []ev `json:"history"`
				}{Instance: inst}
				for _, r := range hist {
					out.History = append(out.History, ev{r.StreamVersion, r.Type, json.RawMessage(r.Data), r.Metadata.CorrelationID(), r.Metadata.CausationID(), r.RecordedAt})
				}
				return writeJSON(s.stdout, out)
			}
			fmt.Fprintf(s.stdout, "process %s/%s  stream %s  status %s", escapeText(inst.Type), escapeText(inst.ID), escapeText(inst.StreamID), inst.Status)
			if inst.Reason != "" {
				fmt.Fprintf(s.stdout, " (%s)", escapeText(inst.Reason))
			}
			fmt.Fprintf(s.stdout, "\nstarted %s, updated %s\n\n", inst.StartedAt.UTC().Format(time.RFC3339Nano), inst.UpdatedAt.UTC().Format(time.RFC3339Nano))
			tw := newTable(s.stdout)
			fmt.Fprintln(tw, "VER\tRECORDED\tEVENT\tCORRELATION\tCAUSATION\tDATA")
			for _, r := range hist {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.StreamVersion, r.RecordedAt.UTC().Format("15:04:05.000"),
					escapeText(strings.TrimPrefix(r.Type, "process.")), escapeText(dash(r.Metadata.CorrelationID())),
					escapeText(dash(r.Metadata.CausationID())), escapeText(string(r.Data)))
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func (s *session) processesRetryCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "retry TYPE ID",
		Short: "Retry the failed compensation of a process in compensation_failed",
		Long: `Records CompensationRetried in the process's stream; a runner of the type
then sends the failed compensation again (as a new command) and goes on
with the remaining ones. Fails for a process in any other state.`,
		Example: `  chronicle processes retry transfer t-42`,
		Args:    exactArgs("TYPE", "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := s.processAdmin(cmd)
			if err != nil {
				return err
			}
			res, err := a.Retry(cmd.Context(), args[0], args[1])
			if errors.Is(err, process.ErrNotFound) {
				return fmt.Errorf("no process %s/%s: %w", args[0], args[1], err)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.stdout, "retry of %s/%s recorded at version %d (position %s); a runner of %q resumes the compensation\n",
				escapeText(args[0]), escapeText(args[1]), res.Version, res.Position, escapeText(args[0]))
			return err
		},
	}
}
