package projection

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
)

// MaxPartitions is the largest [Projection.Partitions].
const MaxPartitions = 1024

// DefaultLeaseTTL is how long a partition's lease lasts without a renewal
// unless [WithLeaseTTL] says otherwise; a runner renews its leases every
// third of it.
const DefaultLeaseTTL = 10 * time.Second

// ErrLeaseLost is wrapped by the error of a unit of work on a partition
// whose lease this runner no longer holds at the epoch it began with:
// another runner took the partition over (this one was paused, cut off,
// or too slow to renew), so the unit of work was rolled back. The runner
// stops working on the partition; nothing it applied there was committed.
var ErrLeaseLost = errors.New("projection: partition lease lost")

// ErrPartitionsUnsupported is returned by NewRunner and NewAdmin for a
// partitioned projection whose store is not a [PartitionStore].
var ErrPartitionsUnsupported = errors.New("projection: the store does not support partitions")

// PartitionOf returns the partition, in [0, n), of the stream streamID among
// n partitions: the 32-bit FNV-1a hash of the stream ID's bytes modulo n.
// projection/postgres creates the SQL function chronicle_partition(stream_id,
// n), which computes the same. For n <= 1 it returns 0.
func PartitionOf(streamID string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(streamID))
	return int(h.Sum32() % uint32(n))
}

// Lease is a runner's lease on one partition of a build: the fencing epoch
// is bumped each time the partition changes hands, and every checkpoint
// write of the partition checks it in its own transaction.
type Lease struct {
	// Build is the build whose partition is leased.
	Build Build
	// Partition is the partition.
	Partition int
	// Owner is the runner holding it; empty when released.
	Owner string
	// Epoch is the fencing epoch of the lease.
	Epoch int64
	// Expires is when the lease ends unless renewed, on the store's clock.
	Expires time.Time
}

// PartitionState is what a store knows of one partition of a build.
type PartitionState struct {
	// Lease is the partition's current lease (Owner empty when none).
	Lease Lease
	// Checkpoint is the position up to which the partition has applied
	// every event of its streams.
	Checkpoint eventstore.Position
	// Applied counts the events the partition's handler calls applied.
	Applied int64
}

// Members is the outcome of [PartitionStore.Renew]: the runners alive in a
// partitioned build and the leases held.
type Members struct {
	// Live are the live runners of the build, sorted, the caller included.
	Live []string
	// Held are the leases the caller still holds, renewed.
	Held []Lease
	// Owners maps each partition to its live owner ("" when free or
	// expired).
	Owners []string
}

// PartitionStore is a [Store] that runs partitioned projections: it keeps a
// checkpoint and a lease per partition, and fences each partition's units
// of work by the lease's epoch. projection/postgres is one.
type PartitionStore interface {
	Store
	// Renew records owner as a live member of partitioned build b (n
	// partitions) until ttl from now, creates b's partition rows when
	// missing, and renews owner's unexpired leases; it returns the live
	// members, the leases owner still holds and every partition's owner.
	Renew(ctx context.Context, b Build, n int, owner string, ttl time.Duration) (Members, error)
	// Acquire takes up to max free or expired partitions of b for owner,
	// each with a new epoch, lasting ttl.
	Acquire(ctx context.Context, b Build, owner string, ttl time.Duration, max int) ([]Lease, error)
	// Release gives leases up (only those still held at their epochs).
	Release(ctx context.Context, leases []Lease) error
	// Leave removes owner from b's live members.
	Leave(ctx context.Context, b Build, owner string) error
	// BeginPartition opens a unit of work on one partition of a build,
	// fenced by l: its commit fails with an error wrapping [ErrLeaseLost]
	// unless l.Owner still holds the partition at l.Epoch, checked in the
	// same transaction. Its Checkpoint is the partition's.
	BeginPartition(ctx context.Context, l Lease) (UnitOfWork, error)
	// Partitions returns the state of each partition of b, by partition;
	// empty when b is not partitioned.
	Partitions(ctx context.Context, b Build) ([]PartitionState, error)
}

// WithLeaseTTL sets how long a partition's lease lasts without renewal
// (default [DefaultLeaseTTL]): a runner renews its leases and rebalances
// every third of it, and a dead runner's partitions move after at most
// ttl. Zero or less keeps the default.
func WithLeaseTTL(ttl time.Duration) Option { return func(o *options) { o.leaseTTL = ttl } }
