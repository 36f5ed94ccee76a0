package main

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

type restoreFlags struct {
	only        string
	tables      []string
	partitions  []string
	databaseMap []string
	root        string
	pgDatabase  string
	dryRun      bool
	replace     bool // replace data that already exists on the target
	partial     bool // restore from a partial snapshot: only what it holds
	cluster     bool
	to, toLSN   string // point-in-time restore (postgres)
	blobURL     string
}

func (a *app) restoreCommand() *cobra.Command {
	var f restoreFlags
	c := &cobra.Command{
		Use:   "restore [ID]",
		Short: "Restore from a snapshot: tables, partitions, databases or the whole cluster",
		Long: `Restore one source of a snapshot (ID may be a unique prefix or 'latest').

--only clickhouse: creates missing databases and tables from the recorded schema (ON CLUSTER,
with the recorded ZooKeeper path; with --database-map the path moves with the database, so a
copy never joins the original's replication group), loads each partition into a staging table
and swaps it in with REPLACE PARTITION (atomic; a rerun never duplicates rows; materialized
views do not fire), creates views last, then checks row counts on every replica. Partitions that
already hold rows are refused without --replace. Filters (--tables, --partitions) that match
nothing in the snapshot are an error, never an empty restore.

--only clickhouse --cluster: disaster recovery of the whole cluster (every replica empty,
ZooKeeper empty or lost). Every replica must answer. Registrations the lost tables left in
ZooKeeper are removed first; the tables are created on all replicas with the recorded paths
and UUIDs, the data is loaded once and replication copies it; counts are checked everywhere.
On servers with SYSTEM RESTORE REPLICA (21.7+), a table whose parts survived on every replica
while ZooKeeper lost its metadata is restored from those parts instead of reloaded.

--only postgres: into a new database (created; --pg-database NAME, default the snapshot's) or
an empty one: pg_dump's pre-data, then every table by parallel COPY, then post-data (indexes,
constraints, triggers), then sequence values, then row counts are checked. A non-empty target is
refused without --replace, which loads a staging copy and swaps it in only once it is verified.
With --tables schema.table globs, rows are reloaded into the existing schema instead, one
transaction per group of tables tied by foreign keys, every foreign key checked before commit.

--only postgres --to TIME (or --to-lsn LSN), with [postgres] pitr = true streaming changes: no ID;
the base snapshot of the chain that reaches TIME is restored into a new database, then every
transaction that committed up to TIME (or whose commit LSN is at or before LSN) is replayed in
commit order; the last commit reached is reported with its LSN and time. A time no chain covers
exactly (before the first base, after the latest durable segment, or between a chain ended by a
schema change and the next base) is refused, naming what is covered.

--only zookeeper --root PATH: recreates the persistent nodes recorded under PATH into an empty
ensemble; refuses existing nodes without --replace. To rebuild one replica whose volume or table
was lost, use restore-replica instead: it re-registers the replica with its peers.

--only blobs: writes the snapshot's blobs into the container they came from, or --blob-url
(azblob://container[/prefix] or file:///dir, with [blobs]' credentials; created if missing).
Each blob is committed only once its bytes match the recorded MD5. A target blob with the same
content is skipped; one that differs and was modified after the snapshot's copy is kept and
reported (the restore fails) unless --replace. Blobs the snapshot does not hold are left alone.

A partial snapshot (a source failed during the backup) is refused without --allow-partial,
which restores what it holds; a source that failed in it cannot be restored from it.` + progressHelp,
		Example: examples(
			"tracevault restore latest --only clickhouse --dry-run",
			"tracevault restore 20261124T0315 --only clickhouse --tables 'default.traces' --partitions 202605 --replace",
			"tracevault restore latest --only clickhouse --database-map default:restored",
			"tracevault restore latest --only clickhouse --cluster",
			"tracevault restore latest --only zookeeper --root /clickhouse/tables --dry-run",
			"tracevault restore latest --only postgres --pg-database langfuse_restored",
			"tracevault restore latest --only postgres --tables public.api_keys,public.projects --replace",
			"tracevault restore --only postgres --to 2026-11-27T10:15:00Z --pg-database langfuse_1015",
			"tracevault restore 20261124T0315 --only zookeeper --root /clickhouse/tables --allow-partial",
			"tracevault restore latest --only blobs --blob-url azblob://langfuse-restored"),
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.to != "" || f.toLSN != "" {
				if len(args) > 0 {
					return usage(errors.New("--to and --to-lsn pick the base snapshot themselves: drop the snapshot ID"))
				}
				return a.restorePITR(cmd, f)
			}
			if len(args) == 0 {
				return usage(errors.New("name the snapshot to restore (an ID, a unique prefix or 'latest'), or give --to TIME / --to-lsn LSN with --only postgres"))
			}
			if cmd.Flags().Changed("force") {
				return usage(errors.New("--force was split in two: --replace replaces data that already exists on the target, --allow-partial restores from a partial snapshot; give the one you mean"))
			}
			if f.cluster && f.only != "clickhouse" {
				return usage(fmt.Errorf("--cluster goes with --only clickhouse"))
			}
			if f.blobURL != "" && f.only != "blobs" {
				return usage(fmt.Errorf("--blob-url goes with --only blobs"))
			}
			if len(f.partitions) > 0 && f.only != "clickhouse" {
				return usage(fmt.Errorf("--partitions goes with --only clickhouse"))
			}
			for _, g := range f.tables {
				if _, err := path.Match(g, ""); err != nil {
					return usage(fmt.Errorf("--tables %q: bad glob: %w", g, err))
				}
			}
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			m, err := snapshotToRestore(cmd, r, args[0])
			if err != nil {
				return failed(err)
			}
			if m.Status != store.StatusComplete && !f.partial {
				return failed(fmt.Errorf("snapshot %s is %s (%s); pass --allow-partial to restore what it holds, or restore from a complete snapshot ('tracevault list')", m.ID, m.Status, m.Error))
			}
			if !f.dryRun {
				a.startProgress(cmd, "restore "+f.only)
				planObjects(cmd.Context(), m, f.reads)
			}
			switch f.only {
			case "clickhouse":
				return a.restoreClickHouse(cmd, r, m, f)
			case "zookeeper":
				return a.restoreZooKeeper(cmd, r, m, f)
			case "postgres":
				return a.restorePostgres(cmd, r, m, f)
			case "blobs":
				return a.restoreBlobs(cmd, r, m, f)
			default:
				return usage(fmt.Errorf("--only is required: clickhouse, zookeeper, postgres or blobs (one source per restore)"))
			}
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.only, "only", "", "source to restore: clickhouse, zookeeper, postgres or blobs")
	fl.StringVar(&f.blobURL, "blob-url", "", "container to restore blobs into: azblob://container[/prefix] or file:///dir (default the snapshot's)")
	fl.StringSliceVar(&f.tables, "tables", nil, "ClickHouse db.table or PostgreSQL schema.table globs (default all)")
	fl.StringSliceVar(&f.partitions, "partitions", nil, "ClickHouse partition ids, e.g. 202605 (default all)")
	fl.StringSliceVar(&f.databaseMap, "database-map", nil, "restore database SRC as DST (SRC:DST, repeatable)")
	fl.StringVar(&f.root, "root", "", "ZooKeeper subtree to restore (zookeeper only)")
	fl.StringVar(&f.pgDatabase, "pg-database", "", "PostgreSQL database to restore into, created if missing (default the snapshot's)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan, change nothing")
	fl.BoolVar(&f.replace, "replace", false, "replace partitions, nodes, a PostgreSQL database or tables, or newer blobs, that already exist")
	fl.BoolVar(&f.partial, "allow-partial", false, "restore from a partial snapshot (what it holds)")
	// --force meant both; it stays only to say which of the two to use.
	fl.Bool("force", false, "")
	_ = fl.MarkHidden("force")
	fl.StringVar(&f.to, "to", "", "point-in-time restore of postgres to this RFC 3339 time (needs [postgres] pitr)")
	fl.StringVar(&f.toLSN, "to-lsn", "", "point-in-time restore of postgres up to this commit LSN, e.g. 16/B374D848")
	fl.BoolVar(&f.cluster, "cluster", false, "whole-cluster disaster recovery: every replica, stale ZooKeeper registrations removed (clickhouse only)")
	return c
}

