package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

func (s *session) streamsCommand() *cobra.Command {
	return group("streams", "List streams and show their events", s.streamsListCommand(), s.streamsShowCommand())
}

type jsonStream struct {
	StreamID string `json:"stream_id"`
	Category string `json:"category"`
	Version  int64  `json:"version"`
}

func (s *session) streamsListCommand() *cobra.Command {
	var (
		opts   espg.ListStreamsOptions
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List streams with their current versions, in stream ID order",
		Long: `List streams with their current versions, in stream ID order, optionally
only those of one category (the part of the ID before the first '-').
Page with --limit and --after: when a page is full, the text output ends
with the --after value of the next page.`,
		Example: `  chronicle streams list --category account --limit 50
  chronicle streams list --category account --limit 50 --after account-1049
  chronicle streams list --json | jq -r .stream_id`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Limit < 0 {
				return usagef("--limit must not be negative")
			}
			ctx := cmd.Context()
			es, err := s.store(ctx)
			if err != nil {
				return err
			}
			var (
				n    int
				last string
			)
			tw := newTable(s.stdout)
			for info, err := range es.ListStreams(ctx, opts) {
				if err != nil {
					return fmt.Errorf("list streams: %w", err)
				}
				n++
				last = info.StreamID
				if asJSON {
					if err := writeJSON(s.stdout, jsonStream{info.StreamID, eventstore.Category(info.StreamID), info.Version}); err != nil {
						return err
					}
					continue
				}
				if n == 1 {
					fmt.Fprintln(tw, "STREAM\tVERSION")
				}
				fmt.Fprintf(tw, "%s\t%d\n", field(info.StreamID), info.Version)
			}
			if asJSON {
				return nil
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			switch {
			case n == 0 && opts.Category != "":
				_, err = fmt.Fprintf(s.stdout, "(no streams in category %q)\n", opts.Category)
			case n == 0:
				_, err = fmt.Fprintln(s.stdout, "(no streams)")
			case opts.Limit > 0 && n == opts.Limit:
				_, err = fmt.Fprintf(s.stdout, "(%d streams; next page: --after %s)\n", n, field(last))
			default:
				_, err = fmt.Fprintf(s.stdout, "(%d streams)\n", n)
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&opts.Category, "category", "", "list only the streams of this category")
	f.StringVar(&opts.After, "after", "", "list the streams whose IDs sort after this one (paging)")
	f.IntVar(&opts.Limit, "limit", 100, "the most streams to list; 0 lists all")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per stream")
	return c
}

func (s *session) streamsShowCommand() *cobra.Command {
	var (
		from     int64
		limit    int
		backward bool
		raw      bool
		asJSON   bool
	)
	c := &cobra.Command{
		Use:   "show STREAM_ID",
		Short: "Show a stream's events: versions, types, metadata and data",
		Long: `Show a stream's events with their versions, positions, types, schema
versions, metadata and data. Events are shown upcast to their current
schema through the binary's registered upcaster chain; --raw shows them as
stored. The generic chronicle binary has no chain and shows stored events.`,
		Example: `  chronicle streams show account-42
  chronicle streams show account-42 --backward --limit 5
  chronicle streams show account-42 --from 10 --raw --json`,
		Args: exactArgs("STREAM_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from < 0 {
				return usagef("--from must not be negative")
			}
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			ctx := cmd.Context()
			id := args[0]
			es, err := s.store(ctx)
			if err != nil {
				return err
			}
			ro := eventstore.ReadStreamOptions{From: from, Limit: limit}
			if backward {
				ro.Direction = eventstore.Backward
			}
			chain, err := s.chain()
			if err != nil {
				return err
			}
			view := recordView{chain: chain, raw: raw}
			n := 0
			for rec, err := range es.ReadStream(ctx, id, ro) {
				if err != nil {
					if errors.Is(err, eventstore.ErrStreamNotFound) {
						return fmt.Errorf("stream %q not found", id)
					}
					return fmt.Errorf("read stream %q: %w", id, err)
				}
				shown, err := view.records(rec)
				if err != nil {
					return err
				}
				for _, sh := range shown {
					if err := s.printEvent(sh, asJSON); err != nil {
						return err
					}
				}
				n++
			}
			if n == 0 && !asJSON {
				_, err := fmt.Fprintf(s.stdout, "(no events in stream %q from version %d)\n", id, from)
				return err
			}
			return nil
		},
	}
	f := c.Flags()
	f.Int64Var(&from, "from", 0, "the first version to show (default: the start, or the end with --backward)")
	f.IntVar(&limit, "limit", 0, "the most events to show; 0 shows all")
	f.BoolVar(&backward, "backward", false, "show the newest events first")
	f.BoolVar(&raw, "raw", false, "show events as stored, without upcasting")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per event")
	return c
}

// printEvent prints one event of streams show.
func (s *session) printEvent(sh shown, asJSON bool) error {
	if asJSON {
		return writeJSON(s.stdout, sh.json())
	}
	r := sh.rec
	goType := ""
	if sh.goType != "" {
		goType = "  go " + field(sh.goType)
	}
	_, err := fmt.Fprintf(s.stdout, "%s@%d  %s  position %s  %s  id %s%s\n    metadata  %s\n    data      %s\n",
		field(r.StreamID), r.StreamVersion, sh.typeLabel(), r.Position, formatTime(r.RecordedAt), r.ID, goType,
		metadataText(r.Metadata), dataText(r.Data))
	return err
}
