package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/upcast"
)

func (s *session) tailCommand() *cobra.Command {
	var (
		from       string
		categories []string
		types      []string
		limit      int
		raw        bool
		asJSON     bool
	)
	c := &cobra.Command{
		Use:   "tail",
		Short: "Follow the global log live",
		Long: `Print the records of the global log as they are committed, in global
order, until interrupted (Ctrl-C) or --limit records have been printed.

--from chooses where to start: "head" (the default) prints only what is
committed from now on, "start" replays the whole log first, and a position
TXID/SEQ (as printed by tail and streams show) starts right after it.
Events are upcast through the binary's registered chain unless --raw.`,
		Example: `  chronicle tail
  chronicle tail --from start --category account --type Deposited,Withdrawn
  chronicle tail --from 8812/40211 --json | jq .data`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			ctx := cmd.Context()
			opts := eventstore.ReadAllOptions{Categories: splitList(categories), Types: splitList(types)}
			var fromHead bool
			switch from {
			case "head", "":
				fromHead = true
			case "start", "0":
			default:
				p, err := eventstore.ParsePosition(from)
				if err != nil {
					return usagef("--from: want head, start or TXID/SEQ, got %q", from)
				}
				opts.After = p
			}
			chain, err := s.chain()
			if err != nil {
				return err
			}
			es, err := s.store(ctx)
			if err != nil {
				return err
			}
			if fromHead {
				if opts.After, err = es.Head(ctx); err != nil {
					return fmt.Errorf("read the head of the log: %w", err)
				}
			}
			return s.tail(ctx, es, opts, recordView{chain: chain, raw: raw}, limit, asJSON)
		},
	}
	f := c.Flags()
	f.StringVar(&from, "from", "head", `where to start: "head", "start" or a position TXID/SEQ (exclusive)`)
	f.StringSliceVar(&categories, "category", nil, "only records of streams in these categories (repeat or comma-separate)")
	f.StringSliceVar(&types, "type", nil, "only records of these event types (repeat or comma-separate)")
	f.IntVar(&limit, "limit", 0, "stop after this many records; 0 follows until interrupted")
	f.BoolVar(&raw, "raw", false, "show events as stored, without upcasting")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per record")
	return c
}

func (s *session) tail(ctx context.Context, es eventstore.Store, opts eventstore.ReadAllOptions, view recordView, limit int, asJSON bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 0
	for rec, err := range es.Follow(ctx, opts) {
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil // interrupted: a clean stop
			}
			return fmt.Errorf("follow the log after %s: %w", opts.After, err)
		}
		shown, err := view.records(rec)
		if err != nil {
			return err
		}
		for _, sh := range shown {
			if asJSON {
				err = writeJSON(s.stdout, sh.json())
			} else {
				r := sh.rec
				_, err = fmt.Fprintf(s.stdout, "%s  %s@%d  %s  %s\n", r.Position, field(r.StreamID), r.StreamVersion, sh.typeLabel(), dataText(r.Data))
			}
			if err != nil {
				return err
			}
		}
		n++
		if limit > 0 && n >= limit {
			return nil
		}
	}
	return nil
}

// splitList splits comma-separated flag values and drops empty ones.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// chain returns the registered upcaster chain, or one with no upcasters
// over the registered codec registry, or nil when neither is registered.
func (s *session) chain() (*upcast.Chain, error) {
	switch {
	case s.cfg.chain != nil:
		return s.cfg.chain, nil
	case s.cfg.registry != nil:
		c, err := upcast.New(s.cfg.registry)
		if err != nil {
			return nil, fmt.Errorf("build the upcaster chain: %w", err)
		}
		return c, nil
	}
	return nil, nil
}
