package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/chronicle-go/chronicle/eventstore"
	"github.com/chronicle-go/chronicle/projection"
)

var (
	_ projection.HeartbeatStore = (*Store)(nil)
	_ projection.Lister         = (*Store)(nil)
)

// HeartbeatRetention is how long the heartbeat of a runner that stopped
// or died is kept before a later Beat removes it.
const HeartbeatRetention = 24 * time.Hour

// Beat records heartbeats in one statement, stamped with the database's
// clock, and removes heartbeats older than [HeartbeatRetention] of other
// owners.
func (s *Store) Beat(ctx context.Context, beats []projection.Heartbeat) error {
	if len(beats) == 0 {
		return nil
	}
	n := len(beats)
	names, owners, states := make([]string, n), make([]string, n), make([]string, n)
	versions, gens := make([]int32, n), make([]int32, n)
	intervals := make([]int64, n)
	for i, h := range beats {
		names[i], versions[i], gens[i] = h.Build.Name, int32(h.Build.Version), int32(h.Build.Generation)
		owners[i], states[i], intervals[i] = h.Owner, string(h.State), h.Interval.Milliseconds()
	}
	_, err := s.pool.Exec(ctx, `WITH purge AS (
			DELETE FROM `+s.q+`.projection_heartbeats
			WHERE last_seen_at < now() - make_interval(secs => $7) AND NOT (owner = ANY($4::text[])))
		INSERT INTO `+s.q+`.projection_heartbeats AS h (name, version, generation, owner, state, interval_ms, last_seen_at)
		SELECT u.n, u.v, u.g, u.o, u.s, u.i, now()
		FROM unnest($1::text[], $2::int[], $3::int[], $4::text[], $5::text[], $6::bigint[]) AS u(n, v, g, o, s, i)
		ON CONFLICT (name, version, generation, owner)
		DO UPDATE SET state = EXCLUDED.state, interval_ms = EXCLUDED.interval_ms, last_seen_at = now()`,
		names, versions, gens, owners, states, intervals, HeartbeatRetention.Seconds())
	if err != nil {
		return fmt.Errorf("postgres: record %d heartbeats of %q: %w", n, beats[0].Owner, err)
	}
	return nil
}

// heartbeatColumns are read by scanHeartbeat. The age is measured on the
// database's clock and SeenAt placed on the reader's, so clock skew
// between hosts does not make a runner look dead or alive.
const heartbeatColumns = `name, version, generation, owner, state, interval_ms,
	EXTRACT(EPOCH FROM now() - last_seen_at)::float8`

func scanHeartbeat(row interface{ Scan(...any) error }, now time.Time) (projection.Heartbeat, error) {
	var h projection.Heartbeat
	var state string
	var ms int64
	var age float64
	if err := row.Scan(&h.Build.Name, &h.Build.Version, &h.Build.Generation, &h.Owner, &state, &ms, &age); err != nil {
		return h, err
	}
	h.State, h.Interval = projection.State(state), time.Duration(ms)*time.Millisecond
	h.SeenAt = now.Add(-time.Duration(age * float64(time.Second)))
	return h, nil
}

// Heartbeats returns the heartbeats of a projection's builds, freshest
// first.
func (s *Store) Heartbeats(ctx context.Context, name string) ([]projection.Heartbeat, error) {
	return s.heartbeats(ctx, `WHERE name = $1`, name)
}

func (s *Store) heartbeats(ctx context.Context, where string, args ...any) ([]projection.Heartbeat, error) {
	now := time.Now()
	rows, err := s.pool.Query(ctx, `SELECT `+heartbeatColumns+` FROM `+s.q+`.projection_heartbeats `+where+`
		ORDER BY last_seen_at DESC, owner`, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: read heartbeats: %w", err)
	}
	defer rows.Close()
	var out []projection.Heartbeat
	for rows.Next() {
		h, err := scanHeartbeat(rows, now)
		if err != nil {
			return nil, fmt.Errorf("postgres: read heartbeats: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read heartbeats: %w", err)
	}
	return out, nil
}

// List returns a summary of every registered projection, by name: its
// builds, the target build's checkpoint, its number of dead letters and
// its runners' heartbeats. It needs none of the projections' code.
func (s *Store) List(ctx context.Context) ([]projection.Summary, error) {
	rows, err := s.pool.Query(ctx, `SELECT r.name, r.current_version, r.current_generation, r.target_version, r.target_generation,
			r.switched_at, COALESCE(c.tx_id, 0), COALESCE(c.seq, 0),
			(SELECT count(*) FROM `+s.q+`.projection_dead_letters d WHERE d.projection = r.name)
		FROM `+s.q+`.projection_registry r
		LEFT JOIN `+s.q+`.projection_checkpoints c
			ON c.name = r.name AND c.version = r.target_version AND c.generation = r.target_generation
		ORDER BY r.name`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list projections: %w", err)
	}
	defer rows.Close()
	var out []projection.Summary
	index := map[string]int{}
	for rows.Next() {
		var sum projection.Summary
		var cv, cg, tv, tg int
		var sw *time.Time
		var txid, seq int64
		if err := rows.Scan(&sum.Name, &cv, &cg, &tv, &tg, &sw, &txid, &seq, &sum.DeadLetters); err != nil {
			return nil, fmt.Errorf("postgres: list projections: %w", err)
		}
		if cv > 0 {
			sum.Current = projection.Build{Name: sum.Name, Version: cv, Generation: cg}
		}
		if tv > 0 {
			sum.Target = projection.Build{Name: sum.Name, Version: tv, Generation: tg}
		}
		if sw != nil {
			sum.SwitchedAt = *sw
		}
		sum.Checkpoint = eventstore.Position{TxID: uint64(txid), Seq: uint64(seq)}
		index[sum.Name] = len(out)
		out = append(out, sum)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list projections: %w", err)
	}
	hbs, err := s.heartbeats(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("postgres: list projections: %w", err)
	}
	for _, h := range hbs {
		if i, ok := index[h.Build.Name]; ok {
			out[i].Heartbeats = append(out[i].Heartbeats, h)
		}
	}
	return out, nil
}
