package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/chronicle-go/chronicle/process"
	projpg "github.com/chronicle-go/chronicle/projection/postgres"
	"github.com/chronicle-go/chronicle/relay"
	snappg "github.com/chronicle-go/chronicle/snapshot/postgres"
)

type migrateResult struct {
	Schema     string   `json:"schema"`
	Components []string `json:"components"`
	Elapsed    string   `json:"elapsed"`
}

func (s *session) migrateCommand() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the event store, snapshot, projection, relay and process tables",
		Long: `Create or upgrade every Chronicle table in the schema: the event store,
snapshots, projection checkpoints and dead letters, the relay's
checkpoint, and the process managers' instances, timers and commands. Migrations are idempotent and guarded by an advisory lock, so
running migrate again, or from several processes at once, is safe.`,
		Example: "  DATABASE_URL=postgres://localhost/app chronicle migrate --schema billing",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			start := time.Now()
			es, err := s.store(ctx)
			if err != nil {
				return err
			}
			pool := s.pool
			snaps, err := snappg.New(pool, snappg.WithSchema(s.schema))
			if err != nil {
				return err
			}
			projs, err := projpg.New(pool, projpg.WithSchema(s.schema))
			if err != nil {
				return err
			}
			steps := []struct {
				name string
				fn   func() error
			}{
				{"eventstore", func() error { return es.Migrate(ctx) }},
				{"snapshot", func() error { return snaps.Migrate(ctx) }},
				{"projection", func() error { return projs.Migrate(ctx) }},
				{"relay", func() error { return relay.Migrate(ctx, pool, s.schema) }},
				{"process", func() error { return process.Migrate(ctx, pool, s.schema) }},
			}
			res := migrateResult{Schema: s.schema}
			for _, st := range steps {
				if err := st.fn(); err != nil {
					return fmt.Errorf("migrate %s tables in schema %q: %w", st.name, s.schema, err)
				}
				res.Components = append(res.Components, st.name)
			}
			res.Elapsed = time.Since(start).Round(time.Millisecond).String()
			if asJSON {
				return writeJSON(s.stdout, res)
			}
			_, err = fmt.Fprintf(s.stdout, "migrated schema %q: eventstore, snapshot, projection, relay, process tables are up to date (%s)\n",
				s.schema, res.Elapsed)
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}
