package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
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
	force       bool
	cluster     bool
}

func (a *app) restoreCommand() *cobra.Command {
	var f restoreFlags
	c := &cobra.Command{
		Use:   "restore ID",
		Short: "Restore from a snapshot: tables, partitions, databases or the whole cluster",
		Long: `Restore one source of a snapshot (ID may be a unique prefix or 'latest').

--only clickhouse: creates missing databases and tables from the recorded schema (ON CLUSTER,
with the recorded ZooKeeper path; with --database-map the path moves with the database, so a
copy never joins the original's replication group), loads each partition into a staging table
and swaps it in with REPLACE PARTITION (atomic; a rerun never duplicates rows; materialized
views do not fire), creates views last, then checks row counts on every replica. Partitions that
already hold rows are refused without --force.

--only clickhouse --cluster: disaster recovery of the whole cluster (every replica empty,
ZooKeeper empty or lost). Every replica must answer. Registrations the lost tables left in
ZooKeeper are removed first; the tables are created on all replicas with the recorded paths
and UUIDs, the data is loaded once and replication copies it; counts are checked everywhere.
On servers with SYSTEM RESTORE REPLICA (21.7+), a table whose parts survived on every replica
while ZooKeeper lost its metadata is restored from those parts instead of reloaded.

--only postgres: into a new database (created; --pg-database NAME, default the snapshot's) or
an empty one: pg_dump's pre-data, then every table by parallel COPY, then post-data (indexes,
constraints, triggers), then sequence values, then row counts are checked. A non-empty target is
refused without --force, which loads a staging copy and swaps it in only once it is verified.
With --tables schema.table globs, rows are reloaded into the existing schema instead, one
transaction per group of tables tied by foreign keys, every foreign key checked before commit.

--only zookeeper --root PATH: recreates the persistent nodes recorded under PATH into an empty
ensemble; refuses existing nodes without --force. To rebuild one replica whose volume or table
was lost, use restore-replica instead: it re-registers the replica with its peers.`,
		Example: examples(
			"tracevault restore latest --only clickhouse --dry-run",
			"tracevault restore 20261124T0315 --only clickhouse --tables 'default.traces' --partitions 202605 --force",
			"tracevault restore latest --only clickhouse --database-map default:restored",
			"tracevault restore latest --only clickhouse --cluster",
			"tracevault restore latest --only zookeeper --root /clickhouse/tables --dry-run",
			"tracevault restore latest --only postgres --pg-database langfuse_restored",
			"tracevault restore latest --only postgres --tables public.api_keys,public.projects --force"),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			m, err := r.Snapshot(cmd.Context(), args[0])
			if err != nil {
				return failed(err)
			}
			if m.Status != store.StatusComplete && !f.force {
				return failed(fmt.Errorf("snapshot %s is %s (%s); restoring from it needs --force", m.ID, m.Status, m.Error))
			}
			if f.cluster && f.only != "clickhouse" {
				return usage(fmt.Errorf("--cluster goes with --only clickhouse"))
			}
			switch f.only {
			case "clickhouse":
				return a.restoreClickHouse(cmd, r, m, f)
			case "zookeeper":
				return a.restoreZooKeeper(cmd, r, m, f)
			case "postgres":
				return a.restorePostgres(cmd, r, m, f)
			default:
				return usage(fmt.Errorf("--only is required: clickhouse, zookeeper or postgres (one source per restore)"))
			}
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.only, "only", "", "source to restore: clickhouse, zookeeper or postgres")
	fl.StringSliceVar(&f.tables, "tables", nil, "ClickHouse db.table or PostgreSQL schema.table globs (default all)")
	fl.StringSliceVar(&f.partitions, "partitions", nil, "ClickHouse partition ids, e.g. 202605 (default all)")
	fl.StringSliceVar(&f.databaseMap, "database-map", nil, "restore database SRC as DST (SRC:DST, repeatable)")
	fl.StringVar(&f.root, "root", "", "ZooKeeper subtree to restore (zookeeper only)")
	fl.StringVar(&f.pgDatabase, "pg-database", "", "PostgreSQL database to restore into, created if missing (default the snapshot's)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan, change nothing")
	fl.BoolVar(&f.force, "force", false, "replace partitions, nodes, or a PostgreSQL database or tables, that already exist")
	fl.BoolVar(&f.cluster, "cluster", false, "whole-cluster disaster recovery: every replica, stale ZooKeeper registrations removed (clickhouse only)")
	return c
}

func (a *app) restoreClickHouse(cmd *cobra.Command, repo *store.Repository, m *store.Manifest, f restoreFlags) error {
	dbMap := map[string]string{}
	for _, pair := range f.databaseMap {
		src, dst, ok := strings.Cut(pair, ":")
		if !ok || src == "" || dst == "" {
			return usage(fmt.Errorf("--database-map %q: write SRC:DST, e.g. default:restored", pair))
		}
		dbMap[src] = dst
	}
	ch := a.cfg.ClickHouse
	opts := clickhouse.RestoreOptions{
		Native: ch.Addresses, HTTP: ch.HTTPAddresses, Conn: jobs.ClickHouseConn(ch), Cluster: ch.Cluster,
		Tables: f.tables, Partitions: f.partitions, DatabaseMap: dbMap, Force: f.force, DataPath: ch.DataPath, Log: a.log,
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
	rs, err := clickhouse.NewRestorer(cmd.Context(), opts)
	if err != nil {
		return failed(err)
	}
	defer rs.Close()
	plan, err := rs.Plan(cmd.Context(), m)
	if err != nil {
		return failed(err)
	}
	if f.dryRun {
		return printPlan(a, cmd, plan, clickhouse.WritePlan)
	}
	out := cmd.OutOrStdout()
	err = rs.Execute(cmd.Context(), repo, plan, func(done, total int, s clickhouse.Step) {
		if s.Action == "load-partition" {
			a.log.Info("restored partition", "step", fmt.Sprintf("%d/%d", done, total), "table", s.Target, "partition", s.Partition, "rows", s.Rows)
		}
	})
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
	rep, err := zookeeper.RestoreRecord(cmd.Context(), conn, rc, zookeeper.RestoreOptions{Root: f.root, Force: f.force, DryRun: f.dryRun})
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