func (a *app) restoreClickHouse(cmd *cobra.Command, repo *store.Repository, m *store.Manifest, f restoreFlags) error {
	if err := unmatchedFilters(m, f); err != nil {
		return failed(err)
	}
	dbMap := map[string]string{}
	for _, pair := range f.databaseMap {
		src, dst, ok := strings.Cut(pair, ":")
		if !ok || src == "" || dst == "" {
			return usage(fmt.Errorf("--database-map %q: write SRC:DST, e.g. default:restored", pair))
		}
		dbMap[src] = dst
	}
	ch := a.cfg.ClickHouse
	opts := restore.Options{
		Native: ch.Addresses, HTTP: ch.HTTPAddresses, Conn: jobs.ClickHouseConn(ch), Cluster: ch.Cluster,
		Tables: f.tables, Partitions: f.partitions, DatabaseMap: dbMap, Replace: f.replace, DataPath: ch.DataPath, Parallel: ch.Parallel, Log: a.log,
	}
	if f.cluster {
		zc := a.cfg.ZooKeeper
		if len(zc.Servers) == 0 {
			return usage(fmt.Errorf("--cluster needs [zookeeper] servers: the restored tables register there"))
		}
		conn, err := zookeeper.Connect(cmd.Context(), zc.Servers, zc.SessionTimeout.D(), a.log)
		if err != nil {
			return failed(err)
		}
		defer conn.Close()
		opts.WholeCluster, opts.ZooKeeper = true, conn
	}
	rs, err := restore.New(cmd.Context(), opts)
	if err != nil {
		return failed(err)
	}
	defer rs.Close()
	plan, err := rs.Plan(cmd.Context(), m)
	if err != nil {
		return failed(err)
	}
	if f.dryRun {
		return printPlan(a, cmd, plan, restore.WritePlan)
	}
	out := cmd.OutOrStdout()
	err = rs.Execute(cmd.Context(), repo, plan, func(done, total int, s restore.Step) {
		if s.Action == restore.ActionLoadPartition {
			a.log.Info("restored partition", "step", fmt.Sprintf("%d/%d", done, total), "table", s.Target, "partition", s.Partition, "rows", s.Rows)
		}
	})
	a.progressDone(cmd.Context(), err)
	if err != nil {
		return failed(err)
	}
	if a.json {
		return a.printJSON(cmd, map[string]any{"snapshot": m.ID, "steps": len(plan.Steps), "verified": true})
	}
	fmt.Fprintf(out, "restored snapshot %s: %d steps; row counts verified on every reachable replica\n", m.ID, len(plan.Steps))
	return nil
}

