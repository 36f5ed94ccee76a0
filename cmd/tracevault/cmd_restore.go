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
	dryRun      bool
	force       bool
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

--only zookeeper --root PATH: recreates the persistent nodes recorded under PATH into an empty
ensemble; refuses existing nodes without --force. To rebuild one replica whose volume or table
was lost, use restore-replica instead: it re-registers the replica with its peers.`,
		Example: examples(
			"tracevault restore latest --only clickhouse --dry-run",
			"tracevault restore 20261124T0315 --only clickhouse --tables 'default.traces' --partitions 202605 --force",
			"tracevault restore latest --only clickhouse --database-map default:restored",
			"tracevault restore latest --only zookeeper --root /clickhouse/tables --dry-run"),
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
			switch f.only {
			case "clickhouse":
				return a.restoreClickHouse(cmd, r, m, f)
			case "zookeeper":
				return a.restoreZooKeeper(cmd, r, m, f)
			case "postgres":
				return failed(fmt.Errorf("postgres restore is not implemented in this build"))
			default:
				return usage(fmt.Errorf("--only is required: clickhouse, zookeeper or postgres (one source per restore)"))
			}
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.only, "only", "", "source to restore: clickhouse, zookeeper or postgres")
	fl.StringSliceVar(&f.tables, "tables", nil, "ClickHouse tables as db.table globs (default all)")
	fl.StringSliceVar(&f.partitions, "partitions", nil, "ClickHouse partition ids, e.g. 202605 (default all)")
	fl.StringSliceVar(&f.databaseMap, "database-map", nil, "restore database SRC as DST (SRC:DST, repeatable)")
	fl.StringVar(&f.root, "root", "", "ZooKeeper subtree to restore (zookeeper only)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan, change nothing")
	fl.BoolVar(&f.force, "force", false, "replace partitions or nodes that already exist")
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
	rs, err := clickhouse.NewRestorer(cmd.Context(), clickhouse.RestoreOptions{
		Native: ch.Addresses, HTTP: ch.HTTPAddresses, Conn: jobs.ClickHouseConn(ch), Cluster: ch.Cluster,
		Tables: f.tables, Partitions: f.partitions, DatabaseMap: dbMap, Force: f.force, Log: a.log,
	})
	if err != nil {
		return failed(err)
	}
	defer rs.Close()
	plan, err := rs.Plan(cmd.Context(), m)
	if err != nil {
		return failed(err)
	}
	if f.dryRun {
		if a.json {
			return a.printJSON(cmd, plan)
		}
		clickhouse.WritePlan(cmd.OutOrStdout(), plan)
		return nil
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
	rep, err := zookeeper.Restore(cmd.Context(), conn, zookeeper.NewReader(rc), zookeeper.RestoreOptions{Root: f.root, Force: f.force, DryRun: f.dryRun})
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
