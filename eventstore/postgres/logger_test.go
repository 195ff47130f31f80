package postgres_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/internal/testenv"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsToDefault checks that a store given no logger logs to
// slog.Default(), with the error under the key "err". It changes the
// default logger, so it does not run in parallel.
func TestLogsToDefault(t *testing.T) {
	var buf lockedBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })

	// A closed pool: Follow cannot listen, says so, and fails its read.
	pool, err := pgxpool.New(context.Background(), testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	for _, opt := range []espg.Option{nil, espg.WithLogger(nil)} {
		s, err := espg.New(pool, opt)
		if err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for _, err := range s.Follow(c, eventstore.ReadAllOptions{}) {
			if err != nil {
				break
			}
		}
		cancel()
		out := buf.String()
		if !strings.Contains(out, "cannot listen") || !strings.Contains(out, "err=") {
			t.Fatalf("slog.Default() got %q, want the warning that Follow cannot listen, with an err attribute", out)
		}
	}
}
