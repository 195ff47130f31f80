package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/chronicle-go/chronicle/projection"
	"github.com/chronicle-go/chronicle/relay/wire"
)

func (s *session) dlqCommand() *cobra.Command {
	c := group("dlq", "List, retry and discard projections' dead letters",
		s.dlqListCommand(), s.dlqActionCommand("retry"), s.dlqActionCommand("discard"))
	c.Long = `A dead letter is an event a projection failed to apply after all its
attempts. It stays in the projection's dead-letter list with its last error
until it is retried (applied again through the projection's handler) or
discarded. A projection whose policy is to halt waits on its dead letter;
retrying or discarding it lets the projection go on.`
	return c
}

// jsonDeadLetter is the JSON form of a dead letter, shared with the
// dead-letter announcements on NATS.
type jsonDeadLetter = wire.DeadLetter

// deadLetters lists the dead letters of the named projections, or of every
// registered one when names is empty: those registered in this binary, or
// without any, every projection the database knows. Listing needs no
// projection code.
func (s *session) deadLetters(ctx context.Context, names []string) ([]projection.DeadLetter, error) {
	if len(names) == 0 {
		if len(s.cfg.projections) == 0 {
			sums, err := s.summaries(ctx)
			if err != nil {
				return nil, err
			}
			for _, sum := range sums {
				names = append(names, sum.Name)
			}
		} else {
			names = s.projectionNames()
		}
	}
	for _, n := range names {
		if err := s.checkProjection(n); err != nil {
			return nil, err
		}
	}
	ps, err := s.projectionStore(ctx)
	if err != nil {
		return nil, err
	}
	var all []projection.DeadLetter
	for _, n := range names {
		dls, err := ps.DeadLetters(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("projection %q: list dead letters: %w", n, err)
		}
		all = append(all, dls...)
	}
	return all, nil
}

func (s *session) dlqListCommand() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list [PROJECTION...]",
		Short: "List dead letters, of the named projections or of every one",
		Long: `List dead letters with their last error: of the named projections, or
without names, of every projection registered in this binary, or, in a
binary without projections (the generic chronicle), of every projection
the database knows.`,
		Example: `  chronicle dlq list
  chronicle dlq list balances
  chronicle dlq list --json | jq -r '.[].event_id'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			dls, err := s.deadLetters(cmd.Context(), args)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]jsonDeadLetter, len(dls))
				for i, d := range dls {
					out[i] = jsonDeadLetter{
						Projection: d.Projection, Build: buildName(d.Build), EventID: d.EventID.String(),
						StreamID: d.StreamID, StreamVersion: d.StreamVersion, Position: d.Position.String(),
						Type: d.Type, Attempts: d.Attempts, FailedAt: formatTime(d.FailedAt), Error: d.Error,
					}
				}
				return writeJSONIndent(s.stdout, out)
			}
			if len(dls) == 0 {
				_, err := fmt.Fprintln(s.stdout, "(no dead letters)")
				return err
			}
			tw := newTable(s.stdout)
			fmt.Fprintln(tw, "PROJECTION\tEVENT ID\tSTREAM\tTYPE\tPOSITION\tATTEMPTS\tFAILED AT\tERROR")
			for _, d := range dls {
				fmt.Fprintf(tw, "%s\t%s\t%s@%d\t%s\t%s\t%d\t%s\t%s\n", field(d.Projection), d.EventID, field(d.StreamID), d.StreamVersion,
					field(d.Type), d.Position, d.Attempts, formatTime(d.FailedAt), oneLine(d.Error, 1000))
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the dead letters as a JSON array")
	return c
}

// oneLine is a message on one line, escaped (see escapeText), at most
// about n bytes long.
func oneLine(s string, n int) string {
	s = escapeText(strings.Join(strings.Fields(s), " "))
	if len(s) > n {
		return strings.ToValidUTF8(s[:n-3], "") + "..."
	}
	return s
}

type jsonDLQAction struct {
	Projection string `json:"projection"`
	EventID    string `json:"event_id"`
	Action     string `json:"action"`
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
}

func (s *session) dlqActionCommand(action string) *cobra.Command {
	var (
		all    bool
		asJSON bool
	)
	short, long := "Apply dead letters again through their projection's handler",
		`Apply dead letters again through their projection's handler. A dead letter
