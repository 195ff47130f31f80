package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/chronicle-go/chronicle"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
)

// App is a Chronicle operations command line. Build it with [New] and run
// it with [App.Main] in a main package, or [App.Run] in tests. An App holds
// only its configuration, so one App may run several times, even at once.
type App struct {
	cfg config
}

// New returns an App configured by opts. It has no side effects.
func New(opts ...Option) *App {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return &App{cfg: cfg}
}

// Main runs the App with the process's arguments, stdout and stderr, stops
// cleanly on Ctrl-C or SIGTERM, and exits the process with the exit code.
func (a *App) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := a.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes returned by [App.Run].
const (
	// ExitOK means the command succeeded, or was stopped by its context
	// (Ctrl-C) while following or relaying.
	ExitOK = 0
	// ExitError means the command failed; one line on stderr says why.
	ExitError = 1
	// ExitUsage means the command line was wrong (unknown command or flag,
	// missing argument).
	ExitUsage = 2
	// ExitUnhealthy means a status command (projections status, relay
	// status) printed the status and found something wrong: a projection
	// halted or failing, a limit given with a --max-* flag exceeded, or no
	// relay leading. One line on stderr lists the problems.
	ExitUnhealthy = 3
	// ExitInterrupted means ctx was cancelled (Ctrl-C) before a command
	// that does not follow the log could finish.
	ExitInterrupted = 130
)

// Run runs the command line args (without the binary name) and returns
// the exit code: [ExitOK], [ExitError], [ExitUsage], [ExitUnhealthy] or
// [ExitInterrupted].
// Output goes to stdout; progress, logs and errors to stderr. A failure
// prints one line, "name: command: error", on stderr. When ctx ends,
// following commands (tail, relay) stop cleanly and return [ExitOK];
// others stop and return [ExitInterrupted].
func (a *App) Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	s := &session{cfg: a.cfg, stdout: stdout, stderr: stderr}
	defer s.close()
	root := s.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	path := a.cfg.name
	if cmd != nil && cmd != root {
		path += ": " + strings.TrimPrefix(cmd.CommandPath(), root.Name()+" ")
	}
	msg := escapeText(strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " "))
	var pgErr *pgconn.PgError
	undefined := errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") ||
		strings.Contains(msg, "SQLSTATE 42P01") || strings.Contains(msg, "SQLSTATE 3F000")
	if undefined && !strings.Contains(msg, "Migrate") && !strings.Contains(msg, " migrate") {
		msg += fmt.Sprintf(" (has %q run on this schema?)", a.cfg.name+" migrate")
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "%s: interrupted\n", path)
		return ExitInterrupted
	}
	var uh *unhealthyError
	if errors.As(err, &uh) {
		fmt.Fprintf(stderr, "%s: %s\n", path, msg)
		return ExitUnhealthy
	}
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(stderr, "%s: %s (see --help)\n", path, msg)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "%s: %s\n", path, msg)
	return ExitError
}

// usageError marks an error in the command line.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// isCobraUsage recognises the errors cobra returns for unknown commands,
// which do not go through the flag error function.
func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") ||
		strings.HasPrefix(err.Error(), "unknown shorthand flag")
}

// session is one run of the App: its flags, writers and the connections it
// opened.
type session struct {
	cfg    config
	stdout io.Writer
	stderr io.Writer
	// logOut, when set, receives the logs instead of stderr: a progress
	// bar that redraws itself below them.
	logOut io.Writer

	databaseURL string
	natsURL     string
	schema      string
	verbose     bool
	timeout     time.Duration

	pool *pgxpool.Pool
	es   *espg.Store
}

func (s *session) close() {
	if s.pool != nil {
		s.pool.Close()
	}
}

