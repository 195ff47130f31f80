package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
)

var _ projection.PartitionStore = (*Store)(nil)

// ttlMillis is a lease TTL as the milliseconds the SQL statements take.
func ttlMillis(ttl time.Duration) int64 { return max(ttl.Milliseconds(), 1) }

// Renew records owner as a live member of b until ttl from now, creates
// b's lease and checkpoint rows for n partitions when missing, renews
// owner's unexpired leases, and reads the live members and each
// partition's owner, in one transaction. Expiry is on the database's
// clock, so the runners' clocks never matter.
func (s *Store) Renew(ctx context.Context, b projection.Build, n int, owner string, ttl time.Duration) (projection.Members, error) {
	m := projection.Members{}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		ms := ttlMillis(ttl)
		var batch pgx.Batch
		batch.Queue(`INSERT INTO `+s.q+`.projection_members (name, version, generation, owner, expires_at)
			VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond')
			ON CONFLICT (name, version, generation, owner) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
			b.Name, b.Version, b.Generation, owner, ms)
		// Members gone for an hour are forgotten (each runner start is a
		// new member).
		batch.Queue(`DELETE FROM `+s.q+`.projection_members
			WHERE name = $1 AND version = $2 AND generation = $3 AND expires_at < now() - interval '1 hour'`, b.Name, b.Version, b.Generation)
		// Only the missing rows: ON CONFLICT alone would wait for any
		// open unit of work that has written the row (a runner paused
		// between its checkpoint write and its commit), and with it every
		// runner's renewal.
		for _, table := range []string{"projection_leases", "projection_partition_checkpoints"} {
			batch.Queue(`INSERT INTO `+s.q+`.`+table+` (name, version, generation, partition)
				SELECT $1, $2, $3, g FROM generate_series(0, $4::int - 1) g
				WHERE NOT EXISTS (SELECT 1 FROM `+s.q+`.`+table+` r
					WHERE r.name = $1 AND r.version = $2 AND r.generation = $3 AND r.partition = g)
				ON CONFLICT DO NOTHING`, b.Name, b.Version, b.Generation, n)
		}
		if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE `+s.q+`.projection_leases SET expires_at = now() + $5 * interval '1 millisecond'
			WHERE name = $1 AND version = $2 AND generation = $3 AND owner = $4 AND expires_at > now()
			RETURNING partition, epoch, expires_at`, b.Name, b.Version, b.Generation, owner, ms)
		if err != nil {
			return err
		}
		m.Held, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (projection.Lease, error) {
			l := projection.Lease{Build: b, Owner: owner}
			return l, r.Scan(&l.Partition, &l.Epoch, &l.Expires)
		})
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT owner FROM `+s.q+`.projection_members
			WHERE name = $1 AND version = $2 AND generation = $3 AND expires_at > now() ORDER BY owner`, b.Name, b.Version, b.Generation)
		if err != nil {
			return err
		}
		if m.Live, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT CASE WHEN expires_at > now() THEN owner ELSE '' END FROM `+s.q+`.projection_leases
			WHERE name = $1 AND version = $2 AND generation = $3 AND partition < $4 ORDER BY partition`, b.Name, b.Version, b.Generation, n)
		if err != nil {
			return err
		}
		m.Owners, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return projection.Members{}, fmt.Errorf("postgres: renew leases of %s for %q: %w", b, owner, err)
	}
	return m, nil
}

// Acquire takes up to max free or expired partitions of b for owner, each
// with its epoch bumped, skipping rows another runner is taking.
func (s *Store) Acquire(ctx context.Context, b projection.Build, owner string, ttl time.Duration, max int) ([]projection.Lease, error) {
	if max <= 0 {
		return nil, nil
	}
	// The CTE runs once: a subquery in FROM could be scanned again for
	// each row and take more than max partitions.
	rows, err := s.pool.Query(ctx, `WITH f AS MATERIALIZED (SELECT partition FROM `+s.q+`.projection_leases
			WHERE name = $1 AND version = $2 AND generation = $3 AND (owner = '' OR expires_at <= now())
			ORDER BY partition LIMIT $6 FOR UPDATE SKIP LOCKED)
		UPDATE `+s.q+`.projection_leases l
		SET owner = $4, epoch = l.epoch + 1, expires_at = now() + $5 * interval '1 millisecond', acquired_at = now()
		FROM f
		WHERE l.name = $1 AND l.version = $2 AND l.generation = $3 AND l.partition = f.partition
		RETURNING l.partition, l.epoch, l.expires_at`, b.Name, b.Version, b.Generation, owner, ttlMillis(ttl), max)
	if err == nil {
		var ls []projection.Lease
		ls, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (projection.Lease, error) {
			l := projection.Lease{Build: b, Owner: owner}
			return l, r.Scan(&l.Partition, &l.Epoch, &l.Expires)
		})
		if err == nil {
			return ls, nil
		}
	}
	return nil, fmt.Errorf("postgres: acquire partitions of %s for %q: %w", b, owner, err)
}

