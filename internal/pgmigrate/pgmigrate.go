// Package pgmigrate applies Chronicle's embedded SQL migrations to a
// PostgreSQL schema. Every component that keeps tables (the event store,
// snapshots, projections, the relay) ships its own numbered migrations and
// calls [Apply] from its Migrate method.
//
// Migrations are applied in one transaction per component, under a
// transaction-scoped advisory lock derived from the schema name, so two
// processes starting at once do not race: the second waits, then finds
// nothing left to do. Applying is idempotent.
package pgmigrate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DefaultSchema is the schema Chronicle's tables live in unless told.
const DefaultSchema = "chronicle"

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidateSchema checks that name is a plain lower-case PostgreSQL
// identifier: a letter or underscore, then letters, digits or underscores,
// at most 63 bytes. Such a name never needs case folding or escaping, but
// callers still quote it with [Quote].
func ValidateSchema(name string) error {
	if !identRE.MatchString(name) {
		return fmt.Errorf("chronicle: invalid schema name %q: want a plain lower-case identifier ([a-z_][a-z0-9_]*, at most 63 bytes)", name)
	}
	if strings.HasPrefix(name, "pg_") {
		return fmt.Errorf("chronicle: invalid schema name %q: the pg_ prefix is reserved by PostgreSQL", name)
	}
	return nil
}

// Quote returns name quoted as an SQL identifier.
func Quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// Conn is what Apply needs: a pgxpool.Pool, a pgx.Conn or a pgx.Tx.
type Conn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Migration is one numbered SQL script.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Load reads migrations from files named NNNN_name.sql in dir of fsys. In
// each script the placeholder {{schema}} is replaced by the quoted schema
// name when applied.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("pgmigrate: read %s: %w", dir, err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("pgmigrate: migration file %q: want NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("pgmigrate: read %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("pgmigrate: two migrations numbered %d: %s and %s", out[i].Version, out[i-1].Name, out[i].Name)
		}
	}
	return out, nil
}

// Apply creates schema if needed and applies, in order, the migrations of
// component that are not applied yet, recording each in the schema's
// chronicle_migrations table. It holds an advisory lock on the schema for
// the whole transaction, so concurrent callers serialise.
func Apply(ctx context.Context, conn Conn, schema, component string, migrations []Migration) error {
	if err := ValidateSchema(schema); err != nil {
		return err
	}
	if component == "" {
		return errors.New("pgmigrate: empty component name")
	}
	q := Quote(schema)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", LockKey("migrate:"+schema)); err != nil {
			return fmt.Errorf("pgmigrate: lock schema %s: %w", schema, err)
		}
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+q); err != nil {
			return fmt.Errorf("pgmigrate: create schema %s: %w", schema, err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+q+`.chronicle_migrations (
			component  text        NOT NULL,
			version    int         NOT NULL,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (component, version))`); err != nil {
			return fmt.Errorf("pgmigrate: create migrations table in %s: %w", schema, err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+q+`.chronicle_migrations WHERE component = $1`,
			component).Scan(&current); err != nil {
			return fmt.Errorf("pgmigrate: read applied migrations of %s in %s: %w", component, schema, err)
		}
		for _, m := range migrations {
			if m.Version <= current {
				continue
			}
			sql := strings.ReplaceAll(m.SQL, "{{schema}}", q)
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("pgmigrate: apply %s migration %s to schema %s: %w", component, m.Name, schema, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+q+`.chronicle_migrations (component, version, name) VALUES ($1, $2, $3)`,
				component, m.Version, m.Name); err != nil {
				return fmt.Errorf("pgmigrate: record %s migration %s in %s: %w", component, m.Name, schema, err)
			}
		}
		return nil
	})
}

// LockKey hashes a name to a bigint key for pg_advisory_lock and friends.
// Components use it with distinct names ("migrate:SCHEMA",
// "relay:SCHEMA:NAME") so their locks never collide.
func LockKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("chronicle:" + name))
	return int64(h.Sum64())
}
