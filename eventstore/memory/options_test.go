package memory_test

import (
	"context"
	"testing"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/eventstore/memory"
)

// A nil option is skipped, as the PostgreSQL store's New does, rather than
// panicking.
func TestNewSkipsNilOptions(t *testing.T) {
	s := memory.New(nil, memory.WithClock(nil), nil)
	if _, err := s.Append(context.Background(), "a-1", eventstore.NoStream, eventstore.Event{Type: "T", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
}
