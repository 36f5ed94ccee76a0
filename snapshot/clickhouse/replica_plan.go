// Planning a replica rebuild (restore-replica): what the target lacks against its peers and
// the snapshot, as ReplicaSteps. Executing them is in replica_execute.go.

package clickhouse

import (
	"context"
	"fmt"
	"regexp"
)

// replicaState is everything a plan is made from, gathered once, so that planning itself reads
// no server and is tested on fixtures of modern servers' system tables.
type replicaState struct {
	target  Replica
	caps    Capabilities // the target's
	peer    string       // empty when the definitions come from the snapshot
	want    []Table      // the peers' (or the snapshot's) objects, in restore order
	peerDBs []database
	have    []Table // the target's objects now
	haveDBs []database
	// registered holds the <path>/replicas/<name> nodes that exist in ZooKeeper for the
	// target's name under each wanted table's path; only known when zkKnown.
	registered map[string]bool
	zkKnown    bool
	readonly   map[string]bool // the target's readonly replicated tables, by db.table
}

// Plan builds the steps that bring the replica back into its groups.
func (b *Rebuilder) Plan(ctx context.Context, which string) (*ReplicaPlan, error) {
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
		if st.want, err = Discover(ctx, p, b.opts.Filter); err != nil {
			return nil, err
		}
		if st.peerDBs, err = databases(ctx, p); err != nil {
			return nil, err
		}
	} else if b.opts.Snapshot != nil {
		for _, t := range b.opts.Snapshot.Tables {
			if b.opts.Filter.matches(t.Database, t.Name) {
				st.want = append(st.want, t.Table)
			}
		}
		st.want = RestoreOrder(st.want)
	} else {
		return nil, fmt.Errorf("no healthy peer of %s to copy definitions from; pass --from-snapshot ID to rebuild from a snapshot's record", r.Name())
	}
	if st.have, err = Discover(ctx, target, b.opts.Filter); err != nil {
		return nil, err
	}
	if st.haveDBs, err = databases(ctx, target); err != nil {
		return nil, err
	}
	for i := range st.want {
		t := &st.want[i]
		if !t.Replicated() || t.ZooKeeperPath == "" || b.zk == nil {
			continue
		}
		reg := registrationPath(t, r.Macros)
		ok, _, err := b.zk.Exists(reg)
		if err != nil {
			return nil, fmt.Errorf("look up the registration %s in zookeeper: %w", reg, err)
		}
		st.registered[reg] = ok
	}
	return b.planFrom(st)
}

func (b *Rebuilder) planFrom(st *replicaState) (*ReplicaPlan, error) {
	r := &st.target
	plan := &ReplicaPlan{Replica: r.Addr, Name: r.Name(), Peer: st.peer, Snapshot: b.opts.SnapshotID}
	own := map[string]*Table{}
	for i := range st.have {
		own[st.have[i].FullName()] = &st.have[i]
	}
	planned := map[string]bool{}
	for _, d := range st.haveDBs {
		planned[d.Name] = true
	}
	uuid := func(t *Table) string {
		if st.caps.TableUUIDs {
			return t.UUID
		}
		return ""
	}
	// Every table is created before any is waited for, so they all fetch at once.
	var views, syncs, verifies []ReplicaStep
	for i := range st.want {
		t := &st.want[i]
		if isScratchTable(t.Name) {
			continue
		}
		if !planned[t.Database] {
			planned[t.Database] = true
			plan.Steps = append(plan.Steps, ReplicaStep{Action: "create-database", Target: t.Database, SQL: createDatabaseSQL(t.Database, st.peerDBs, st.caps)})
		}
		cur := own[t.FullName()]
		switch {
		case t.IsView():
			if cur == nil {
				sql, err := replicaCreate(t, uuid(t))
				if err != nil {
					return nil, err
				}
				views = append(views, ReplicaStep{Action: "create-view", Target: t.FullName(), SQL: sql})
			}
		case t.Replicated():
			steps, err := b.planReplicated(st, t, cur, uuid(t))
			if err != nil {
				return nil, err
			}
			if len(steps) > 0 {
				plan.Steps = append(plan.Steps, steps...)
				syncs = append(syncs, ReplicaStep{Action: "sync", Target: t.FullName(), table: t, Detail: "fetch the parts it lacks from the peers"})
				verifies = append(verifies, ReplicaStep{Action: "verify", Target: t.FullName(), table: t, Detail: "rows per partition equal to the peers'"})
			}
		case cur == nil:
			sql, err := replicaCreate(t, uuid(t))
			if err != nil {
				return nil, err
			}
			plan.Steps = append(plan.Steps, ReplicaStep{Action: "create-table", Target: t.FullName(), SQL: sql, table: t})
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
func replicaCreate(t *Table, uuid string) (string, error) {
	out, err := RewriteCreate(t.Create, Rewrite{Database: t.Database, UUID: uuid})
	if err != nil {
		return "", fmt.Errorf("plan the rebuild: the statement recorded for %s is not one tracevault will run: %w", t.FullName(), err)
	}
	return out, nil
}

func (b *Rebuilder) planReplicated(st *replicaState, t *Table, cur *Table, uuid string) ([]ReplicaStep, error) {
	r := &st.target
	var steps []ReplicaStep
	name := t.FullName()
	isolated := cur != nil && (cur.ZooKeeperPath != t.ZooKeeperPath || cur.UUID != t.UUID)
	reg := registrationPath(t, r.Macros)
	// In its group, readonly, and not registered: ZooKeeper lost this replica's metadata.
	orphaned := cur != nil && !isolated && st.zkKnown && !st.registered[reg] && st.readonly[name]
	switch {
	case orphaned && st.caps.RestoreReplica:
		return []ReplicaStep{{Action: "restore-metadata", Target: name, ZooKeeperPath: reg, table: t,
			SQL:    "SYSTEM RESTORE REPLICA " + QuoteIdent(t.Database) + "." + QuoteIdent(t.Name),
			Detail: "re-register from its own parts"}}, nil
	case orphaned:
		return nil, fmt.Errorf("%s on %s is readonly and ZooKeeper has no %s: its metadata was lost, and ClickHouse %s can neither drop a readonly replicated table nor SYSTEM RESTORE REPLICA; "+
			"on %s: DETACH TABLE %s, move its data directory and metadata .sql aside, restart the server, then rerun restore-replica to re-create it from its peers", name, r.Name(), reg, st.caps.Version, r.Name(), name)
	case cur != nil && !isolated:
		return nil, nil
	}
	if isolated {
		steps = append(steps,
			ReplicaStep{Action: "recover-rows", Target: name, ZooKeeperPath: cur.ZooKeeperPath, own: cur, table: t,
				Detail: fmt.Sprintf("keep rows of the isolated table found on no peer in %s.%s", QuoteIdent(t.Database), recoveryName(t.Name, b.view.Taken))},
			ReplicaStep{Action: "drop-table", Target: name, ZooKeeperPath: cur.ZooKeeperPath, SQL: dropSQL(t, st.caps),
				Detail: "drop the table isolated under " + cur.ZooKeeperPath + " on this replica only"})
	}
	replicaName := expandMacros(replicaArg(t.Create), r.Macros, t)
	if st.registered[reg] {
		steps = append(steps, ReplicaStep{Action: "drop-registration", Target: name, ZooKeeperPath: reg,
			Detail: "remove the registration the lost table left behind, so the new one can register"})
	}
	peerPath := t.ZooKeeperPath
	rw := Rewrite{Database: t.Database, UUID: uuid, ZKPathMap: func(p string) string {
		if expandMacros(p, r.Macros, t) == peerPath {
			return p // the macros give the peers' path here too: keep the definition identical
		}
		return peerPath
	}}
	create, err := RewriteCreate(t.Create, rw)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", name, err)
	}
	steps = append(steps,
		ReplicaStep{Action: "create-table", Target: name, ZooKeeperPath: t.ZooKeeperPath, SQL: create, table: t,
			Detail: fmt.Sprintf("replica %s of %s", replicaName, t.ZooKeeperPath)})
	return steps, nil
}

// planLocalLoad loads a local table's partitions that the snapshot recorded for this replica.
func (b *Rebuilder) planLocalLoad(addr string, t *Table) []ReplicaStep {
	if b.opts.Snapshot == nil {
		return nil
	}
	var out []ReplicaStep
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
			out = append(out, ReplicaStep{Action: "load-partition", Target: t.FullName(), Partition: p.ID, Object: p.Object, Rows: p.Rows, rec: rec, ref: ref, table: t})
		}
	}
	return out
}