// Release gives leases up, each only while still held at its epoch.
func (s *Store) Release(ctx context.Context, leases []projection.Lease) error {
	var batch pgx.Batch
	for _, l := range leases {
		b := l.Build
		batch.Queue(`UPDATE `+s.q+`.projection_leases SET owner = '', expires_at = 'epoch'
			WHERE name = $1 AND version = $2 AND generation = $3 AND partition = $4 AND owner = $5 AND epoch = $6`,
			b.Name, b.Version, b.Generation, l.Partition, l.Owner, l.Epoch)
	}
	if batch.Len() == 0 {
		return nil
	}
	if err := s.pool.SendBatch(ctx, &batch).Close(); err != nil {
		return fmt.Errorf("postgres: release %d partition leases of %s: %w", len(leases), leases[0].Build, err)
	}
	return nil
}

// Leave removes owner from b's live members.
func (s *Store) Leave(ctx context.Context, b projection.Build, owner string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.q+`.projection_members WHERE name = $1 AND version = $2 AND generation = $3 AND owner = $4`,
		b.Name, b.Version, b.Generation, owner); err != nil {
		return fmt.Errorf("postgres: remove member %q of %s: %w", owner, b, err)
	}
	return nil
}

// Partitions returns each partition's lease and checkpoint, by partition.
func (s *Store) Partitions(ctx context.Context, b projection.Build) ([]projection.PartitionState, error) {
	rows, err := s.pool.Query(ctx, `SELECT l.partition, l.owner, l.epoch, l.expires_at, coalesce(c.tx_id, 0), coalesce(c.seq, 0), coalesce(c.applied, 0)
		FROM `+s.q+`.projection_leases l LEFT JOIN `+s.q+`.projection_partition_checkpoints c USING (name, version, generation, partition)
		WHERE l.name = $1 AND l.version = $2 AND l.generation = $3 ORDER BY l.partition`, b.Name, b.Version, b.Generation)
	if err != nil {
		return nil, fmt.Errorf("postgres: read partitions of %s: %w", b, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (projection.PartitionState, error) {
		st := projection.PartitionState{Lease: projection.Lease{Build: b}}
		var txid, seq int64
		err := r.Scan(&st.Lease.Partition, &st.Lease.Owner, &st.Lease.Epoch, &st.Lease.Expires, &txid, &seq, &st.Applied)
		st.Checkpoint = eventstore.Position{TxID: uint64(txid), Seq: uint64(seq)}
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: read partitions of %s: %w", b, err)
	}
	return out, nil
}

// BeginPartition opens a transaction on one partition of a build and reads
// its checkpoint. It takes no lock: the unit of work's commit is fenced
// instead. The checkpoint is written only while l's owner still holds the
// lease at l's epoch (the lease row is locked FOR SHARE in that statement,
// so a takeover waits for it or it sees the takeover) and only when the
// checkpoint is still the one read here; a unit of work that writes no
// checkpoint checks the lease the same way before it commits.
func (s *Store) BeginPartition(ctx context.Context, l projection.Lease) (projection.UnitOfWork, error) {
	b := l.Build
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: begin transaction for %s partition %d: %w", b, l.Partition, err)
	}
	var txid, seq int64
	err = tx.QueryRow(ctx, `SELECT tx_id, seq FROM `+s.q+`.projection_partition_checkpoints
		WHERE name = $1 AND version = $2 AND generation = $3 AND partition = $4`, b.Name, b.Version, b.Generation, l.Partition).Scan(&txid, &seq)
	if errors.Is(err, pgx.ErrNoRows) {
		err = fmt.Errorf("no checkpoint row: the partition was never leased")
	}
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("postgres: read checkpoint of %s partition %d: %w", b, l.Partition, err)
	}
	cp := eventstore.Position{TxID: uint64(txid), Seq: uint64(seq)}
	return &partUnit{unit: &unit{Tx: &Tx{s: s, tx: tx, b: b}, cp: cp}, l: l}, nil
}

