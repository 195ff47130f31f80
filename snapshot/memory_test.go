package snapshot_test

import (
	"testing"

	"github.com/chronicle-go/chronicle/snapshot"
	"github.com/chronicle-go/chronicle/snapshot/snapshottest"
)

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	snapshottest.Run(t, func(*testing.T) snapshot.Store { return snapshot.NewMemoryStore() })
}

func TestEvery(t *testing.T) {
	t.Parallel()
	p := snapshot.Every(100)
	tests := []struct {
		before, after int64
		want          bool
	}{
		{0, 1, false}, {0, 99, false}, {0, 100, true}, {95, 103, true}, {100, 101, false},
		{99, 100, true}, {100, 199, false}, {150, 420, true},
	}
	for _, tc := range tests {
		if got := p.Due(tc.before, tc.after); got != tc.want {
			t.Errorf("Every(100).Due(%d, %d) = %v, want %v", tc.before, tc.after, got, tc.want)
		}
	}
	if snapshot.Every(0).Due(0, 1000) {
		t.Error("Every(0) took a snapshot")
	}
}
