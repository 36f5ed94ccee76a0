// Planning a replica rebuild (restore-replica): what the target lacks against its peers and
// the snapshot, as ReplicaSteps. Executing them is in replica_execute.go.

package replica

import (
	"context"
	"fmt"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
)

// replicaState is everything a plan is made from, gathered once, so that planning itself reads
// no server and is tested on fixtures of modern servers' system tables.
type replicaState struct {
	target  clickhouse.Replica
	caps    clickhouse.Capabilities // the target's
	peer    string                  // empty when the definitions come from the snapshot
	want    []clickhouse.Table      // the peers' (or the snapshot's) objects, in restore order
	peerDBs []clickhouse.DatabaseRecord
	have    []clickhouse.Table // the target's objects now
	haveDBs []clickhouse.DatabaseRecord
	// registered holds the <path>/replicas/<name> nodes that exist in ZooKeeper for the
	// target's name under each wanted table's path; only known when zkKnown.
	registered map[string]bool
	zkKnown    bool
	readonly   map[string]bool // the target's readonly replicated tables, by db.table
}

// Plan builds the steps that bring the replica back into its groups.
func (b *Rebuilder) Plan(ctx context.Context, which string) (*Plan, error) {
	r, err := b.resolve(which)
	if err != nil {
		return nil, err
	}
	target := b.servers[r.Addr]
	st := &replicaState{target: *r, caps: target.Caps, registered: map[string]bool{}, zkKnown: b.zk != nil, readonly: map[string]bool{}}
	for _, t := range r.Tables {
		st.readonly[t.FullName()] = t.IsReadonly
	}
	if p := b.peer(r.Addr); p != nil {
		st.peer = p.Addr
		if st.want, err = clickhouse.Discover(ctx, p, b.opts.Filter); err != nil {
			return nil, err
		}
		if st.peerDBs, err = clickhouse.Databases(ctx, p); err != nil {
			return nil, err
		}
	} else if b.opts.Snapshot != nil {
		for _, t := range b.opts.Snapshot.Tables {
			if b.opts.Filter.Matches(t.Database, t.Name) {
				st.want = append(st.want, t.Table)
			}
		}
		st.want = clickhouse.RestoreOrder(st.want)
	} else {
		return nil, fmt.Errorf("no healthy peer of %s to copy definitions from; pass --from-snapshot ID to rebuild from a snapshot's record", r.Name())
	}
	if st.have, err = clickhouse.Discover(ctx, target, b.opts.Filter); err != nil {
		return nil, err
	}
	if st.haveDBs, err = clickhouse.Databases(ctx, target); err != nil {
		return nil, err
	}
	for i := range st.want {
		t := &st.want[i]
		if !t.Replicated() || t.ZooKeeperPath == "" || b.zk == nil {
			continue
		}
		reg := clickhouse.RegistrationPath(t, r.Macros)
		ok, _, err := b.zk.Exists(reg)
		if err != nil {
			return nil, fmt.Errorf("look up the registration %s in zookeeper: %w", reg, err)
		}
		st.registered[reg] = ok
	}
	return b.planFrom(st)
}

func (b *Rebuilder) planFrom(st *replicaState) (*Plan, error) {
	r := &st.target
	plan := &Plan{Replica: r.Addr, Name: r.Name(), Peer: st.peer, Snapshot: b.opts.SnapshotID}
	own := map[string]*clickhouse.Table{}
	for i := range st.have {
		own[st.have[i].FullName()] = &st.have[i]
	}
	planned := map[string]bool{}
	for _, d := range st.haveDBs {
		planned[d.Name] = true
	}
	uuid := func(t *clickhouse.Table) string {
		if st.caps.TableUUIDs {
			return t.UUID
		}
		return ""
	}
	// Every table is created before any is waited for, so they all fetch at once.
	var views, syncs, verifies []Step
	for i := range st.want {
		t := &st.want[i]
		if isScratchTable(t.Name) {
			continue
		}
		if !planned[t.Database] {
			planned[t.Database] = true
			plan.Steps = append(plan.Steps, Step{Action: restore.ActionCreateDatabase, Target: t.Database, SQL: createDatabaseSQL(t.Database, st.peerDBs, st.caps)})
		}
		cur := own[t.FullName()]
		switch {
		case t.IsView():
			if cur == nil {
				sql, err := replicaCreate(t, uuid(t))
				if err != nil {
					return nil, err
				}
				views = append(views, Step{Action: restore.ActionCreateView, Target: t.FullName(), SQL: sql})
			}
		case t.Replicated():
			steps, err := b.planReplicated(st, t, cur, uuid(t))
			if err != nil {
				return nil, err
			}
			if len(steps) > 0 {
				plan.Steps = append(plan.Steps, steps...)
				syncs = append(syncs, Step{Action: restore.ActionSync, Target: t.FullName(), table: t, Detail: "fetch the parts it lacks from the peers"})
				verifies = append(verifies, Step{Action: restore.ActionVerify, Target: t.FullName(), table: t, Detail: "rows per partition equal to the peers'"})
			}
		case cur == nil:
			sql, err := replicaCreate(t, uuid(t))
			if err != nil {
				return nil, err
			}
			plan.Steps = append(plan.Steps, Step{Action: restore.ActionCreateTable, Target: t.FullName(), SQL: sql, table: t})
			loads := b.planLocalLoad(r.Addr, t)
			if len(loads) == 0 && t.HasData() {
				plan.Notes = append(plan.Notes, fmt.Sprintf("%s is local to each replica and was created empty on %s; its rows there come back only with --from-snapshot", t.FullName(), r.Name()))
			}
			plan.Steps = append(plan.Steps, loads...)
		}
	}
	plan.Steps = append(append(append(plan.Steps, views...), syncs...), verifies...)
	return plan, nil
}

