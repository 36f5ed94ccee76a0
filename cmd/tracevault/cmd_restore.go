package main

import (
	"errors"
	"fmt"
	"path"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

type restoreFlags struct {
	only             string
	tables           []string
	partitions       []string
	databaseMap      []string
	root             string
	pgDatabase       string
	dryRun           bool
	replace          bool // replace data that already exists on the target
	partial          bool // restore from a partial snapshot: only what it holds
	allowUnreachable bool // clickhouse: accept replicas that went unverified
	cluster          bool
	to, toLSN        string // point-in-time restore (postgres)
	chain            string // the point-in-time chain to follow
	blobURL          string
	replay           bool // then replay Langfuse's raw events written after the cut (clickhouse)
}

func (a *app) restoreCommand() *cobra.Command {
	var f restoreFlags
	c := &cobra.Command{
		Use:   "restore [ID]",
		Short: "Restore from a snapshot: tables, partitions, databases or the whole cluster",
		Long: `Restore one source of a snapshot. ID may be a unique prefix; 'latest' is the newest full set
(every source the configuration covers, none narrowed by --tables or a migration's snapshot),
'latest:SOURCE' the newest set holding that source whole, 'latest:any' the newest of any scope.

--only clickhouse: creates missing databases and tables from the recorded schema (ON CLUSTER,
with the recorded ZooKeeper path; with --database-map the path moves with the database, so a
copy never joins the original's replication group), loads each partition into a staging table
and swaps it in with REPLACE PARTITION (atomic; a rerun never duplicates rows; materialized
views do not fire), creates views last, then checks row counts on every replica. Partitions that
already hold rows are refused without --replace, naming each one it would overwrite; with it,
--dry-run marks every step that writes over live data [overwrites live data]. --database-map
restores only the mapped databases, next to the live ones; the others are left as they are.
Filters (--tables, --partitions) that match nothing in the snapshot are an error, never an
empty restore.

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

--only clickhouse --replay-events: once the restore is verified, lists Langfuse's events
container for the events written after the snapshot's cut and has Langfuse re-ingest them, as
'tracevault replay-events --snapshot ID --fresh' does; the result states the recovery point.

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
			if f.chain != "" {
				return usage(errors.New("--chain goes with --to or --to-lsn"))
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
			if f.replay && (f.only != "clickhouse" || len(f.databaseMap) > 0) {
				return usage(fmt.Errorf("--replay-events goes with --only clickhouse, into Langfuse's own databases (no --database-map)"))
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
			req := f.request(args[0])
			rs, err := jobs.NewRestore(cmd.Context(), a.cfg, r, req)
			if err != nil {
				return failed(err)
			}
			if !f.dryRun {
				a.startProgress(cmd, "restore "+f.only)
				rs.PlanProgress(cmd.Context())
			}
			plan, err := rs.Plan(cmd.Context(), a.log)
			if err != nil {
				return jobError(err)
			}
			defer plan.Close()
			if f.dryRun && plan.Previewed() {
				return printPlan(a, cmd, plan)
			}
			res, err := plan.Run(cmd.Context())
			switch f.only {
			case "clickhouse":
				if f.replay {
					return a.restoredClickHouseThenReplay(cmd, res, err)
				}
				return a.restoredClickHouse(cmd, res, err)
			case "zookeeper":
				return a.restoredZooKeeper(cmd, res, err, f)
			case "postgres":
				return a.restoredPostgres(cmd, res, err)
			default:
				return a.restoredBlobs(cmd, res, err)
			}
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.only, "only", "", "source to restore: clickhouse, zookeeper, postgres or blobs")
	fl.StringVar(&f.blobURL, "blob-url", "", "container to restore blobs into: azblob://container[/prefix] or file:///dir (default the snapshot's)")
	fl.StringSliceVar(&f.tables, "tables", nil, "ClickHouse db.table or PostgreSQL schema.table globs (default all)")
	fl.StringSliceVar(&f.partitions, "partitions", nil, "ClickHouse partition ids, e.g. 202605 (default all)")
	fl.StringSliceVar(&f.databaseMap, "database-map", nil, "restore only database SRC, as DST (SRC:DST, repeatable; unmapped databases are left out)")
	fl.StringVar(&f.root, "root", "", "ZooKeeper subtree to restore (zookeeper only)")
	fl.StringVar(&f.pgDatabase, "pg-database", "", "PostgreSQL database to restore into, created if missing (default the snapshot's)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan, change nothing")
	fl.BoolVar(&f.replace, "replace", false, "replace partitions, nodes, a PostgreSQL database or tables, or newer blobs, that already exist")
	fl.BoolVar(&f.partial, "allow-partial", false, "restore from a partial snapshot (what it holds)")
	fl.BoolVar(&f.allowUnreachable, "allow-unreachable", false, "clickhouse: exit 0 though configured replicas were unreachable and their rows unverified")
	// --force meant both; it stays only to say which of the two to use.
	fl.Bool("force", false, "")
	_ = fl.MarkHidden("force")
	fl.StringVar(&f.to, "to", "", "point-in-time restore of postgres to this RFC 3339 time (needs [postgres] pitr)")
	fl.StringVar(&f.toLSN, "to-lsn", "", "point-in-time restore of postgres up to this commit LSN, e.g. 16/B374D848")
	fl.StringVar(&f.chain, "chain", "", "with --to/--to-lsn: the point-in-time chain to follow (default the one of [postgres] dsn's database and pitr_slot; 'tracevault verify --all' lists them)")
	fl.BoolVar(&f.replay, "replay-events", false, "after a clickhouse restore, have Langfuse re-ingest its raw events written after the snapshot's cut (see replay-events)")
	fl.BoolVar(&f.cluster, "cluster", false, "whole-cluster disaster recovery: every replica, stale ZooKeeper registrations removed (clickhouse only)")
	return c
}

// request is the restore the flags ask for, of snapshot id.
func (f restoreFlags) request(id string) jobs.RestoreRequest {
	return jobs.RestoreRequest{Snapshot: id, Only: f.only, Tables: f.tables, Partitions: f.partitions, DatabaseMap: f.databaseMap,
		Cluster: f.cluster, Root: f.root, PGDatabase: f.pgDatabase, BlobURL: f.blobURL, Replace: f.replace, AllowPartial: f.partial,
		AllowUnreachable: f.allowUnreachable, DryRun: f.dryRun}
}

func (a *app) restoredClickHouse(cmd *cobra.Command, res *jobs.RestoreResult, err error) error {
	a.progressDone(cmd.Context(), err)
	if res == nil || res.Reach == nil {
		// Failed before the row counts were checked.
		if err != nil {
			return failed(err)
		}
		return nil
	}
	// A restore that ran but could not verify every replica still says what it did, then fails
	// (unless --allow-unreachable).
	if a.json {
		if perr := a.printJSON(cmd, map[string]any{"snapshot": res.Snapshot, "steps": res.Steps,
			"verified": len(res.Reach.Unreachable) == 0, "verified_replicas": res.Reach.Verified, "unreachable_replicas": res.Reach.Unreachable}); perr != nil {
			return perr
		}
	} else {
		fmt.Fprintf(cmd.OutOrStdout(), "restored snapshot %s: %d steps; %s\n", res.Snapshot, res.Steps, res.Reach.Summary())
	}
	if err != nil {
		return failed(err)
	}
	return nil
}

func (a *app) restoredZooKeeper(cmd *cobra.Command, res *jobs.RestoreResult, err error, f restoreFlags) error {
	a.progressDone(cmd.Context(), err)
	if err != nil {
		return failed(err)
	}
	rep := res.ZooKeeper
	if a.json {
		return a.printJSON(cmd, rep)
	}
	fmt.Fprintln(cmd.OutOrStdout(), zkRestoreLine(rep, f.root, f.dryRun))
	return nil
}

// zkRestoreLine says what a ZooKeeper restore did, or a dry run would do: nodes created, updated
// and kept counted apart (a dry run checks each node), and the refusal a dry run stands in for.
func zkRestoreLine(rep *zookeeper.RestoreReport, root string, dryRun bool) string {
	created, updated, kept := "created", "updated", "kept"
	if dryRun {
		created, updated, kept = "would create", "would update", "would keep"
	}
	line := fmt.Sprintf("%s %d nodes under %s (%s %d existing, %s %d existing, skipped %d ephemeral)",
		created, rep.Created, root, updated, rep.Updated, kept, rep.Existing, rep.Ephemeral)
	if rep.System > 0 {
		line += fmt.Sprintf("; skipped %d of the server's own (/zookeeper, /keeper)", rep.System)
	}
	if rep.WouldRefuse != "" {
		line += "\nbut without --replace the restore would refuse: " + rep.WouldRefuse
	}
	return line
}