func dropSQL(t *Table, caps Capabilities) string {
	sql := "DROP TABLE IF EXISTS " + QuoteIdent(t.Database) + "." + QuoteIdent(t.Name)
	if caps.TableUUIDs {
		sql += " SYNC" // Atomic databases drop lazily; the new table must not race the old one
	}
	return sql
}

// database is a row of system.databases.
type database struct {
	Name, Engine, UUID string
}

func databases(ctx context.Context, s *Server) ([]database, error) {
	uuid := "''"
	if s.Caps.TableUUIDs {
		uuid = "toString(uuid)"
	}
	rows, err := s.Conn.Query(ctx, "SELECT name, engine, "+uuid+" FROM system.databases")
	if err != nil {
		return nil, fmt.Errorf("list databases on %s: %w", s.Addr, err)
	}
	defer rows.Close()
	var out []database
	for rows.Next() {
		var d database
		if err := rows.Scan(&d.Name, &d.Engine, &d.UUID); err != nil {
			return nil, fmt.Errorf("list databases on %s: %w", s.Addr, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// createDatabaseSQL re-creates a database as the peers have it: on modern servers an Atomic
// database keeps its UUID, which the default replication paths of its tables derive from.
func createDatabaseSQL(name string, peers []database, caps Capabilities) string {
	sql := "CREATE DATABASE IF NOT EXISTS " + QuoteIdent(name)
	for _, d := range peers {
		if d.Name != name || !caps.TableUUIDs {
			continue
		}
		if d.UUID != "" && d.UUID != "00000000-0000-0000-0000-000000000000" {
			sql += " UUID '" + d.UUID + "'"
		}
		if d.Engine != "" {
			sql += " ENGINE = " + d.Engine
		}
	}
	return sql
}

var engineArgs = regexp.MustCompile(`(?s)ENGINE\s*=\s*Replicated\w*MergeTree\(\s*'([^']*)'\s*,\s*'([^']*)'`)

// replicaArg is the replica-name argument of a replicated engine; servers that allow omitting
// it use '{replica}'.
func replicaArg(create string) string {
	if m := engineArgs.FindStringSubmatch(create); m != nil {
		return m[2]
	}
	return "{replica}"
}

// expandMacros substitutes a server's macros, and {database}, {table} and {uuid}, the way the
// server does in a replicated engine's arguments.
func expandMacros(s string, macros map[string]string, t *Table) string {
	return regexp.MustCompile(`\{(\w+)\}`).ReplaceAllStringFunc(s, func(m string) string {
		key := m[1 : len(m)-1]
		switch key {
		case "database":
			return t.Database
		case "table":
			return t.Name
		case "uuid":
			return t.UUID
		}
		if v, ok := macros[key]; ok {
			return v
		}
		return m
	})
}
