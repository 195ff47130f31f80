package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/chronicle-go/chronicle/relay"
)

type relayFlags struct {
	cmd    *cobra.Command
	name   string
	stream string
	prefix string
}

// baseRelayOptions are the service's relay options, its WithRelayStream
// last, so that it wins over a relay.WithStream among the options.
func (s *session) baseRelayOptions() []relay.Option {
	opts := append([]relay.Option{}, s.cfg.relayOpts...)
	if sc := s.cfg.relayStream; sc != nil {
		opts = append(opts, relay.WithStream(*sc))
	}
	return opts
}

func (f *relayFlags) add(c *cobra.Command, base relay.StreamConfig) {
	f.cmd = c
	c.Flags().StringVar(&f.name, "relay-name", relay.DefaultName, "the relay's name (its leadership lock and checkpoint)")
	c.Flags().StringVar(&f.stream, "stream", base.Name, "the JetStream stream to publish to")
	c.Flags().StringVar(&f.prefix, "subject-prefix", base.SubjectPrefix, "the subject prefix of published events")
}

// options are the relay options: the service's, then only the fields the
// command line sets, so that --stream changes the stream's name and keeps
// the service's retention, max age and the rest.
func (f *relayFlags) options(s *session) []relay.Option {
	opts := s.baseRelayOptions()
	opts = append(opts, relay.WithSchema(s.schema))
	if f.cmd.Flags().Changed("relay-name") {
		opts = append(opts, relay.WithName(f.name))
	}
	if f.cmd.Flags().Changed("stream") {
		opts = append(opts, relay.WithStreamName(f.stream))
	}
	if f.cmd.Flags().Changed("subject-prefix") {
		opts = append(opts, relay.WithSubjectPrefix(f.prefix))
	}
	return opts
}

// relay builds the relay that publishes through nc.
func (s *session) relay(ctx context.Context, nc *nats.Conn, f *relayFlags, log *slog.Logger) (*relay.Relay, error) {
	es, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	return relay.New(es, nc, s.pool, append(f.options(s), relay.WithLogger(log))...)
}

func (s *session) relayCommand() *cobra.Command {
	var f relayFlags
	c := &cobra.Command{
		Use:   "relay",
		Short: "Publish the event log to NATS JetStream, in the foreground, until interrupted",
		Long: `Run the relay in the foreground: it takes the leadership (a PostgreSQL
advisory lock, so several relays can run and only one publishes), then
publishes every committed event, in global order, to the JetStream stream,
and keeps publishing new ones until interrupted (Ctrl-C or SIGTERM), when it
stops cleanly. NATS outages are logged and retried; appends never wait for
the relay. Logs go to stderr.`,
		Example: `  NATS_URL=nats://localhost:4222 chronicle relay
  chronicle relay --nats-url nats://nats:4222 --stream EVENTS`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			url := s.natsURL
			if url == "" {
				url = s.cfg.getenv(EnvNATSURL)
			}
			if url == "" {
				return fmt.Errorf("no NATS server: set %s or pass --nats-url", EnvNATSURL)
			}
			log := s.logger(slog.LevelInfo)
			if _, err := s.store(ctx); err != nil {
				return err
			}
			nc, err := nats.Connect(url, nats.Name(s.cfg.name+" relay"), nats.Timeout(s.timeout),
				nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
			if err != nil {
				return fmt.Errorf("connect to NATS at %s: %w", redactURL(url), err)
			}
			defer nc.Close()
			r, err := s.relay(ctx, nc, &f, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.stderr, "%s relay: publishing schema %q to NATS at %s (Ctrl-C to stop)\n", s.cfg.name, s.schema, redactURL(url))
			if err := r.Run(ctx); err != nil {
				return err
			}
			st, err := r.Status(context.WithoutCancel(ctx))
			if err == nil {
				fmt.Fprintf(s.stderr, "%s relay: stopped; published %d events, checkpoint %s\n", s.cfg.name, st.Published, st.Checkpoint)
			} else {
				fmt.Fprintf(s.stderr, "%s relay: stopped\n", s.cfg.name)
			}
			return nil
		},
	}
	f.add(c, relay.ResolveStream(s.baseRelayOptions()...))
	c.AddCommand(s.relayStatusCommand())
	return c
}

type jsonRelayStatus struct {
	Name           string `json:"name"`
	Stream         string `json:"stream"`
	Checkpoint     string `json:"checkpoint"`
	CheckpointAt   string `json:"checkpoint_at"`
	PublishedTotal int64  `json:"published_total"`
	Head           string `json:"head"`
	LagEvents      int64  `json:"lag_events"`
	LagCapped      bool   `json:"lag_capped"`
}

// maxRelayLag caps how many events relay status counts.
const maxRelayLag = 100000

func (s *session) relayStatusCommand() *cobra.Command {
	var (
		f      relayFlags
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the relay's stored checkpoint and how far it is behind the log",
		Long: `Show the relay's checkpoint (the last position JetStream confirmed, as
stored in PostgreSQL), when it was stored, how many events it has published
in all, and how many events of the log are not published yet. It needs no
NATS connection.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if _, err := s.store(ctx); err != nil {
				return err
			}
			opts := f.options(s)
			cp, err := relay.ReadCheckpoint(ctx, s.pool, opts...)
			if err != nil {
				return err
			}
			stream := relay.ResolveStream(opts...).Name
			head, err := s.es.Head(ctx)
			if err != nil {
				return fmt.Errorf("read the head of the log: %w", err)
			}
			var lag int64
			for _, err := range s.es.ReadAll(ctx, readAfter(cp.Position, maxRelayLag+1)) {
				if err != nil {
					return fmt.Errorf("count unpublished events: %w", err)
				}
				lag++
			}
			capped := lag > maxRelayLag
			lag = min(lag, maxRelayLag)
			if asJSON {
				return writeJSON(s.stdout, jsonRelayStatus{
					Name: cp.Name, Stream: stream, Checkpoint: cp.Position.String(), CheckpointAt: formatTime(cp.At),
					PublishedTotal: cp.PublishedTotal, Head: head.String(), LagEvents: lag, LagCapped: capped,
				})
			}
			tw := newTable(s.stdout)
			fmt.Fprintln(tw, "NAME\tSTREAM\tCHECKPOINT\tSTORED AT\tPUBLISHED\tHEAD\tLAG")
			l := fmt.Sprint(lag)
			if capped {
				l = ">" + l
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", cp.Name, stream, cp.Position, formatTime(cp.At),
				cp.PublishedTotal, head, l)
			return tw.Flush()
		},
	}
	f.add(c, relay.ResolveStream(s.baseRelayOptions()...))
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return c
}