that now succeeds is removed, and a projection halted on it goes on; one
that fails again stays, with the new error and one more attempt. Retrying
runs the projection's code, so it needs the service's own binary.`
	if action == "discard" {
		short, long = "Remove dead letters without applying them",
			`Remove dead letters without applying them. A projection halted on a
discarded event moves its checkpoint past it and goes on. Discarding needs
the projection's filters, so it needs the service's own binary.`
	}
	past := map[string]string{"retry": "retried", "discard": "discarded"}[action]
	c := &cobra.Command{
		Use:   action + " PROJECTION [EVENT_ID...] | PROJECTION --all | --all",
		Short: short,
		Long:  long,
		Example: fmt.Sprintf(`  chronicle dlq %[1]s balances 0190a4c2-7d1e-7a3b-9c55-2f1e4b8d6a01
  chronicle dlq %[1]s balances --all
  chronicle dlq %[1]s --all`, action),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			switch {
			case len(args) == 0 && !all:
				return usagef("name a projection and dead letter IDs, or pass --all")
			case len(args) == 1 && !all:
				return usagef("name the dead letter IDs to %s, or pass --all", action)
			case len(args) > 1 && all:
				return usagef("pass either dead letter IDs or --all, not both")
			}
			var ids []uuid.UUID
			for _, a := range args[min(1, len(args)):] {
				id, err := uuid.Parse(a)
				if err != nil {
					return usagef("invalid dead letter ID %q: want an event UUID", a)
				}
				ids = append(ids, id)
			}
			r, err := s.admin(ctx, "dlq "+action)
			if err != nil {
				return err
			}
			type target struct {
				name string
				id   uuid.UUID
			}
			var targets []target
			if all {
				dls, err := s.deadLetters(ctx, args)
				if err != nil {
					return err
				}
				for _, d := range dls {
					targets = append(targets, target{d.Projection, d.EventID})
				}
			} else {
				if err := s.checkProjection(args[0]); err != nil {
					return err
				}
				for _, id := range ids {
					targets = append(targets, target{args[0], id})
				}
			}
			var results []jsonDLQAction
			failed := 0
			for _, t := range targets {
				var err error
				if action == "retry" {
					err = r.RetryDeadLetter(ctx, t.name, t.id)
				} else {
					err = r.DiscardDeadLetter(ctx, t.name, t.id)
				}
				res := jsonDLQAction{Projection: t.name, EventID: t.id.String(), Action: action, OK: err == nil}
				if err != nil {
					if ctx.Err() != nil {
						return err
					}
					if errors.Is(err, projection.ErrDeadLetterNotFound) {
						err = fmt.Errorf("projection %q has no dead letter %s", t.name, t.id)
					}
					res.Error = err.Error()
					failed++
				}
				results = append(results, res)
				if !asJSON {
					if err != nil {
						fmt.Fprintf(s.stdout, "failed   %s %s: %s\n", field(t.name), t.id, oneLine(err.Error(), 200))
					} else {
						fmt.Fprintf(s.stdout, "%-8s %s %s\n", past, field(t.name), t.id)
					}
				}
			}
			if asJSON {
				if results == nil {
					results = []jsonDLQAction{}
				}
				if err := writeJSONIndent(s.stdout, results); err != nil {
					return err
				}
			} else if len(targets) == 0 {
				fmt.Fprintln(s.stdout, "(no dead letters)")
			}
			if failed > 0 {
				if len(targets) == 1 {
					return errors.New(results[0].Error)
				}
				return fmt.Errorf("%d of %d dead letters could not be %s", failed, len(targets), past)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "act on every dead letter (of the named projection, or of every registered one)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the results as a JSON array")
	return c
}
