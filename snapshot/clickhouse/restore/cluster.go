package restore

// A whole-cluster restore (restore --cluster) rebuilds every replica at once after a disaster:
// all replicas empty, ZooKeeper empty or lost, or both. The tables are created ON CLUSTER with
// the recorded paths and UUIDs and the data is loaded once, on one replica, for replication to
// copy; what this file adds to the ordinary restore plan is what a disaster leaves behind:
// registrations of the lost tables still in ZooKeeper, and, on modern servers, tables whose
// parts survived while ZooKeeper lost their metadata, which SYSTEM RESTORE REPLICA rebuilds from
// the parts instead of reloading them.

import (
	"context"
	"fmt"
	"strings"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// planCluster checks that every replica answers and adjusts the plan for the cluster as it is.
func (r *Restorer) planCluster(ctx context.Context, plan *Plan) (*Plan, error) {
	var missing []string
	var servers []*clickhouse.Server
	for _, addr := range r.opts.Native {
		if s, ok := r.servers[addr]; ok {
			servers = append(servers, s)
		} else {
			missing = append(missing, addr)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("restore --cluster needs every replica, and %s did not answer; start it (empty if its volume is lost), or restore without --cluster and rebuild it afterwards with restore-replica", strings.Join(missing, ", "))
	}
	if r.opts.ZooKeeper == nil {
		return nil, fmt.Errorf("restore --cluster needs [zookeeper] servers: the tables register there")
	}
	view := clickhouse.Observe(ctx, servers, r.opts.Native, r.opts.ZooKeeper)
	if view.ZooKeeperError != "" {
		return nil, fmt.Errorf("restore --cluster: read zookeeper: %s", view.ZooKeeperError)
	}
	registered := map[string]bool{}
	for _, s := range plan.Steps {
		if s.Action != ActionCreateTable || !s.table.Replicated() || s.table.ZooKeeperPath == "" {
			continue
		}
		for _, rep := range view.Replicas {
			p := clickhouse.RegistrationPath(&s.table.Table, rep.Macros)
			ok, _, err := r.opts.ZooKeeper.Exists(p)
			if err != nil {
				return nil, fmt.Errorf("look up the registration %s in zookeeper: %w", p, err)
			}
			registered[p] = ok
		}
	}
	return clusterPlan(plan, view, r.first.Caps, r.opts.Cluster, registered)
}

// clusterPlan is the pure part of planCluster. For each replicated table to create:
//   - where the table exists on every replica, readonly, and none of them is registered under
//     its path, ZooKeeper lost its metadata while the parts survived: SYSTEM RESTORE REPLICA
//     (modern servers) replaces creating and loading it;
//   - where no replica has the table but ZooKeeper still holds its group, the whole group is
//     removed first: replicas created into a group whose every replica is lost all come up
//     marked lost ("All replicas are lost" on 18.16) and never activate;
//   - where some replicas have it and another is still registered without it, that stale
//     registration is removed first, or the CREATE would fail with "replica already exists".
func clusterPlan(plan *Plan, view *clickhouse.View, caps clickhouse.Capabilities, cluster string, registered map[string]bool) (*Plan, error) {
	out := &Plan{Snapshot: plan.Snapshot}
	restored := map[string]bool{}
	for _, s := range plan.Steps {
		if s.Action == ActionLoadPartition && restored[s.Target] {
			continue
		}
		if s.Action != ActionCreateTable || !s.table.Replicated() {
			out.Steps = append(out.Steps, s)
			continue
		}
		db, table, _ := strings.Cut(s.Target, ".")
		present, readonly, anyRegistered := 0, 0, false
		var stale []Step
		for _, rep := range view.Replicas {
			reg := clickhouse.RegistrationPath(&s.table.Table, rep.Macros)
			anyRegistered = anyRegistered || registered[reg]
			var have *clickhouse.ReplicaTable
			for i, t := range rep.Tables {
				if t.Database == db && t.Table == table {
					have = &rep.Tables[i]
				}
			}
			switch {
			case have != nil:
				present++
				if have.IsReadonly {
					readonly++
				}
			case registered[reg]:
				stale = append(stale, Step{Action: ActionDropRegistration, Target: s.Target, Replica: rep.Addr, ZooKeeperPath: reg})
			}
		}
		if present == len(view.Replicas) && readonly == present && !anyRegistered {
			if !caps.RestoreReplica {
				return nil, fmt.Errorf("%s exists on every replica with its parts, but ZooKeeper lost its metadata, and ClickHouse %s has no SYSTEM RESTORE REPLICA; "+
					"on each replica DETACH the table, move its data to detached/, re-create it, and ATTACH PARTITION from detached; or drop it everywhere and rerun this restore", s.Target, caps.Version)
			}
			sql := "SYSTEM RESTORE REPLICA " + clickhouse.QuoteIdent(db) + "." + clickhouse.QuoteIdent(table)
			if cluster != "" {
				sql += " ON CLUSTER " + clickhouse.QuoteIdent(cluster)
			}
			out.Steps = append(out.Steps, Step{Action: ActionRestoreMetadata, Target: s.Target, SQL: sql, table: s.table})
			restored[s.Target] = true
			continue
		}
		if present == 0 && anyRegistered {
			stale = []Step{{Action: ActionDropGroup, Target: s.Target, ZooKeeperPath: s.table.ZooKeeperPath}}
		}
		out.Steps = append(out.Steps, stale...)
		out.Steps = append(out.Steps, s)
	}
	return out, nil
}

// restoreMetadata rebuilds a table's ZooKeeper metadata from the parts every replica kept, waits
// for the replicas to agree, and warns where a partition holds fewer rows than the snapshot.
// That is not an error: the parts may be newer than the snapshot, and a Replacing merge since
// then may have removed duplicates.
func (r *Restorer) restoreMetadata(ctx context.Context, s Step) error {
	if err := r.first.Conn.Exec(ctx, s.SQL); err != nil {
		return err
	}
	db, table, _ := strings.Cut(s.Target, ".")
	for addr, srv := range r.servers {
		if err := clickhouse.WaitFetched(ctx, srv, db, table, clickhouse.FetchStall, nil); err != nil {
			return err
		}
		rows, err := clickhouse.PartitionRows(ctx, srv, db, table)
		if err != nil {
			return err
		}
		for _, p := range s.table.Partitions {
			if rows[p.ID] < p.Rows {
				r.opts.Log.Warn("fewer rows than the snapshot after SYSTEM RESTORE REPLICA; to load the snapshot's, restore that partition with --replace",
					"table", s.Target, "partition", p.ID, "rows", rows[p.ID], "snapshot_rows", p.Rows, "replica", addr)
			}
		}
	}
	return nil
}
