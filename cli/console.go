package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-go/chronicle/console"
	"github.com/chronicle-go/chronicle/process"
	"github.com/chronicle-go/chronicle/relay"
)

func (s *session) consoleCommand() *cobra.Command {
	var (
		addr    string
		actions bool
	)
	c := &cobra.Command{
		Use:   "console",
		Short: "Serve the operations console, a web page, until interrupted",
		Long: `Serve the operations console (own binary only: it needs the projections'
code): a web page showing the head of the event log, the events an open
transaction holds back and its pid, the relay's leader (a warning when
none leads) and lag, each projection's
state, build, checkpoint, lag, rate and dead letters, the builds kept,
the dead letters, and a
stream browser (streams, a stream's events, a correlation ID's causation
tree) and the process types with their counts by state (and each
process's history and timers, pending, overdue, fired or cancelled),
refreshed every two seconds. It is read-only unless
--enable-actions is given, which adds Retry and Discard buttons to each
dead letter, a Rebuild button to each projection and a Drop button to each
old build (a discard, a rebuild and a drop ask for a confirmation); every
action is logged on stderr. It stops cleanly on Ctrl-C or SIGTERM.`,
		Example: `  chronicle console --addr 127.0.0.1:8080
  chronicle console --addr 127.0.0.1:8080 --enable-actions`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			a, err := s.admin(ctx, "console")
			if err != nil {
				return err
			}
			es, err := s.store(ctx)
			if err != nil {
				return err
			}
			log := s.logger(slog.LevelInfo)
			pa, err := process.NewAdmin(s.pool, es, s.schema)
			if err != nil {
				return err
			}
			h, err := console.New(a, console.WithActions(actions), console.WithLogger(log), console.WithLog(es), console.WithStreams(es), console.WithProcesses(pa),
				console.WithRelay(s.pool, append(s.baseRelayOptions(), relay.WithSchema(s.schema))...))
			if err != nil {
				return err
			}
			defer h.Close()
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			mode := "read-only"
			if actions {
				mode = "actions enabled"
			}
			fmt.Fprintf(s.stderr, "%s console: http://%s/ (%s; Ctrl-C to stop)\n", s.cfg.name, ln.Addr(), mode)
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			done := make(chan struct{})
			go func() {
				defer close(done)
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			err = srv.Serve(ln)
			if errors.Is(err, http.ErrServerClosed) {
				<-done
				return nil
			}
			return err
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "the address to serve the console on")
	c.Flags().BoolVar(&actions, "enable-actions", false, "allow retrying and discarding dead letters, rebuilding projections and dropping old builds from the page (logged)")
	return c
}
