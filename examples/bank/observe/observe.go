// Package observe runs the bank example as an observable service (make
// demo-observe, examples/bank/cmd/observe): the demo's steps, then the
// running service with its metrics exported for Prometheus at /metrics,
// the operations console at /console/, and liveness and readiness at
// /livez and /readyz, until interrupted.
//
// It is where the OpenTelemetry SDK and exporters live: an SDK
// MeterProvider whose reader is the OpenTelemetry Prometheus exporter,
// and, when asked, an SDK TracerProvider writing spans to a writer. The
// core packages depend on the OpenTelemetry API only (ADR 0017); a service
// chooses its SDK and exporters, as this one does.
package observe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/chronicle-go/chronicle/console"
	"github.com/chronicle-go/chronicle/examples/bank/demo"
	"github.com/chronicle-go/chronicle/health"
	"github.com/chronicle-go/chronicle/process"
)

// DefaultAddr is where the service listens when Config.Addr is empty.
const DefaultAddr = "127.0.0.1:8080"

// Config says how the observable service runs.
type Config struct {
	// Demo is the demo's configuration (where it runs, how much); its
	// TracerProvider, MeterProvider and Serve are set by Run.
	Demo demo.Config
	// Addr is the address to serve on; empty means DefaultAddr, and a
	// port 0 picks a free one.
	Addr string
	// Actions enables the console's actions (retry and discard dead
	// letters, rebuild projections, drop old builds); the default is
	// read-only.
	Actions bool
	// Traces, when set, receives every span as a JSON line (the SDK's
	// stdout exporter); nil sets no tracer provider.
	Traces io.Writer
	// Out receives the addresses served (and the demo's narration when
	// Demo.Out is nil); nil discards them.
	Out io.Writer
	// Logger logs the console's actions and the HTTP server's errors;
	// nil means Demo.Logger, then slog.Default().
	Logger *slog.Logger
	// OnServe, when set, is called once the service serves, and the
	// service stops when it returns (its error is Run's); nil serves until
	// ctx ends. Tests use it.
	OnServe func(ctx context.Context, s Serving) error
}

// Serving is the service while it serves.
type Serving struct {
	demo.Service
	// BaseURL is http://host:port; MetricsURL and ConsoleURL its pages.
	BaseURL, MetricsURL, ConsoleURL string
	// MeterProvider is the SDK meter provider behind /metrics.
	MeterProvider *sdkmetric.MeterProvider
}

// Run runs the demo with an SDK meter provider exporting to Prometheus
// (and a tracer provider when cfg.Traces is set), then serves /metrics,
// the console, /livez and /readyz on cfg.Addr until ctx ends (or OnServe
// returns), printing their addresses to cfg.Out.
func Run(ctx context.Context, cfg Config) (err error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Demo.Out == nil {
		cfg.Demo.Out = cfg.Out
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Demo.Logger
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Listen first: a busy port fails before the demo runs.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("observe: listen on %s: %w", cfg.Addr, err)
	}
	defer ln.Close()

	// Metrics: the SDK's meter provider, read by the Prometheus exporter
	// into a registry of its own (not Prometheus' global one).
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return fmt.Errorf("observe: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, mp.Shutdown(sctx))
	}()
	cfg.Demo.MeterProvider = mp
	if cfg.Traces != nil {
		te, err := stdouttrace.New(stdouttrace.WithWriter(cfg.Traces))
		if err != nil {
			return fmt.Errorf("observe: trace exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(te))
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			err = errors.Join(err, tp.Shutdown(sctx))
		}()
		cfg.Demo.TracerProvider = tp
	}
	cfg.Demo.Serve = func(ctx context.Context, s demo.Service) error {
		return serve(ctx, cfg, ln, reg, mp, s)
	}
	_, err = demo.Run(ctx, cfg.Demo)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil // interrupted while serving: a clean stop
	}
	return err
}

// serve mounts /metrics, the console and the probes, registers the gauges
// of the service's status, and serves until ctx ends or OnServe returns.
func serve(ctx context.Context, cfg Config, ln net.Listener, reg *prometheus.Registry, mp *sdkmetric.MeterProvider, s demo.Service) error {
	// The gauges of what Status reports, read at each scrape.
	if _, err := health.ObserveProjections(mp, s.Runner); err != nil {
		return err
	}
	checks := []health.Option{health.WithCheck(health.Projections(s.Runner, health.ProjectionLimits{MaxLagTime: time.Minute}))}
	copts := []console.Option{console.WithActions(cfg.Actions), console.WithLogger(cfg.Logger), console.WithDecoder(s.Bank.Chain())}
	if st, ok := s.Store.(console.Streams); ok {
		copts = append(copts, console.WithStreams(st))
	}
	if s.Postgres != nil {
		checks = append(checks, health.WithCheck(health.Log(s.Postgres, 30*time.Second)))
		copts = append(copts, console.WithLog(s.Postgres))
	}
	if s.Processes != nil {
		if _, err := process.Observe(mp, s.Processes); err != nil {
			return err
		}
		copts = append(copts, console.WithProcesses(s.Processes))
	}
	if s.Relay != nil {
		if _, err := health.ObserveRelayLeader(mp, s.Pool, s.Relay...); err != nil {
			return err
		}
		if _, err := health.ObserveRelayLag(mp, s.Postgres, s.Pool, s.Relay...); err != nil {
			return err
		}
		checks = append(checks, health.WithCheck(health.RelayLeader(s.Pool, s.Relay...)))
		copts = append(copts, console.WithRelay(s.Pool, s.Relay...))
	}
	con, err := console.New(s.Runner.Admin(), copts...)
	if err != nil {
		return err
	}
	defer con.Close()
	checker := health.New(checks...)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelError)}))
	mux.Handle("/console/", http.StripPrefix("/console", con))
	mux.Handle("GET /livez", checker.Liveness())
	mux.Handle("GET /readyz", checker.Readiness())
	mux.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusFound))

	base := "http://" + ln.Addr().String()
	sv := Serving{Service: s, BaseURL: base, MetricsURL: base + "/metrics", ConsoleURL: base + "/console/", MeterProvider: mp}
	mode := "read-only"
	if cfg.Actions {
		mode = "actions enabled"
	}
	fmt.Fprintf(cfg.Out, "\nServing the bank service (Ctrl-C to stop):\n")
	fmt.Fprintf(cfg.Out, "    metrics (Prometheus): %s\n", sv.MetricsURL)
	fmt.Fprintf(cfg.Out, "    console:              %s (%s)\n", sv.ConsoleURL, mode)
	fmt.Fprintf(cfg.Out, "    health:               %s/livez %s/readyz\n", base, base)

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var runErr error
	if cfg.OnServe != nil {
		runErr = cfg.OnServe(ctx, sv)
	} else {
		select {
		case <-ctx.Done():
		case runErr = <-served:
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}
