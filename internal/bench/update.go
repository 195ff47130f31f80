package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/chronicle-go/chronicle/aggregate"
	"github.com/chronicle-go/chronicle/eventstore"
	espg "github.com/chronicle-go/chronicle/eventstore/postgres"
	"github.com/chronicle-go/chronicle/snapshot"
)

// upAggregates is the working set of the Update figures over many
// aggregates, upEvents the events each starts with (a snapshot at
// upSnapAt, the rest its tail).
const (
	upEvents = 25
	upSnapAt = 20
)

// updateManyFigs measures Update from 8 goroutines over a working set of
// many aggregates (10,000 at scale 1), each with a snapshot and a tail:
// without a cache, against raw pgx doing the same work (snapshot read,
// tail read and decode, version-checked INSERT), with round trips per
// Update; and with a cache of 1,000 entries, smaller than the working set,
// against a raw single-row INSERT.
func (b *agBench) updateManyFigs(ctx context.Context) ([]Row, error) {
	const workers, cat = 8, "many"
	n := b.env.N(10000, 800)
	n -= n % workers
	if err := b.fillMany(ctx, cat, n, workers, upEvents); err != nil {
		return nil, err
	}
	// The cached repository gets aggregates of its own (one event each), so
	// that the other figures' writes do not make its cached states stale.
	const catCached = "manyc"
	if err := b.fillMany(ctx, catCached, n, workers, 1); err != nil {
		return nil, err
	}
	commands := b.env.N(8000, 800) / workers
	// Worker w updates the aggregates whose index is w modulo workers, in
	// a scattered order, so that no two workers conflict.
	pick := func(w, i int) string { return fmt.Sprint(w + workers*((i*7919)%(n/workers))) }

	noCache, err := aggregate.NewRepository(b.store, b.reg, newAgAccount, aggregate.WithCategory(cat),
		aggregate.WithSnapshots(b.snaps, snapshot.Every(100)))
	if err != nil {
		return nil, err
	}
	aloneStore, err := espg.New(b.env.Pool, espg.WithSchema(b.store.Schema()), espg.WithGroupCommit(false))
	if err != nil {
		return nil, err
	}
	noCacheAlone, err := aggregate.NewRepository(aloneStore, b.reg, newAgAccount, aggregate.WithCategory(cat),
		aggregate.WithSnapshots(b.snaps, snapshot.Every(100)))
	if err != nil {
		return nil, err
	}
	loadsAloneStore, err := espg.New(b.env.Pool, espg.WithSchema(b.store.Schema()), espg.WithGroupLoads(false))
	if err != nil {
		return nil, err
	}
	defer loadsAloneStore.Close()
	noCacheLoadsAlone, err := aggregate.NewRepository(loadsAloneStore, b.reg, newAgAccount, aggregate.WithCategory(cat),
		aggregate.WithSnapshots(b.snaps, snapshot.Every(100)))
	if err != nil {
		return nil, err
	}
	cached, err := aggregate.NewRepository(b.store, b.reg, newAgAccount, aggregate.WithCategory(catCached),
		aggregate.WithSnapshots(b.snaps, snapshot.Every(100)), aggregate.WithCache(1000))
	if err != nil {
		return nil, err
	}
	update := func(repo *aggregate.Repository[*agAccount]) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			return agParallel(workers, commands, func(w, i int) error {
				_, err := repo.Update(ctx, pick(w, i), func(a *agAccount) error { return a.deposit(i) })
				return err
			})
		}
	}
	q := pgx.Identifier{b.store.Schema()}.Sanitize()
	snapSQL := `SELECT version, data FROM ` + pgx.Identifier{b.snaps.Schema()}.Sanitize() + `.snapshots WHERE stream_id = $1`
	tailSQL := `SELECT stream_version, type, data FROM ` + q + `.events WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version`
	checkedSQL := `WITH cur AS MATERIALIZED (
    SELECT coalesce(l.stream_version, 0) AS v
      FROM (VALUES (1)) AS one (x)
      LEFT JOIN LATERAL (SELECT e.stream_version FROM ` + q + `.events e
             WHERE e.stream_id = $2 ORDER BY e.stream_version DESC LIMIT 1) AS l ON true)
INSERT INTO ` + q + `.events (transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
SELECT pg_current_xact_id()::text::bigint, $1::uuid, $2, cur.v + 1, 'Deposited', 1, $4::text::jsonb, NULL
  FROM cur WHERE cur.v = $3::bigint`
	rawWork := func() (time.Duration, error) {
		return agParallel(workers, commands, func(w, i int) error {
			stream := cat + "-" + pick(w, i)
			var a agAccount
			var version int64
			var state []byte
			switch err := b.env.Pool.QueryRow(ctx, snapSQL, stream).Scan(&version, &state); {
			case err == nil:
				if err := json.Unmarshal(state, &a); err != nil {
					return err
				}
			case err != pgx.ErrNoRows:
				return err
			}
			rows, err := b.env.Pool.Query(ctx, tailSQL, stream, version)
			if err != nil {
				return err
			}
			for rows.Next() {
				var typ string
				var data []byte
				if err := rows.Scan(&version, &typ, &data); err != nil {
					rows.Close()
					return err
				}
				if typ == "Deposited" {
					var e agDeposited
					if err := json.Unmarshal(data, &e); err != nil {
						rows.Close()
						return err
					}
					a.Apply(e)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			data, _ := json.Marshal(agDeposited{Amount: i, Note: "benchmark deposit", Ref: "ref-0001"})
			id, _ := uuid.NewV7()
			tag, err := b.env.Pool.Exec(ctx, checkedSQL, pgtype.UUID{Bytes: id, Valid: true}, stream, version, string(data))
			if err == nil && tag.RowsAffected() != 1 {
				err = fmt.Errorf("raw checked insert into %s at version %d: nothing written", stream, version)
			}
			return err
		})
	}
	rawRun := 0
	rawInsert := func() (time.Duration, error) {
		rawRun++
		sql := `INSERT INTO ` + pgx.Identifier{b.raw}.Sanitize() + `.events
			(transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata)
			VALUES (pg_current_xact_id()::text::bigint, $1, $2, $3, 'Deposited', 1, $4, NULL)`
		data, _ := json.Marshal(agDeposited{Amount: 1, Note: "benchmark deposit", Ref: "ref-0001"})
		return agParallel(workers, commands, func(w, i int) error {
			id, _ := uuid.NewV7()
			_, err := b.env.Pool.Exec(ctx, sql, pgtype.UUID{Bytes: id, Valid: true},
				fmt.Sprintf("many%d-%s", rawRun, pick(w, i)), int64(i+1), string(data))
			return err
		})
	}

	// Alternate rounds, a first one of each to warm up.
	const rounds = 4
	var dNo, dNoAlone, dNoLoadsAlone, dWork, dCached, dRaw time.Duration
	var cNo, cNoAlone, cNoLoadsAlone, cWork, cCached, cRaw stCPU
	var before aggregate.Stats
	var loadTrips, batched int64 // queries and batched loads of noCache's group loads
	for round := -1; round < rounds; round++ {
		for _, run := range []struct {
			f   func() (time.Duration, error)
			sum *time.Duration
			cpu *stCPU
		}{{rawWork, &dWork, &cWork}, {update(noCache), &dNo, &cNo}, {update(noCacheAlone), &dNoAlone, &cNoAlone},
			{update(noCacheLoadsAlone), &dNoLoadsAlone, &cNoLoadsAlone}, {rawInsert, &dRaw, &cRaw}, {update(cached), &dCached, &cCached}} {
			c0 := b.env.cpuNow()
			g0 := b.store.GroupLoadStats()
			d, err := run.f()
			if err != nil {
				return nil, err
			}
			if round >= 0 {
				*run.sum += d
				*run.cpu = run.cpu.add(b.env.cpuNow().sub(c0))
				if run.sum == &dNo {
					g1 := b.store.GroupLoadStats()
					loadTrips += g1.Alone - g0.Alone + g1.Batches - g0.Batches
					batched += g1.Batched - g0.Batched
				}
			}
		}
		if round == -1 {
			before = noCache.Stats()
		}
	}
	total := commands * workers * rounds
	st := noCache.Stats()
	oneQuery := st.OneQueryLoads - before.OneQueryLoads
	taken := st.SnapshotsTaken - before.SnapshotsTaken
	loads := int64(total) + st.Retries - before.Retries
	// Round trips: the one-query loads' queries (group loads: a batch
	// serves several), two per other load, at most one per append (group
	// commit may batch them), one per snapshot write.
	trips := float64(loadTrips+2*(loads-oneQuery)+int64(total)+taken) / float64(total)
	r1 := ratioRow(fmt.Sprintf("Update, 8 goroutines, %s aggregates with snapshot + %d-event tail, Every(100), no cache", stCount(n), upEvents-upSnapAt),
		rate(total, dNo), rate(total, dWork), "commands/s", 1.2, true)
	r1.Value += fmt.Sprintf(", <= %.2f round trips/Update (one-query loads %d of %d in %d queries, %d of them batched; snapshot writes %d), %s",
		trips, oneQuery, loads, loadTrips, batched, taken, cNo.perUnit(total, "command"))
	r1.Baseline += ", " + cWork.perUnit(total, "command") + " (raw pgx, pool: snapshot read, tail read + decode, version-checked INSERT: 3 round trips)"
	r1b := ratioRow(r1.Figure+", WithGroupCommit(false)", rate(total, dNoAlone), rate(total, dWork), "commands/s", 0, true)
	r1b.Value += ", " + cNoAlone.perUnit(total, "command")
	r1b.Baseline += " (the same raw pgx work)"
	r1b.Goal, r1b.Pass = "(info)", ""
	r1c := ratioRow(r1.Figure+", WithGroupLoads(false)", rate(total, dNoLoadsAlone), rate(total, dWork), "commands/s", 0, true)
	r1c.Value += ", " + cNoLoadsAlone.perUnit(total, "command")
	r1c.Baseline += " (the same raw pgx work)"
	r1c.Goal, r1c.Pass = "(info)", ""
	cst := cached.Stats()
	r2 := ratioRow(fmt.Sprintf("Update, 8 goroutines, %s aggregates, Every(100), WithCache(1000) (smaller than the working set)", stCount(n)),
		rate(total, dCached), rate(total, dRaw), "commands/s", 1.0, true)
	r2.Value += fmt.Sprintf(", cache hits %d of %d, %s", cst.CacheHits, int64(commands*workers*(rounds+1))+cst.Retries, cCached.perUnit(total, "command"))
	r2.Baseline += ", " + cRaw.perUnit(total, "row") + " (single-row INSERT, pool)"
	return []Row{r1, r1b, r1c, r2}, nil
}

// fillMany creates n aggregates of category cat, each with events events
// in one append and, when there are more than upSnapAt, a snapshot at
// version upSnapAt.
func (b *agBench) fillMany(ctx context.Context, cat string, n, workers, events int) error {
	_, err := agParallel(workers, n/workers, func(w, i int) error {
		id := fmt.Sprint(w + workers*i)
		stream := cat + "-" + id
		evs := []eventstore.Event{{Type: "Opened", Data: []byte(`{"owner":"ada","currency":"EUR"}`)}}
		a := agAccount{Owner: "ada", Currency: "EUR"}
		for k := 1; k < events; k++ {
			e := agDeposited{Amount: k, Note: "benchmark deposit", Ref: "ref-0001"}
			data, _ := json.Marshal(e)
			evs = append(evs, eventstore.Event{Type: "Deposited", Data: data})
			if k < upSnapAt {
				a.Apply(e)
			}
		}
		if _, err := b.store.Append(ctx, stream, eventstore.NoStream, evs...); err != nil || events <= upSnapAt {
			return err
		}
		state, err := json.Marshal(&a)
		if err != nil {
			return err
		}
		return b.snaps.Save(ctx, snapshot.Snapshot{StreamID: stream, Version: upSnapAt, Revision: 1, Data: state})
	})
	return err
}
