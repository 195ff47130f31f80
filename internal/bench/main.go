// Command bench measures Chronicle beside raw pgx and nats.go baselines on
// the same PostgreSQL and NATS, in the same run, and prints one table.
// Run it with make bench.
//
// Each figure is a Chronicle rate measured next to the raw baseline it is
// judged against, so the ratio means something on a noisy machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Row is one line of the benchmark table.
type Row struct {
	Figure   string // what was measured
	Value    string // Chronicle's figure, with its unit
	Baseline string // the raw baseline's figure, with its unit; "" if none
	Ratio    string // Value relative to Baseline, e.g. "0.93x"
	Goal     string // the goal
	Pass     string // "yes", "no" or "" when there is nothing to judge
}

// Env is what every section gets: a pool on the benchmark database, a
// fresh schema per call to Schema, and a NATS URL.
type Env struct {
	DatabaseURL string
	NATSURL     string
	Pool        *pgxpool.Pool
	Scale       float64 // 1 for the figures in the issues; smaller for a quick run
	Match       string  // when set, only the store's append figures whose name contains it
	schemas     []string
	backends    backends // pids of the pool's backends (see cpuNow)
}

// Schema returns a fresh schema name; it is dropped when the run ends.
func (e *Env) Schema(prefix string) string {
	s := fmt.Sprintf("bench_%s_%d", prefix, time.Now().UnixNano())
	e.schemas = append(e.schemas, s)
	return s
}

// N scales a count by the run's scale, never below min.
func (e *Env) N(n, min int) int {
	v := int(float64(n) * e.Scale)
	if v < min {
		return min
	}
	return v
}

type section struct {
	name string
	run  func(ctx context.Context, env *Env) ([]Row, error)
}

func main() {
	dbURL := flag.String("database", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL URL")
	natsURL := flag.String("nats", os.Getenv("NATS_URL"), "NATS URL; empty starts an in-process NATS server with JetStream")
	only := flag.String("only", "", "comma-separated sections to run (store, aggregate, relay, projection, horizon, otel); empty runs all")
	scale := flag.Float64("scale", 1, "scale event counts (0.1 for a quick run)")
	match := flag.String("match", "", "run only the append figures of the store section whose name contains this (and none of its reads), and only the Update figures of the aggregate section")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the bench process to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	sections := []section{
		{"store", benchStore},
		{"aggregate", benchAggregate},
		{"relay", benchRelay},
		{"projection", benchProjection},
		{"horizon", benchHorizon},
		{"partition", benchPartition},
		{"partition_js", benchPartitionJS},
		{"otel", benchOtel},
		{"process", benchProcess},
		{scSection, benchScale}, // only with -only scale (make bench-scale)
	}
	cfg, err := pgxpool.ParseConfig(*dbURL)
	if err != nil {
		fatal(err)
	}
	cfg.MaxConns = 32
	env := &Env{}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		env.backends.add(int(c.PgConn().PID()))
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		fatal(err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		fatal(fmt.Errorf("PostgreSQL at %s: %w", *dbURL, err))
	}
	if *natsURL == "" {
		// An in-process server of the version the tests use: the machine's
		// nats-server may be older than the JetStream features Chronicle
		// needs (several filter subjects per consumer arrived in 2.10).
		url, shutdown, err := startNATS()
		if err != nil {
			fatal(err)
		}
		defer shutdown()
		*natsURL = url
		fmt.Fprintf(os.Stderr, "bench: in-process NATS server at %s\n", url)
	}
	env.DatabaseURL, env.NATSURL, env.Pool, env.Scale, env.Match = *dbURL, *natsURL, pool, *scale, *match
	defer func() {
		for _, s := range env.schemas {
			_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE")
		}
	}()

	var rows []Row
	for _, s := range sections {
		if *only != "" && !contains(strings.Split(*only, ","), s.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s...\n", s.name)
		start := time.Now()
		r, err := s.run(ctx, env)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s failed: %v\n", s.name, err)
			rows = append(rows, Row{Figure: s.name + " section", Value: "failed: " + err.Error()})
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s done in %s\n", s.name, time.Since(start).Round(time.Millisecond))
		rows = append(rows, r...)
	}
	printTable(os.Stdout, rows)
}

func printTable(w *os.File, rows []Row) {
	fmt.Fprintln(w, "| figure | Chronicle | baseline | ratio | goal | met |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.Figure, r.Value, r.Baseline, r.Ratio, r.Goal, r.Pass)
	}
}

// rate formats n events over d as events per second.
func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// perSec formats a rate.
func perSec(r float64, unit string) string { return fmt.Sprintf("%.0f %s/s", r, unit) }

// ratioRow builds a row for a figure where higher is better (atLeast) or
// lower is better (!atLeast), judged against goal.
func ratioRow(figure string, value, baseline float64, unit string, goal float64, atLeast bool) Row {
	ratio := value / baseline
	pass := ratio >= goal
	g := fmt.Sprintf(">= %.2fx", goal)
	if !atLeast {
		pass = ratio <= goal
		g = fmt.Sprintf("<= %.2fx", goal)
	}
	return Row{Figure: figure, Value: fmt.Sprintf("%.0f %s", value, unit), Baseline: fmt.Sprintf("%.0f %s", baseline, unit),
		Ratio: fmt.Sprintf("%.2fx", ratio), Goal: g, Pass: yesNo(pass)}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.TrimSpace(v) == s {
			return true
		}
	}
	return false
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
