package aggregate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/codec"
	"github.com/chronicle-go/chronicle/eventstore/memory"
	"github.com/chronicle-go/chronicle/snapshot"
	"github.com/chronicle-go/chronicle/upcast"
)

// NewRepository refuses what it cannot use, naming every problem at once,
// and skips nil options.
func TestNewRepositoryValidates(t *testing.T) {
	t.Parallel()
	reg := registry(t)
	var nilReg *codec.Registry
	var nilChain *upcast.Chain
	tests := []struct {
		name  string
		store aggregate.EventStore
		codec aggregate.Codec
		newT  func(string) *Account
		opts  []aggregate.Option
		want  []string // empty: valid
	}{
		{"valid", memory.New(), reg, newAccount, nil, nil},
		{"nil options are skipped", memory.New(), reg, newAccount, []aggregate.Option{nil, aggregate.WithCategory("a"), nil}, nil},
		{"every option at a valid edge", memory.New(), reg, newAccount, []aggregate.Option{
			aggregate.WithRetries(0), aggregate.WithBackoff(time.Millisecond, time.Millisecond),
			aggregate.WithReadBatchSize(0), aggregate.WithCache(0), aggregate.WithSnapshotTimeout(time.Nanosecond),
			aggregate.WithLogger(nil), aggregate.WithSnapshots(nil, nil), aggregate.WithAsyncSnapshots(),
		}, nil},
		{"a chain is a codec", memory.New(), depositChain(t), newAccount, nil, nil},
		{"nil store", nil, reg, newAccount, nil, []string{"nil event store"}},
		{"nil codec", memory.New(), nil, newAccount, nil, []string{"nil codec"}},
		{"nil registry", memory.New(), nilReg, newAccount, nil, []string{"nil codec"}},
		{"nil chain", memory.New(), nilChain, newAccount, nil, []string{"nil codec"}},
		{"nil constructor", memory.New(), reg, nil, nil, []string{"nil constructor"}},
		{"negative retries", memory.New(), reg, newAccount, []aggregate.Option{aggregate.WithRetries(-1)}, []string{"WithRetries(-1)"}},
		{"zero first wait", memory.New(), reg, newAccount, []aggregate.Option{aggregate.WithBackoff(0, time.Second)}, []string{"WithBackoff(0s, 1s)"}},
		{"longest below first", memory.New(), reg, newAccount, []aggregate.Option{aggregate.WithBackoff(time.Second, time.Millisecond)}, []string{"WithBackoff(1s, 1ms)", "first <= longest"}},
		{"negative batch", memory.New(), reg, newAccount, []aggregate.Option{aggregate.WithReadBatchSize(-5)}, []string{"WithReadBatchSize(-5)"}},
		{"negative cache", memory.New(), reg, newAccount, []aggregate.Option{aggregate.WithCache(-1)}, []string{"WithCache(-1)"}},
		{"zero snapshot timeout", memory.New(), reg, newAccount, []aggregate.Option{aggregate.WithSnapshotTimeout(0)}, []string{"WithSnapshotTimeout(0s)"}},
		{"every problem at once", nil, nil, nil, []aggregate.Option{
			aggregate.WithRetries(-2), aggregate.WithBackoff(-1, -1), aggregate.WithSnapshots(snapshot.NewMemoryStore(), snapshot.Every(1)),
		}, []string{"nil event store", "nil codec", "nil constructor", "WithRetries(-2)", "WithBackoff(-1ns, -1ns)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo, err := aggregate.NewRepository(tc.store, tc.codec, tc.newT, tc.opts...)
			if len(tc.want) == 0 {
				if err != nil || repo == nil {
					t.Fatalf("NewRepository = %v, %v; want a repository", repo, err)
				}
				return
			}
			if err == nil || repo != nil {
				t.Fatalf("NewRepository = %v, %v; want an error", repo, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "aggregate: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}
