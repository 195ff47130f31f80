package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/chronicle-go/chronicle/health"
	"github.com/chronicle-go/chronicle/relay"
	"github.com/chronicle-go/chronicle/relay/wire"
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
	c.Flags().StringVar(&f.stream, "stream", base.Stream, "the JetStream stream to publish to")
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
	var t wire.Topology
	if f.cmd.Flags().Changed("stream") {
		t.Stream = f.stream
	}
	if f.cmd.Flags().Changed("subject-prefix") {
		t.SubjectPrefix = f.prefix
	}
	return append(opts, relay.WithTopology(t))
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
	f.add(c, relay.ResolveStream(append(s.baseRelayOptions(), relay.WithSchema(s.schema))...))
	c.AddCommand(s.relayStatusCommand())
	return c
}

type jsonRelayStatus struct {
	Name           string  `json:"name"`
	Stream         string  `json:"stream"`
	Checkpoint     string  `json:"checkpoint"`
	CheckpointAt   string  `json:"checkpoint_at"`
	PublishedTotal int64   `json:"published_total"`
	Head           string  `json:"head"`
	LagEvents      int64   `json:"lag_events"`
	LagCapped      bool    `json:"lag_capped"`
	HeldBack       int64   `json:"held_back"`
	LagSeconds     float64 `json:"lag_seconds"`
	Leader         bool    `json:"leader"`
	LeaderPID      int     `json:"leader_pid,omitempty"`
}

// maxRelayLag caps how many events relay status counts.
const maxRelayLag = 100000

func (s *session) relayStatusCommand() *cobra.Command {
	var (
		f      relayFlags
		hf     healthFlags
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the relay's stored checkpoint and how far it is behind the log",
		Long: `Show the relay's checkpoint (the last position JetStream confirmed, as
stored in PostgreSQL), the stream it last published to, when it stored the
checkpoint, how many events it has published in all, and its lag: the
events of the log not published yet, counting those committed but held
back from readers by an older open transaction (HELD BACK), and the age of
the oldest of them. It needs no NATS connection. A checkpoint after the
head of the log (written for another event store) is an error.

LEADER shows whether a relay of this name leads anywhere (holds the
leadership lock in PostgreSQL), with the PostgreSQL pid of its connection.
The command exits 3 (unhealthy), after printing the status, when none
leads, or past a limit given with --max-lag, --max-lag-time or
--max-held-back; stderr then lists the problems.`,
		Example: `  chronicle relay status
  chronicle relay status --max-lag-time 1m || alert`,
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
			// The stream the relay recorded is its real one, whatever the
			// flags say; before it recorded one, show the configured one.
			stream := cp.Stream
			if stream == "" || f.cmd.Flags().Changed("stream") {
				stream = relay.ResolveStream(opts...).Stream
			}
			st, err := s.es.Status(ctx)
			if err != nil {
				return fmt.Errorf("read the head of the log: %w", err)
			}
			if err := relay.CheckHead(cp, st.Head, s.schema); err != nil {
				return err
			}
			lead, err := relay.ReadLeadership(ctx, s.pool, opts...)
			if err != nil {
				return err
			}
			var (
				lag    int64
				oldest time.Time
			)
			for rec, err := range s.es.ReadAll(ctx, readAfter(cp.Position, maxRelayLag+1)) {
				if err != nil {
					return fmt.Errorf("count unpublished events: %w", err)
				}
				if lag == 0 {
					oldest = rec.RecordedAt
				}
				lag++
			}
			capped := lag > maxRelayLag
			lag = min(lag, maxRelayLag) + st.HeldBack
			var age time.Duration
			switch {
			case !oldest.IsZero():
				age = max(time.Since(oldest), 0)
			case st.HeldBack > 0 && st.Oldest != nil:
				// Every held-back event committed after the oldest open
				// transaction began.
				age = st.Oldest.Age
			}
			problems := health.RelayProblems(lead)
			if hf.maxLag > 0 && lag > int64(hf.maxLag) {
				problems = append(problems, health.Problem{Component: "relay", Name: cp.Name,
					Reason: fmt.Sprintf("lag %d events is above %d", lag, hf.maxLag)})
			}
			if hf.maxLagTime > 0 && age > hf.maxLagTime {
				problems = append(problems, health.Problem{Component: "relay", Name: cp.Name,
					Reason: fmt.Sprintf("lag %s is above %s", age.Round(time.Millisecond), hf.maxLagTime)})
			}
			if hf.cmd.Flags().Changed("max-held-back") {
				problems = append(problems, health.LogProblems(st, hf.maxHeldBack)...)
			}
			if asJSON {
				if err := writeJSON(s.stdout, jsonRelayStatus{
					Name: cp.Name, Stream: stream, Checkpoint: cp.Position.String(), CheckpointAt: formatTime(cp.At),
					PublishedTotal: cp.PublishedTotal, Head: st.Head.String(), LagEvents: lag, LagCapped: capped,
					HeldBack: st.HeldBack, LagSeconds: age.Seconds(), Leader: lead.Held, LeaderPID: lead.PID,
				}); err != nil {
					return err
				}
				return unhealthy(problems)
			}
			tw := newTable(s.stdout)
			fmt.Fprintln(tw, "NAME\tSTREAM\tLEADER\tCHECKPOINT\tSTORED AT\tPUBLISHED\tHEAD\tLAG\tHELD BACK\tOLDEST")
			l := fmt.Sprint(lag)
			if capped {
				l = ">" + l
			}
			leader := "none"
			if lead.Held {
				leader = fmt.Sprintf("pid %d", lead.PID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", cp.Name, stream, leader, cp.Position, formatTime(cp.At),
				cp.PublishedTotal, st.Head, l, st.HeldBack, age.Round(time.Millisecond))
			if err := tw.Flush(); err != nil {
				return err
			}
			return unhealthy(problems)
		},
	}
	f.add(c, relay.ResolveStream(append(s.baseRelayOptions(), relay.WithSchema(s.schema))...))
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	hf.add(c, "the relay is")
	return c
}
