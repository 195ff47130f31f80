package cli_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle"
	"github.com/chronicle-go/chronicle/cli"
)

// everyCommand lists the command paths of app, as its help shows them:
// the root, then each command of "Available Commands", recursively.
func everyCommand(t *testing.T, app *cli.App) [][]string {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	var out [][]string
	var walk func(path []string)
	walk = func(path []string) {
		out = append(out, path)
		help := mustOK(t, run(ctx, app, append(append([]string{}, path...), "--help")...)).stdout
		_, after, ok := strings.Cut(help, "\nAvailable Commands:\n")
		if !ok {
			return
		}
		for _, l := range strings.Split(after, "\n") {
			f := strings.Fields(l)
			if !strings.HasPrefix(l, "  ") || len(f) == 0 {
				break
			}
			if f[0] != "help" && f[0] != "completion" {
				walk(append(append([]string{}, path...), f[0]))
			}
		}
	}
	walk([]string{})
	if len(out) < 15 {
		t.Fatalf("found only %d commands: %v", len(out), out)
	}
	return out
}

// examples returns the lines of the Examples section of a help text.
func examples(help string) []string {
	_, after, ok := strings.Cut(help, "\nExamples:\n")
	if !ok {
		return nil
	}
	var out []string
	for _, l := range strings.Split(after, "\n") {
		if !strings.HasPrefix(l, "  ") {
			break
		}
		out = append(out, l)
	}
	return out
}

// TestHelpExamplesNameTheBinary checks that every example a binary's help
// shows runs that binary: the generic chronicle shows no bankctl
// commands, and a service's binary no chronicle commands.
func TestHelpExamplesNameTheBinary(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 10*time.Second)
	for _, name := range []string{"chronicle", "bankctl"} {
		app := cli.New(cli.WithName(name))
		seen := 0
		for _, args := range everyCommand(t, app) {
			r := mustOK(t, run(ctx, app, append(args, "--help")...))
			for _, l := range examples(r.stdout) {
				seen++
				words := strings.Fields(l)
				for len(words) > 0 && strings.Contains(words[0], "=") {
					words = words[1:] // an environment variable
				}
				if len(words) == 0 || words[0] != name {
					t.Errorf("%s %v --help: example %q does not run %s", name, args, l, name)
				}
			}
		}
		if seen < 10 {
			t.Fatalf("%s: found only %d example lines", name, seen)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 10*time.Second)
	r := mustOK(t, run(ctx, cli.New(), "--version"))
	if want := "chronicle version " + chronicle.Version + "\n"; r.stdout != want {
		t.Fatalf("--version: got %q, want %q", r.stdout, want)
	}
	r = mustOK(t, run(ctx, cli.New(cli.WithName("bankctl"), cli.WithVersion("1.4.2")), "--version"))
	if want := "bankctl version 1.4.2 (chronicle " + chronicle.Version + ")\n"; r.stdout != want {
		t.Fatalf("--version: got %q, want %q", r.stdout, want)
	}
	if !strings.HasPrefix(chronicle.Version, "0.") {
		t.Fatalf("Version %q: before 1.0 (docs/stability.md)", chronicle.Version)
	}
}
