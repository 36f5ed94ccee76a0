package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/jobs"
)

type migrateFlags struct {
	target         string
	database       string
	dir            string
	dryRun         bool
	snapshotBefore bool
	lockWait       time.Duration
	syncTimeout    time.Duration
}

func (a *app) migrateCommand() *cobra.Command {
	var f migrateFlags
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Run versioned schema migrations through schema_migrations (golang-migrate compatible)",
		Long: `Apply the {version}_{title}.up.sql / .down.sql files of a directory to ClickHouse or PostgreSQL,
recording the version in golang-migrate's schema_migrations table, so golang-migrate and
tracevault can each continue where the other stopped.

Files may hold several statements separated by ';'. In ClickHouse files, {{cluster}} becomes
'ON CLUSTER <name>' when [migrate] cluster (or [clickhouse] cluster) is set, and nothing otherwise.

Only one migrator runs at a time: a PostgreSQL advisory lock (golang-migrate's own key), and
for ClickHouse an ephemeral ZooKeeper node, so runners on different hosts never interleave.
A failing migration leaves schema_migrations dirty at its version and prints the statement, the
server's error and the force commands; later runs refuse until 'force'. On a cluster, after each
migration every replica must agree on schema_migrations and the touched tables' columns.
'status' exits 1 when the database is dirty or an applied file changed since it ran (drift).

ClickHouse files run over the first replica's HTTP interface ([clickhouse] http_addresses) in the
migrated database, so unqualified table names resolve as they do under golang-migrate.
--snapshot-before (up, down, goto) snapshots the migrated database first and prints the id; the
snapshot records that scope, so it is never 'latest'. A ClickHouse database that holds no row (a
new install) has nothing to snapshot: that is said, nothing is recorded, and the migration runs.`,
		Example: examples(
			"tracevault migrate --target clickhouse status",
			"tracevault migrate --target clickhouse up --snapshot-before",
			"tracevault migrate --target postgres --database langfuse down 1",
			"tracevault migrate --target clickhouse goto 20260501120000 --dry-run",
			"tracevault migrate --target clickhouse force 3",
			"tracevault migrate --target clickhouse create add_trace_tags"),
	}
	pf := c.PersistentFlags()
	pf.StringVar(&f.target, "target", "", "what to migrate: clickhouse or postgres (required)")
	pf.StringVar(&f.database, "database", "", "database to migrate (default [migrate] clickhouse_database, or the [postgres] dsn's)")
	pf.StringVar(&f.dir, "dir", "", "migrations directory (default [migrate] clickhouse_dir or postgres_dir)")
	pf.BoolVar(&f.dryRun, "dry-run", false, "print what would be done, change nothing")
	pf.DurationVar(&f.lockWait, "lock-wait", 5*time.Minute, "how long to wait for another migrator to finish")
	c.AddCommand(
		a.migrateStepCommand(&f, "up [N]", "Apply all pending migrations, or the next N", "up"),
		a.migrateStepCommand(&f, "down [N]", "Revert all applied migrations, or the last N", "down"),
		a.migrateStepCommand(&f, "goto V", "Migrate up or down to version V", "goto"),
		a.migrateForceCommand(&f),
		a.migrateStatusCommand(&f),
		a.migrateCreateCommand(&f),
	)
	return c
}

func (a *app) migrateStepCommand(f *migrateFlags, use, short, kind string) *cobra.Command {
	c := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: examples("tracevault migrate --target clickhouse " + kind + map[string]string{"up": "", "down": " 1", "goto": " 3"}[kind]),
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			op := jobs.MigrateOp{Kind: kind}
			if kind == "goto" && len(args) != 1 {
				return usage(errors.New("goto needs the version to go to, e.g. goto 3"))
			}
			if len(args) == 1 {
				n, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil || (kind != "goto" && n < 1) {
					return usage(fmt.Errorf("%s %q: give a positive number", kind, args[0]))
				}
				op.N, op.Version = int(n), n
			}
			return a.withRunner(cmd, f, func(ctx context.Context, r *jobs.Migrator) error {
				if f.dryRun {
					steps, err := r.Plan(ctx, op)
					if err != nil {
						return failed(err)
					}
					return a.printSteps(cmd, "would apply", steps)
				}
				var before func(context.Context, []jobs.MigrateStep) error
				if f.snapshotBefore {
					before = func(ctx context.Context, steps []jobs.MigrateStep) error {
						return a.snapshotBeforeMigrate(cmd, f, steps)
					}
				}
				done, err := r.Migrate(ctx, op, before)
				if err == nil && len(done) == 0 && !a.json {
					// A silent exit 0 left the operator guessing whether it ran, and whether
					// --snapshot-before took the snapshot the undo would need.
					msg := "nothing to do: no migration to apply"
					if f.snapshotBefore {
						msg += ", so no snapshot was taken"
					}
					fmt.Fprintln(cmd.OutOrStdout(), msg)
					return nil
				}
				if perr := a.printSteps(cmd, "applied", done); perr != nil {
					return perr
				}
				return wrapFailed(err)
			})
		},
	}
	c.Flags().BoolVar(&f.snapshotBefore, "snapshot-before", false, "snapshot the migrated database first and print the undo: the down migration, then the restore of its data")
	c.Flags().DurationVar(&f.syncTimeout, "sync-timeout", time.Minute, "how long every replica may take to agree after each ClickHouse migration")
	return c
}