// replicaCreate is the statement that creates t on the rebuilt replica. Nothing is replayed
// unchecked: a statement the rewriter refuses (forged in a snapshot, or not a plain CREATE)
// stops the plan, naming the table.
func replicaCreate(t *clickhouse.Table, uuid string) (string, error) {
	out, err := clickhouse.RewriteCreate(t.Create, clickhouse.Rewrite{Database: t.Database, UUID: uuid})
	if err != nil {
		return "", fmt.Errorf("plan the rebuild: the statement recorded for %s is not one tracevault will run: %w", t.FullName(), err)
	}
	return out, nil
}

func (b *Rebuilder) planReplicated(st *replicaState, t *clickhouse.Table, cur *clickhouse.Table, uuid string) ([]Step, error) {
	r := &st.target
	var steps []Step
	name := t.FullName()
	isolated := cur != nil && (cur.ZooKeeperPath != t.ZooKeeperPath || cur.UUID != t.UUID)
	reg := clickhouse.RegistrationPath(t, r.Macros)
	// In its group, readonly, and not registered: ZooKeeper lost this replica's metadata.
	orphaned := cur != nil && !isolated && st.zkKnown && !st.registered[reg] && st.readonly[name]
	switch {
	case orphaned && st.caps.RestoreReplica:
		return []Step{{Action: restore.ActionRestoreMetadata, Target: name, ZooKeeperPath: reg, table: t,
			SQL:    "SYSTEM RESTORE REPLICA " + clickhouse.QuoteIdent(t.Database) + "." + clickhouse.QuoteIdent(t.Name),
			Detail: "re-register from its own parts"}}, nil
	case orphaned:
		return nil, fmt.Errorf("%s on %s is readonly and ZooKeeper has no %s: its metadata was lost, and ClickHouse %s can neither drop a readonly replicated table nor SYSTEM RESTORE REPLICA; "+
			"on %s: DETACH TABLE %s, move its data directory and metadata .sql aside, restart the server, then rerun restore-replica to re-create it from its peers", name, r.Name(), reg, st.caps.Version, r.Name(), name)
	case cur != nil && !isolated:
		return nil, nil
	}
	if isolated {
		steps = append(steps,
			Step{Action: restore.ActionRecoverRows, Target: name, ZooKeeperPath: cur.ZooKeeperPath, own: cur, table: t,
				Detail: fmt.Sprintf("keep rows of the isolated table found on no peer in %s.%s", clickhouse.QuoteIdent(t.Database), recoveryName(t.Name, b.view.Taken))},
			Step{Action: restore.ActionDropTable, Target: name, ZooKeeperPath: cur.ZooKeeperPath, SQL: dropSQL(t, st.caps),
				Detail: "drop the table isolated under " + cur.ZooKeeperPath + " on this replica only"})
	}
	replicaName := clickhouse.ExpandMacros(clickhouse.ReplicaArg(t.Create), r.Macros, t)
	if st.registered[reg] {
		steps = append(steps, Step{Action: restore.ActionDropRegistration, Target: name, ZooKeeperPath: reg,
			Detail: "remove the registration the lost table left behind, so the new one can register"})
	}
	peerPath := t.ZooKeeperPath
	rw := clickhouse.Rewrite{Database: t.Database, UUID: uuid, ZKPathMap: func(p string) string {
		if clickhouse.ExpandMacros(p, r.Macros, t) == peerPath {
			return p // the macros give the peers' path here too: keep the definition identical
		}
		return peerPath
	}}
	create, err := clickhouse.RewriteCreate(t.Create, rw)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", name, err)
	}
	steps = append(steps,
		Step{Action: restore.ActionCreateTable, Target: name, ZooKeeperPath: t.ZooKeeperPath, SQL: create, table: t,
			Detail: fmt.Sprintf("replica %s of %s", replicaName, t.ZooKeeperPath)})
	return steps, nil
}

// planLocalLoad loads a local table's partitions that the snapshot recorded for this replica.
func (b *Rebuilder) planLocalLoad(addr string, t *clickhouse.Table) []Step {
	if b.opts.Snapshot == nil {
		return nil
	}
	var out []Step
	for i := range b.opts.Snapshot.Tables {
		rec := &b.opts.Snapshot.Tables[i]
		if rec.FullName() != t.FullName() {
			continue
		}
		for _, p := range rec.Partitions {
			ref, ok := b.opts.Objects[p.Object]
			if p.Replica != addr || !ok {
				continue
			}
			out = append(out, Step{Action: restore.ActionLoadPartition, Target: t.FullName(), Partition: p.ID, Object: p.Object, Rows: p.Rows, rec: rec, ref: ref, table: t})
		}
	}
	return out
}

func dropSQL(t *clickhouse.Table, caps clickhouse.Capabilities) string {
	sql := "DROP TABLE IF EXISTS " + clickhouse.QuoteIdent(t.Database) + "." + clickhouse.QuoteIdent(t.Name)
	if caps.TableUUIDs {
		sql += " SYNC" // Atomic databases drop lazily; the new table must not race the old one
	}
	return sql
}

// createDatabaseSQL re-creates a database as the peers have it: on modern servers an Atomic
// database keeps its UUID, which the default replication paths of its tables derive from.
func createDatabaseSQL(name string, peers []clickhouse.DatabaseRecord, caps clickhouse.Capabilities) string {
	sql := "CREATE DATABASE IF NOT EXISTS " + clickhouse.QuoteIdent(name)
	for _, d := range peers {
		if d.Name != name || !caps.DatabaseUUIDs {
			continue
		}
		if d.UUID != "" {
			sql += " UUID '" + d.UUID + "'"
		}
		if d.Engine != "" {
			sql += " ENGINE = " + d.Engine
		}
	}
	return sql
}
