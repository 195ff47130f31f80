package docstest

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// promNames returns the Prometheus series names of the metrics documented
// in docs/operations.md, as the OpenTelemetry Prometheus exporter names
// them (dots to underscores, _seconds for seconds, _total for counters,
// _bucket, _count and _sum for histograms), and the label names of their
// attributes.
func promNames(t *testing.T) (series, labels map[string]bool) {
	t.Helper()
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	series, labels = map[string]bool{}, map[string]bool{}
	row := regexp.MustCompile("^\\| `(chronicle\\.[a-z0-9_.]+)` \\| (gauge|counter|histogram), `([^`]+)` \\|([^|]*)\\|")
	attr := regexp.MustCompile("`([a-z_.]+)`")
	under := strings.NewReplacer(".", "_")
	for _, line := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := under.Replace(m[1])
		if m[3] == "s" {
			name += "_seconds"
		}
		switch m[2] {
		case "gauge":
			series[name] = true
		case "counter":
			series[name+"_total"] = true
		case "histogram":
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				series[name+s] = true
			}
		}
		for _, a := range attr.FindAllStringSubmatch(m[4], -1) {
			labels[under.Replace(a[1])] = true
		}
	}
	if len(series) < 20 {
		t.Fatalf("found only %d series in docs/operations.md's metric tables", len(series))
	}
	return series, labels
}

// checkExpr fails when expr names a chronicle_ series or label that the
// documentation does not list, or no series at all.
func checkExpr(t *testing.T, where, expr string, series, labels map[string]bool) {
	t.Helper()
	used := 0
	for _, tok := range regexp.MustCompile(`chronicle_[a-z0-9_]+`).FindAllString(expr, -1) {
		switch {
		case series[tok]:
			used++
		case labels[tok]:
		default:
			t.Errorf("%s: %q names %s, which docs/operations.md does not document", where, expr, tok)
		}
	}
	if used == 0 {
		t.Errorf("%s: %q uses no documented metric", where, expr)
	}
}

// TestObservabilityFiles parses the Prometheus alert rules and the
// Grafana dashboard shipped in docs/observability and checks that every
// metric and label they use is one docs/operations.md documents.
func TestObservabilityFiles(t *testing.T) {
	series, labels := promNames(t)

	b, err := os.ReadFile("../../docs/observability/prometheus-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("prometheus-alerts.yml: %v", err)
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.For == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: wants alert, expr, for, a severity label and a summary", r)
			}
			alerts[r.Alert] = true
			checkExpr(t, "alert "+r.Alert, r.Expr, series, labels)
		}
	}
	for _, want := range []string{"ChronicleProjectionLagging", "ChronicleDeadLetters", "ChronicleLogHeldBack", "ChronicleRelayLeaderless"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}

	b, err = os.ReadFile("../../docs/observability/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if len(dash.Panels) < 5 {
		t.Fatalf("the dashboard has %d panels", len(dash.Panels))
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			checkExpr(t, "panel "+p.Title, q.Expr, series, labels)
		}
	}
}