func (a *app) migrateForceCommand(f *migrateFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "force V",
		Short: "Set the version and clear the dirty flag without running anything (-1: none applied)",
		Long: `Set the version and clear the dirty flag without running anything, as golang-migrate's force does.
Use it after a failed migration, once you have made the schema match version V by hand.`,
		Example: examples("tracevault migrate --target clickhouse force 3"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return usage(fmt.Errorf("force %q: give a version number (-1 for none)", args[0]))
			}
			return a.withRunner(cmd, f, func(ctx context.Context, r *jobs.Migrator) error {
				if f.dryRun {
					fmt.Fprintf(cmd.OutOrStdout(), "would force version %d (clean)\n", v)
					return nil
				}
				if err := r.Force(ctx, v); err != nil {
					return failed(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "forced version %d (clean)\n", v)
				return nil
			})
		},
	}
}

func (a *app) migrateStatusCommand(f *migrateFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "status",
		Short:   "Show the version, dirty flag, applied and pending files, and drift; exit 1 when dirty or drifted",
		Example: examples("tracevault migrate --target clickhouse status", "tracevault migrate --target postgres status --json"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withRunner(cmd, f, func(ctx context.Context, r *jobs.Migrator) error {
				st, err := r.Status(ctx)
				if err != nil {
					return failed(err)
				}
				if a.json {
					if err := a.printJSON(cmd, st); err != nil {
						return err
					}
				} else {
					printStatus(cmd.OutOrStdout(), st)
				}
				switch {
				case st.Dirty:
					return failed(r.Dirty(st.Version))
				case len(st.Drift) > 0:
					return &codeError{code: exitFailed, err: fmt.Errorf("%d applied migration file(s) changed since they ran; restore them, or add a new migration for the change", len(st.Drift))}
				}
				return nil
			})
		},
	}
}

func printStatus(w io.Writer, st *jobs.MigrateStatus) {
	state := "clean"
	if st.Dirty {
		state = "DIRTY"
	}
	version := strconv.FormatInt(st.Version, 10)
	if st.Version == jobs.NilVersion {
		version = "none"
	}
	fmt.Fprintf(w, "%s: version %s (%s)\n", st.Database, version, state)
	if st.VersionWithoutFile {
		fmt.Fprintf(w, "  version %d has no file in the migrations directory\n", st.Version)
	}
	fmt.Fprintf(w, "applied: %d\n", len(st.Applied))
	for _, fs := range st.Applied {
		note := "ok"
		switch {
		case fs.Drift:
			note = "DRIFT: changed since it was applied"
		case fs.Recorded == "":
			note = "no checksum (applied by another tool)"
		}
		fmt.Fprintf(w, "  %-16d %-40s %s\n", fs.Version, fs.Title, note)
	}
	fmt.Fprintf(w, "pending: %d\n", len(st.Pending))
	for _, fs := range st.Pending {
		fmt.Fprintf(w, "  %-16d %s\n", fs.Version, fs.Title)
	}
}

func (a *app) migrateCreateCommand(f *migrateFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "create TITLE",
		Short:   "Create an empty up/down pair, numbered after the newest file (sequence or UTC timestamp)",
		Example: examples("tracevault migrate --target clickhouse create add_trace_tags", "tracevault migrate --target postgres create add_index --dry-run"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, dir, err := a.migrateTarget(cmd, f)
			if err != nil {
				return err
			}
			up, down, err := jobs.NewMigrationFiles(dir, args[0], time.Now())
			if err != nil {
				return jobError(err)
			}
			verb := "created"
			if f.dryRun {
				verb = "would create"
			} else if err := jobs.CreateMigrationFiles(up, down); err != nil {
				return failed(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n%s %s\n", verb, up, verb, down)
			return nil
		},
	}
}

// migrateTarget loads the configuration and resolves --target and --dir.
func (a *app) migrateTarget(cmd *cobra.Command, f *migrateFlags) (*config.Config, string, error) {
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return nil, "", err
	}
	a.cfg = cfg
	if f.target != config.SourceClickHouse && f.target != config.SourcePostgres {
		return nil, "", usage(fmt.Errorf("--target %q: choose clickhouse or postgres", f.target))
	}
	return cfg, jobs.MigrateDir(cfg, f.target, f.dir), nil
}

