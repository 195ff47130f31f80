package observe_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/examples/bank"
	"github.com/chronicle-go/chronicle/examples/bank/demo"
	"github.com/chronicle-go/chronicle/examples/bank/observe"
	"github.com/chronicle-go/chronicle/internal/testenv"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels string
	value  float64
}

// scrape reads url in the Prometheus text format.
func scrape(t *testing.T, ctx context.Context, url string) []sample {
	t.Helper()
	body := get(t, ctx, url, http.StatusOK)
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)`)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("metrics: bad value in %q", sc.Text())
		}
		out = append(out, sample{name: m[1], labels: m[2], value: v})
	}
	return out
}

// sum adds the values of the samples of name whose labels contain every
// one of with (`key="value"`).
func sum(samples []sample, name string, with ...string) (float64, bool) {
	total, found := 0.0, false
	for _, s := range samples {
		if s.name != name {
			continue
		}
		ok := true
		for _, w := range with {
			ok = ok && strings.Contains(s.labels, w)
		}
		if ok {
			total, found = total+s.value, true
		}
	}
	return total, found
}

func get(t *testing.T, ctx context.Context, url string, want int) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d: %s", url, res.Status, want, b)
	}
	return string(b)
}

// documented returns the Prometheus series of the metrics
// docs/operations.md documents, named as the exporter names them, with the
// label names of their documented attributes.
func documented(t *testing.T) map[string]map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]map[string]bool{}
	row := regexp.MustCompile("^\\| `(chronicle\\.[a-z0-9_.]+)` \\| (gauge|counter|histogram), `([^`]+)` \\|([^|]*)\\|")
	attr := regexp.MustCompile("`([a-z_.]+)`")
	for _, line := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		// Every series carries the exporter's scope labels; buckets le.
		labels := map[string]bool{"otel_scope_name": true, "otel_scope_version": true, "otel_scope_schema_url": true}
		for _, a := range attr.FindAllStringSubmatch(m[4], -1) {
			labels[strings.ReplaceAll(a[1], ".", "_")] = true
		}
		name := strings.ReplaceAll(m[1], ".", "_")
		if m[3] == "s" {
			name += "_seconds"
		}
		switch m[2] {
		case "gauge":
			series[name] = labels
		case "counter":
			series[name+"_total"] = labels
		case "histogram":
			series[name+"_count"], series[name+"_sum"] = labels, labels
			bucket := map[string]bool{"le": true}
			for l := range labels {
				bucket[l] = true
			}
			series[name+"_bucket"] = bucket
		}
	}
	return series
}

