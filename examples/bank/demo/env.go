package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
)

// DefaultDatabaseURL is the PostgreSQL the demo tries when DATABASE_URL is
// not set.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Environment is what Detect chose: a Config to pass to Run, and a Close
// that releases what Detect started (the pool, the in-process NATS server).
type Environment struct {
	Config Config
	// Close releases the environment; safe to call twice.
	Close func()
}

// Choose returns the in-memory environment (Memory) when inMemory is set,
// else what Detect finds: the choice of the -memory flag of make demo and
// make demo-observe.
func Choose(ctx context.Context, inMemory bool) (Environment, error) {
	if inMemory {
		return Memory(), nil
	}
	return Detect(ctx)
}

// Memory is the in-memory environment: memory event store and read
// models, the runner following the store, no PostgreSQL and no NATS.
func Memory() Environment {
	env := Environment{Close: func() {}}
	env.Config.Mode = "in memory (-memory): memory event store, memory read models, runner follows the store (no NATS)"
	return env
}

// Detect chooses where the demo runs, from the environment variables
// DATABASE_URL and NATS_URL:
//
//   - DATABASE_URL set: that PostgreSQL (an error if it does not answer);
//     otherwise DefaultDatabaseURL when it answers within two seconds;
//     otherwise no PostgreSQL at all, and the in-memory mode;
//   - with PostgreSQL, NATS_URL set: that NATS server; otherwise a NATS
//     server with JetStream started in this process, storing in a
//     temporary directory.
//
// Config.Mode says in one line what was chosen.
func Detect(ctx context.Context) (Environment, error) {
	env := Environment{Close: func() {}}
	dbURL, dbFromEnv := os.Getenv("DATABASE_URL"), true
	if dbURL == "" {
		dbURL, dbFromEnv = DefaultDatabaseURL, false
	}
	pool, err := connect(ctx, dbURL)
	if err != nil {
		if dbFromEnv {
			return env, fmt.Errorf("demo: DATABASE_URL is set but PostgreSQL does not answer at %s: %w", redact(dbURL), err)
		}
		env.Config.Mode = fmt.Sprintf("in memory: no PostgreSQL at %s (set DATABASE_URL to use one) -> memory event store, memory read models, runner follows the store (no NATS)", redact(dbURL))
		return env, nil
	}
	var closers []func()
	env.Close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		closers = nil
	}
	closers = append(closers, pool.Close)
	env.Config.Pool = pool
	dbWhere := "PostgreSQL " + redact(dbURL) + " (DATABASE_URL)"
	if !dbFromEnv {
		dbWhere = "local PostgreSQL " + redact(dbURL)
	}

	natsURL := os.Getenv("NATS_URL")
	natsWhere := "NATS " + natsURL + " (NATS_URL)"
	if natsURL == "" {
		dir, err := os.MkdirTemp("", "bank-demo-nats-")
		if err != nil {
			env.Close()
			return env, fmt.Errorf("demo: temp dir for NATS: %w", err)
		}
		closers = append(closers, func() { _ = os.RemoveAll(dir) })
		srv, err := startNATS(dir)
		if err != nil {
			env.Close()
			return env, err
		}
		closers = append(closers, func() { srv.Shutdown(); srv.WaitForShutdown() })
		natsURL = srv.ClientURL()
		natsWhere = "in-process NATS JetStream at " + natsURL
	}
	env.Config.NATSURL = natsURL
	env.Config.Mode = fmt.Sprintf("%s, schema %s + %s -> relay -> JetStream -> projection runner", dbWhere, DefaultSchema, natsWhere)
	return env, nil
}

func connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	// The relay, the runner's followers and eight clients share the pool.
	if cfg.MaxConns < 20 {
		cfg.MaxConns = 20
	}
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func startNATS(dir string) (*server.Server, error) {
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("demo: start NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("demo: in-process NATS did not start within 10s")
	}
	return srv, nil
}

// redact returns host:port/database of a PostgreSQL URL, without
// credentials.
func redact(url string) string {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return "(unparsable URL)"
	}
	return fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
}
