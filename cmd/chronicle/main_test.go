package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
)

// The test binary runs main when asked to, so that the tests run the real
// binary: its arguments, environment, output, exit code and signals.
func TestMain(m *testing.M) {
	if os.Getenv("CHRONICLE_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "CHRONICLE_TEST_RUN_MAIN=1", "DATABASE_URL=", "NATS_URL="), env...)
	return cmd
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestBinaryFailsWithOneLine(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := command(ctx, nil, "streams", "show", "account-1")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if exitCode(err) != 1 || stdout.Len() != 0 ||
		stderr.String() != "chronicle: streams show: no database: set DATABASE_URL or pass --database-url\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", exitCode(err), stdout.String(), stderr.String())
	}
}

func TestBinaryNeedsProjectionCodeForRebuilds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, schema := testenv.Postgres(t)
	out, err := command(ctx, []string{"DATABASE_URL=" + testenv.DatabaseURL()}, "projections", "rebuild", "balances", "--schema", schema).CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "no projections are registered in chronicle") {
		t.Fatalf("exit %d: %s", exitCode(err), out)
	}
}

func TestBinaryTailStopsCleanlyOnSIGINT(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, schema := testenv.Postgres(t)
	es, err := espg.New(pool, espg.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := es.Append(ctx, "account-1", eventstore.NoStream, eventstore.Event{Type: "Opened", Data: []byte(`{"owner":"ada"}`)}); err != nil {
		t.Fatal(err)
	}

	cmd := command(ctx, []string{"DATABASE_URL=" + testenv.DatabaseURL()}, "tail", "--from", "start", "--schema", schema)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.Contains(lines.Text(), `account-1@1  Opened v1  {"owner":"ada"}`) {
		t.Fatalf("first line %q, stderr %q", lines.Text(), stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
	}
	if err := cmd.Wait(); exitCode(err) != 0 || stderr.Len() != 0 {
		t.Fatalf("after SIGINT: exit %d (%v), stderr %q", exitCode(err), err, stderr.String())
	}
}

func TestBinaryPrintsItsVersion(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := command(ctx, nil, "--version").Output()
	if want := "chronicle version " + chronicle.Version + "\n"; err != nil || string(out) != want {
		t.Fatalf("--version: %v, %q, want %q", err, out, want)
	}
}
