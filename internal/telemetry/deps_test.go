package telemetry_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Chronicle's packages depend on the OpenTelemetry API only (ADR 0017):
// no package outside the examples and the benchmark imports an SDK, an
// exporter or the Prometheus client, directly or not.
func TestCoreImportsNoSDKOrExporter(t *testing.T) {
	t.Parallel()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "github.com/chronicle-go/chronicle/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{"/examples/", "/internal/bench", "/internal/docstest"}
	forbidden := []string{"go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters", "github.com/prometheus/"}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, " ")
		skip := false
		for _, a := range allowed {
			skip = skip || strings.Contains(pkg, a)
		}
		if skip {
			continue
		}
		checked++
		for _, d := range strings.Fields(deps) {
			for _, f := range forbidden {
				if strings.HasPrefix(d, f) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked only %d packages", checked)
	}
}