// labelNames returns the names of the labels of a sample ({a="x",b="y"}).
func labelNames(labels string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`).FindAllStringSubmatch(labels, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestObservableServiceExportsMetrics runs the observable bank service
// (PostgreSQL, relay, JetStream), makes a transfer, scrapes /metrics and
// checks the documented metrics are there with sane values, that every
// chronicle_ series exported is documented, and that the console and the
// probes answer.
func TestObservableServiceExportsMetrics(t *testing.T) {
	t.Parallel()
	pool, schema := testenv.Postgres(t)
	n := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out, traces bytes.Buffer
	served := false
	cfg := observe.Config{
		Demo: demo.Config{Pool: pool, Schema: schema, NATSURL: n.URL(), Stream: testenv.Name("BANK_OBS"),
			SubjectPrefix: strings.ToLower(testenv.Name("bank_obs")) + ".events", Clients: 2, Commands: 10, Accounts: 4, Seed: 3,
			TransferTimeout: 2 * time.Second}, // a loaded machine: the credit meant to complete does
		Addr:   "127.0.0.1:0",
		Out:    &out,
		Traces: &traces,
		OnServe: func(ctx context.Context, s observe.Serving) error {
			served = true
			if !strings.Contains(out.String(), "metrics (Prometheus): "+s.MetricsURL) || !strings.Contains(out.String(), "console:              "+s.ConsoleURL) {
				t.Errorf("the service does not print its addresses:\n%s", out.String())
			}
			before := scrape(t, ctx, s.MetricsURL)
			appended0, _ := sum(before, "chronicle_eventstore_events_appended_total")

			// A transfer, waited for by every projection.
			res, err := s.Bank.Transfer(eventstore.WithCorrelationID(ctx, "obs-transfer"), "obs-transfer", "acct-01", "acct-02", 1_00)
			if err != nil {
				return fmt.Errorf("transfer: %w", err)
			}
			for _, name := range s.Runner.Projections() {
				if err := s.Runner.WaitFor(ctx, name, res.Position); err != nil {
					return fmt.Errorf("wait for %s: %w", name, err)
				}
			}
			after := scrape(t, ctx, s.MetricsURL)
			docs := documented(t)
			for _, smp := range after {
				if !strings.HasPrefix(smp.name, "chronicle_") {
					continue
				}
				labels, ok := docs[smp.name]
				if !ok {
					t.Errorf("/metrics exports %s, which docs/operations.md does not document", smp.name)
					continue
				}
				for _, l := range labelNames(smp.labels) {
					if !labels[l] {
						t.Errorf("/metrics exports %s with label %s, which docs/operations.md does not document", smp.name, l)
					}
				}
			}
			appended, _ := sum(after, "chronicle_eventstore_events_appended_total", `db_system_name="postgresql"`)
			if appended <= appended0 || appended < 2 {
				t.Errorf("events appended = %v after the transfer, %v before", appended, appended0)
			}
			positive := []struct {
				name string
				with []string
			}{
				{"chronicle_eventstore_append_duration_seconds_count", []string{`chronicle_outcome="ok"`}},
				{"chronicle_eventstore_append_duration_seconds_bucket", []string{`le="+Inf"`}},
				{"chronicle_aggregate_load_duration_seconds_count", nil},
				{"chronicle_relay_events_published_total", nil},
				{"chronicle_relay_leader", nil},
				{"chronicle_projection_events_applied_total", []string{`chronicle_projection="` + bank.BalancesProjection + `"`}},
				{"chronicle_projection_batch_duration_seconds_count", nil},
				{"chronicle_projection_wait_for_duration_seconds_count", []string{`chronicle_outcome="ok"`}},
				{"chronicle_projection_state", []string{`chronicle_projection_state="running"`}},
				{"chronicle_process_started_total", nil},
				{"chronicle_process_instances", nil},
			}
			for _, p := range positive {
				if v, ok := sum(after, p.name, p.with...); !ok || v <= 0 {
					t.Errorf("%s%v = %v (present %v), want > 0", p.name, p.with, v, ok)
				}
			}
			for _, name := range s.Runner.Projections() {
				lag, ok := sum(after, "chronicle_projection_lag", `chronicle_projection="`+name+`"`)
				if !ok || lag < 0 {
					t.Errorf("chronicle_projection_lag of %s = %v (present %v)", name, lag, ok)
				}
				if _, ok := sum(after, "chronicle_projection_lag_age_seconds", `chronicle_projection="`+name+`"`); !ok {
					t.Errorf("chronicle_projection_lag_age_seconds of %s is missing", name)
				}
			}
			for _, name := range []string{"chronicle_log_held_back", "chronicle_relay_lag", "chronicle_process_timers_pending"} {
				if _, ok := sum(after, name); !ok {
					t.Errorf("%s is missing", name)
				}
			}

			// The console and the probes, on the same address.
			if page := get(t, ctx, s.ConsoleURL, http.StatusOK); !strings.Contains(page, "<html") {
				t.Errorf("console page: %.200s", page)
			}
			var ov struct {
				Actions     bool `json:"actions"`
				Projections []struct {
					Name string `json:"name"`
				} `json:"projections"`
			}
			if err := json.Unmarshal([]byte(get(t, ctx, s.ConsoleURL+"api/overview", http.StatusOK)), &ov); err != nil {
				t.Fatal(err)
			}
			if ov.Actions || len(ov.Projections) != len(s.Runner.Projections()) {
				t.Errorf("console overview: actions %v (want read-only), %d projections", ov.Actions, len(ov.Projections))
			}
			get(t, ctx, s.BaseURL+"/livez", http.StatusOK)
			get(t, ctx, s.BaseURL+"/readyz", http.StatusOK)
			return nil
		},
	}
	if err := observe.Run(ctx, cfg); err != nil {
		t.Fatalf("observe: %v\n%s", err, out.String())
	}
	if !served {
		t.Fatalf("the service never served:\n%s", out.String())
	}
	// The tracer provider wrote the spans (flushed at shutdown).
	for _, span := range []string{`"Name":"chronicle.eventstore.append"`, `"Name":"chronicle.projection.batch"`} {
		if !strings.Contains(traces.String(), span) {
			t.Errorf("no %s span written", span)
		}
	}
}

// TestObservableServiceRefusesABusyAddress checks the service fails
// before running the demo when its address is taken.
func TestObservableServiceRefusesABusyAddress(t *testing.T) {
	t.Parallel()
	srv := &http.Server{ReadHeaderTimeout: time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	var out bytes.Buffer
	err = observe.Run(context.Background(), observe.Config{Addr: ln.Addr().String(), Out: &out})
	if err == nil || !strings.Contains(err.Error(), "observe: listen on") {
		t.Fatalf("Run on a busy address = %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("the demo ran:\n%s", out.String())
	}
}