func (s *session) rootCommand() *cobra.Command {
	short := s.cfg.short
	if short == "" {
		short = "Operate a Chronicle event store: migrations, streams, projections, dead letters, relay"
	}
	root := &cobra.Command{
		Use:           s.cfg.name,
		Short:         short,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          unknownCommand,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
		Version:           s.version(),
	}
	root.SetVersionTemplate("{{.Name}} version {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&s.databaseURL, "database-url", "", "PostgreSQL connection string (default $"+EnvDatabaseURL+")")
	pf.StringVar(&s.natsURL, "nats-url", "", "NATS server URL (default $"+EnvNATSURL+")")
	pf.StringVar(&s.schema, "schema", s.cfg.schema, "PostgreSQL schema of the Chronicle tables")
	pf.BoolVarP(&s.verbose, "verbose", "v", false, "log debug messages to stderr")
	pf.DurationVar(&s.timeout, "connect-timeout", 10*time.Second, "how long to wait for PostgreSQL and NATS to answer")
	root.AddCommand(
		s.migrateCommand(),
		s.streamsCommand(),
		s.tailCommand(),
		s.projectionsCommand(),
		s.dlqCommand(),
		s.consoleCommand(),
		s.relayCommand(),
		s.processesCommand(),
	)
	nameExamples(root, s.cfg.name)
	return root
}

// version is what --version prints after the binary's name: Chronicle's
// version, or the service's with Chronicle's beside it.
func (s *session) version() string {
	if s.cfg.version == "" {
		return chronicle.Version
	}
	return s.cfg.version + " (chronicle " + chronicle.Version + ")"
}

// nameExamples makes the examples of c and its subcommands name the binary
// as it is called: they are written for the generic binary, "chronicle",
// which is the first word of each example line that is not an environment
// variable assignment.
func nameExamples(c *cobra.Command, name string) {
	if name != DefaultName && c.Example != "" {
		lines := strings.Split(c.Example, "\n")
		for i, l := range lines {
			words := strings.Split(l, " ")
			for j, w := range words {
				if w == "" || strings.Contains(w, "=") {
					continue
				}
				if w == DefaultName {
					words[j] = name
				}
				break
			}
			lines[i] = strings.Join(words, " ")
		}
		c.Example = strings.Join(lines, "\n")
	}
	for _, sub := range c.Commands() {
		nameExamples(sub, name)
	}
}

// noArgs refuses positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

// unknownCommand refuses arguments to a command that only holds
// subcommands.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q", args[0])
	}
	return nil
}

// exactArgs wants n positional arguments, named in the usage error.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return usagef("missing %s", strings.Join(names[len(args):], " and "))
		case len(args) > len(names):
			return usagef("unexpected argument %q", args[len(names)])
		}
		return nil
	}
}

// group is a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  unknownCommand,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(subs...)
	return c
}

// logger returns the configured logger, or one writing to stderr at the
// given level (debug with --verbose).
func (s *session) logger(level slog.Level) *slog.Logger {
	if s.cfg.logger != nil {
		return s.cfg.logger
	}
	if s.verbose {
		level = slog.LevelDebug
	}
	w := s.logOut
	if w == nil {
		w = s.stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// connect opens the PostgreSQL pool and checks that the database answers.
func (s *session) connect(ctx context.Context) (*pgxpool.Pool, error) {
	if s.pool != nil {
		return s.pool, nil
	}
	url := s.databaseURL
	if url == "" {
		url = s.cfg.getenv(EnvDatabaseURL)
	}
	if url == "" {
		return nil, fmt.Errorf("no database: set %s or pass --database-url", EnvDatabaseURL)
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("invalid database URL: %s", redactErr(err))
	}
	if pcfg.MaxConns < 4 {
		pcfg.MaxConns = 4
	}
	pctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(pctx, pcfg)
	if err == nil {
		if err = pool.Ping(pctx); err != nil {
			pool.Close()
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect to database: %w", ctx.Err())
		}
		return nil, fmt.Errorf("connect to database %s: %w", describeDB(pcfg), rootCause(err))
	}
	s.pool = pool
	return pool, nil
}

// rootCause returns the innermost error of err's chain (the first one when
// the chain branches), which for a connection failure is the one that says
// what happened, without the attempt-by-attempt detail.
func rootCause(err error) error {
	for {
		var next error
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			next = u.Unwrap()
		case interface{ Unwrap() []error }:
			if errs := u.Unwrap(); len(errs) > 0 {
				next = errs[0]
			}
		}
		if next == nil {
			return err
		}
		err = next
	}
}

// describeDB names a database without its password.
func describeDB(c *pgxpool.Config) string {
	cc := c.ConnConfig
	return fmt.Sprintf("%q on %s:%d as %q", cc.Database, cc.Host, cc.Port, cc.User)
}

// redactErr hides a connection string that a parse error may quote.
func redactErr(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		return "cannot parse the connection string"
	}
	return msg
}

// store opens the event store in the session's schema.
func (s *session) store(ctx context.Context) (*espg.Store, error) {
	if s.es != nil {
		return s.es, nil
	}
	pool, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	es, err := espg.New(pool, espg.WithSchema(s.schema), espg.WithLogger(s.logger(slog.LevelWarn)))
	if err != nil {
		return nil, err
	}
	s.es = es
	return es, nil
}