// partUnit is a unit of work on one partition, fenced by its lease.
type partUnit struct {
	*unit
	l       projection.Lease
	written bool
}

// fenceSQL selects the lease row while held at the unit's epoch, locking it
// FOR SHARE: a takeover (an UPDATE of the row) waits for this transaction.
const fenceSQL = `SELECT 1 FROM %s.projection_leases WHERE name = $1 AND version = $2 AND generation = $3 AND partition = $4
	AND owner = $5 AND epoch = $6 FOR SHARE`

// SetCheckpoint stores the partition's checkpoint, fenced by the lease and
// by the checkpoint read at the start, in the round trip of the queued
// statements.
func (t *partUnit) SetCheckpoint(ctx context.Context, pos eventstore.Position, applied int) error {
	b, l := t.b, t.l
	batch := t.queued
	t.queued = pgx.Batch{}
	n := batch.Len()
	batch.Queue(`WITH fence AS (`+fmt.Sprintf(fenceSQL, t.s.q)+`)
		UPDATE `+t.s.q+`.projection_partition_checkpoints c SET tx_id = $7, seq = $8, applied = c.applied + $9, updated_at = now()
		WHERE c.name = $1 AND c.version = $2 AND c.generation = $3 AND c.partition = $4 AND c.tx_id = $10 AND c.seq = $11
			AND EXISTS (SELECT 1 FROM fence)`,
		b.Name, b.Version, b.Generation, l.Partition, l.Owner, l.Epoch, int64(pos.TxID), int64(pos.Seq), applied,
		int64(t.cp.TxID), int64(t.cp.Seq))
	br := t.tx.SendBatch(ctx, &batch)
	for i := 0; i < n; i++ {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("postgres: queued statements of %s: %w", b, err)
		}
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("postgres: store checkpoint of %s partition %d: %w", b, l.Partition, err)
	}
	if tag.RowsAffected() == 1 {
		t.written = true
		return nil
	}
	return t.lost(ctx)
}

// lost explains why a fenced write found nothing: the lease moved (an
// error wrapping projection.ErrLeaseLost), or the checkpoint did.
func (t *partUnit) lost(ctx context.Context) error {
	b, l := t.b, t.l
	var owner string
	var epoch int64
	err := t.tx.QueryRow(ctx, `SELECT owner, epoch FROM `+t.s.q+`.projection_leases
		WHERE name = $1 AND version = $2 AND generation = $3 AND partition = $4`, b.Name, b.Version, b.Generation, l.Partition).Scan(&owner, &epoch)
	if err != nil {
		return fmt.Errorf("postgres: %s partition %d: %w (reading its lease: %v)", b, l.Partition, projection.ErrLeaseLost, err)
	}
	if owner != l.Owner || epoch != l.Epoch {
		return fmt.Errorf("postgres: %s partition %d: %w: held by %q at epoch %d, not by %q at epoch %d",
			b, l.Partition, projection.ErrLeaseLost, owner, epoch, l.Owner, l.Epoch)
	}
	return fmt.Errorf("postgres: %s partition %d: %w from %s during this unit of work", b, l.Partition, errCheckpointMoved, t.cp)
}

// errCheckpointMoved is wrapped by the error of a partition's unit of work
// whose checkpoint another unit of work under the same lease moved (a dead
// letter retried meanwhile): transient, the next attempt reads the new
// checkpoint and skips what was applied.
var errCheckpointMoved = errors.New("checkpoint moved")

// Commit runs the queued statements and commits; a unit of work that has
// not written the checkpoint first checks that the lease is still held.
func (t *partUnit) Commit(ctx context.Context) error {
	if !t.written {
		if err := t.flush(ctx); err != nil {
			return err
		}
		b, l := t.b, t.l
		rows, err := t.tx.Query(ctx, fmt.Sprintf(fenceSQL, t.s.q), b.Name, b.Version, b.Generation, l.Partition, l.Owner, l.Epoch)
		if err != nil {
			return fmt.Errorf("postgres: check the lease of %s partition %d: %w", b, l.Partition, err)
		}
		held := rows.Next()
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: check the lease of %s partition %d: %w", b, l.Partition, err)
		}
		if !held {
			return t.lost(ctx)
		}
	}
	return t.unit.Commit(ctx)
}

// Activate refuses: a partition's unit of work does not switch builds.
func (t *partUnit) Activate(context.Context, []string) error {
	return fmt.Errorf("postgres: %s partition %d: a partition's unit of work cannot switch builds", t.b, t.l.Partition)
}