func (a *app) restoreZooKeeper(cmd *cobra.Command, repo *store.Repository, m *store.Manifest, f restoreFlags) error {
	if f.root == "" {
		return usage(fmt.Errorf("--root is required for a zookeeper restore, e.g. --root /clickhouse/tables"))
	}
	rc, err := a.zkRecordSource(cmd, repo, m.ID)
	if err != nil {
		return err
	}
	defer rc.Close()
	zc := a.cfg.ZooKeeper
	conn, err := zookeeper.Connect(cmd.Context(), zc.Servers, zc.SessionTimeout.D(), a.log)
	if err != nil {
		return failed(err)
	}
	defer conn.Close()
	rep, err := zookeeper.RestoreRecord(cmd.Context(), conn, rc, zookeeper.RestoreOptions{Root: f.root, Replace: f.replace, DryRun: f.dryRun})
	a.progressDone(cmd.Context(), err)
	if err != nil {
		return failed(err)
	}
	if a.json {
		return a.printJSON(cmd, rep)
	}
	verb := "created"
	if f.dryRun {
		verb = "would create"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %d nodes under %s (updated %d, kept %d existing, skipped %d ephemeral)\n", verb, rep.Created, f.root, rep.Updated, rep.Existing, rep.Ephemeral)
	return nil
}

// reads says whether a restore with these flags reads an object: its source, and for
// ClickHouse the tables and partitions selected. It sizes the progress, nothing else.
func (f restoreFlags) reads(o store.ManifestObject) bool {
	if o.Source != f.only {
		return false
	}
	if f.only != "clickhouse" {
		return true
	}
	if len(f.partitions) > 0 && !slices.Contains(f.partitions, o.Partition) {
		return false
	}
	for _, g := range f.tables {
		if ok, _ := path.Match(g, o.Database+"."+o.Table); ok {
			return true
		}
	}
	return len(f.tables) == 0
}

// snapshotToRestore finds the snapshot a restore names. When "latest" finds no complete
// snapshot, the error names the newest partial one and how to restore what it holds, rather
// than a bare "not found".
func snapshotToRestore(cmd *cobra.Command, r *store.Repository, id string) (*store.Manifest, error) {
	m, err := r.Snapshot(cmd.Context(), id)
	if id != "latest" || !errors.Is(err, store.ErrNotFound) {
		return m, err
	}
	all, lerr := r.Snapshots(cmd.Context())
	switch {
	case lerr != nil:
		return nil, err
	case len(all) == 0:
		return nil, fmt.Errorf("no snapshot to restore: the repository holds none; take one with 'tracevault backup'")
	}
	newest := all[len(all)-1]
	return nil, fmt.Errorf("no complete snapshot: the newest, %s, is %s (%s); restore what it holds with 'tracevault restore %s --allow-partial ...'",
		newest.ID, newest.Status, newest.Error, newest.ID)
}

// unmatchedFilters refuses a ClickHouse restore whose --tables or --partitions select nothing: a
// typo must not end in "restored 0 steps" and exit 0. Each glob and each partition must match.
func unmatchedFilters(m *store.Manifest, f restoreFlags) error {
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		return err
	}
	if len(sec.Tables) == 0 {
		return fmt.Errorf("nothing to restore: snapshot %s holds no ClickHouse table", m.ID)
	}
	matched := map[string]bool{} // glob -> matched a table
	partitions := map[string]bool{}
	for _, t := range sec.Tables {
		selected := len(f.tables) == 0
		for _, g := range f.tables {
			if ok, _ := path.Match(g, t.Database+"."+t.Name); ok {
				matched[g], selected = true, true
			}
		}
		for _, p := range t.Partitions {
			partitions[p.ID] = partitions[p.ID] || selected
		}
	}
	var noTable, noPartition []string
	for _, g := range f.tables {
		if !matched[g] {
			noTable = append(noTable, g)
		}
	}
	if len(noTable) > 0 {
		return fmt.Errorf("--tables %s matches no table of snapshot %s (write db.table globs); 'tracevault show %s' lists its tables", strings.Join(noTable, ","), m.ID, m.ID)
	}
	for _, p := range f.partitions {
		if !partitions[p] {
			noPartition = append(noPartition, p)
		}
	}
	if len(noPartition) > 0 {
		scope := "any of its tables"
		if len(f.tables) > 0 {
			scope = "--tables " + strings.Join(f.tables, ",")
		}
		return fmt.Errorf("--partitions %s: snapshot %s holds no such partition of %s; 'tracevault show %s' lists them", strings.Join(noPartition, ","), m.ID, scope, m.ID)
	}
	return nil
}