// withRunner opens the target's driver and runner for one command.
func (a *app) withRunner(cmd *cobra.Command, f *migrateFlags, do func(context.Context, *jobs.Migrator) error) error {
	cfg, _, err := a.migrateTarget(cmd, f)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	r, err := jobs.OpenMigrator(ctx, cfg, f.target, jobs.MigrateOptions{Database: f.database, Dir: f.dir, LockWait: f.lockWait,
		SyncTimeout: f.syncTimeout, Command: a.migrateCommandLine(cmd, f)}, a.log)
	if errors.Is(err, jobs.ErrNotConfigured) {
		return usage(err)
	}
	if err != nil {
		return failed(err)
	}
	defer r.Driver.Close()
	return do(ctx, r)
}

func (a *app) migrateDatabase(f *migrateFlags) string { return jobs.MigrateDatabase(a.cfg, f.database) }

// migrateCommandLine is the command an operator retypes to address the same target, for the
// guidance printed after a failure.
func (a *app) migrateCommandLine(cmd *cobra.Command, f *migrateFlags) string {
	parts := []string{"tracevault"}
	if cmd.Flags().Changed("config") {
		parts = append(parts, "--config", a.configPath)
	}
	parts = append(parts, "migrate", "--target", f.target)
	switch {
	case f.target == config.SourceClickHouse:
		parts = append(parts, "--database", a.migrateDatabase(f))
	case f.database != "":
		parts = append(parts, "--database", f.database)
	}
	if f.dir != "" {
		parts = append(parts, "--dir", f.dir)
	}
	return strings.Join(parts, " ")
}

func (a *app) printSteps(cmd *cobra.Command, verb string, steps []jobs.MigrateStep) error {
	if steps == nil {
		steps = []jobs.MigrateStep{}
	}
	if a.json {
		return a.printJSON(cmd, map[string]any{"steps": steps})
	}
	w := cmd.OutOrStdout()
	if len(steps) == 0 && verb != "applied" {
		fmt.Fprintln(w, "nothing to do")
	}
	for _, s := range steps {
		fmt.Fprintf(w, "%s %d %s (%s), now at %d\n", verb, s.Version, s.Direction, s.File, s.Target)
	}
	return nil
}

// snapshotBeforeMigrate takes a snapshot of the migrated database only, so a bad migration can
// be undone with restore; without a complete snapshot nothing is migrated. A ClickHouse
// database that holds no row (the first migration of a new install, which holds at most the
// empty schema_migrations) has nothing a snapshot could bring back: that is said, no empty
// snapshot is recorded, and the migration goes ahead.
func (a *app) snapshotBeforeMigrate(cmd *cobra.Command, f *migrateFlags, steps []jobs.MigrateStep) error {
	s, err := jobs.SnapshotBeforeMigrate(cmd.Context(), a.cfg, f.target, jobs.MigrateOptions{Database: f.database, LockWait: f.lockWait}, a.log)
	if err != nil {
		return failed(err)
	}
	if s.Skipped != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "no snapshot taken before migrating: %v, so a snapshot would hold nothing a restore could bring back, and none is recorded; to undo, %s\n",
			s.Skipped, undoMigration(f.target, f.database, steps))
		return nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "snapshot %s taken before migrating (the migrated database's data only)\n%s",
		s.Snapshot.ID, undoText(f.target, f.database, steps, "tracevault restore "+s.Snapshot.ID+" "+s.Undo))
	return nil
}

// undoText is the full undo of a migration run with --snapshot-before: restoring the snapshot
// brings back rows only, so it neither drops what the migration created nor resets
// schema_migrations; the migration is reverted first, then the data restored.
func undoText(target, database string, steps []jobs.MigrateStep, restore string) string {
	return "to undo this migration:\n" +
		"  1. revert the schema: " + undoMigration(target, database, steps) + "\n" +
		"  2. then bring back the data: " + restore + "\n" +
		"     (the restore alone only reloads rows: it drops nothing the migration created and leaves schema_migrations as it is)\n"
}

// undoMigration is the migrate command that reverts steps: down over what went up, back to the
// version the first step left when they went down.
func undoMigration(target, database string, steps []jobs.MigrateStep) string {
	cmd := "tracevault migrate --target " + target
	if database != "" {
		cmd += " --database " + database
	}
	if len(steps) == 0 {
		return cmd + " status   (nothing was planned to run)"
	}
	if steps[0].Direction == "up" {
		ups := 0
		for _, s := range steps {
			if s.Direction == "up" {
				ups++
			}
		}
		if ups == len(steps) {
			return fmt.Sprintf("%s down %d", cmd, ups)
		}
	}
	if steps[0].Direction == "down" {
		// The first down step reverts the version that was applied when the run started.
		return fmt.Sprintf("%s goto %d", cmd, steps[0].Version)
	}
	return cmd + " status   (then goto the version it showed before this run)"
}
