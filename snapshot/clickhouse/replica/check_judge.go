package replica

import (
	"fmt"
	"strings"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// judge is the pure part of the check.
func judge(view *clickhouse.View, facts []replicaFacts, migrations []Migration, o CheckOptions) *Report {
	if o.MaxDelay == 0 {
		o.MaxDelay = 5 * time.Minute
	}
	rep := &Report{Taken: view.Taken, Migrations: migrations, ZooKeeper: o.ZooKeeper, Problems: []Problem{}}
	configured := map[string]bool{}
	for _, r := range view.Replicas {
		rep.Replicas = append(rep.Replicas, Column{Name: r.Name(), Addr: r.Addr, Up: r.Up, Error: r.Error})
		configured[r.Name()] = true
		if !r.Up {
			rep.Problems = append(rep.Problems, Problem{Kind: VerdictDown, Replica: r.Name(),
				Message: fmt.Sprintf("replica %s is not answering: %s", r.Addr, r.Error),
				Fix:     fmt.Sprintf("start the server; if its volume was lost: tracevault restore-replica %s", r.Addr)})
		}
	}
	names := map[string]bool{}
	for _, f := range facts {
		for n := range f {
			names[n] = true
		}
	}
	for _, name := range sortedKeys(names) {
		rep.Tables = append(rep.Tables, judgeTable(view, facts, name, o, rep))
	}
	rep.Problems = append(rep.Problems, staleRegistrations(view, rep.Tables, configured)...)
	if o.ZooKeeperError != "" {
		view.ZooKeeperError = o.ZooKeeperError
	}
	if view.ZooKeeperError != "" {
		rep.Problems = append(rep.Problems, Problem{Kind: "zookeeper", Message: "could not read the replicas' registrations: " + view.ZooKeeperError,
			Fix: "check [zookeeper] servers and the ensemble: tracevault zk health"})
	}
	for _, h := range o.ZooKeeper {
		if !h.OK {
			rep.Problems = append(rep.Problems, Problem{Kind: "zookeeper", Message: fmt.Sprintf("zookeeper %s is not answering: %s", h.Server, h.Error),
				Fix: "start it; replication stops for every table once the ensemble loses its quorum"})
		}
		for _, w := range h.Warnings {
			rep.Problems = append(rep.Problems, Problem{Kind: "zookeeper", Message: fmt.Sprintf("zookeeper %s: %s", h.Server, w),
				Fix: "tracevault zk health; find what keeps adding znodes (old parts, blocks, a dead replica's log) before the ensemble runs out of memory"})
		}
	}
	for _, m := range migrations {
		if m.Dirty {
			rep.Problems = append(rep.Problems, Problem{Kind: "migration", Table: m.Database + ".schema_migrations",
				Message: fmt.Sprintf("migration %d in %s is dirty: it failed part way, and later migrations will refuse to run", m.Version, m.Database),
				Fix:     fmt.Sprintf("repair what migration %d left half done, then mark it clean: tracevault migrate --target clickhouse --database %s force %d", m.Version, m.Database, m.Version)})
		}
	}
	rep.Healthy = len(rep.Problems) == 0
	return rep
}

func judgeTable(view *clickhouse.View, facts []replicaFacts, name string, o CheckOptions, rep *Report) TableCheck {
	tc := TableCheck{Table: name}
	live := map[int]clickhouse.ReplicaTable{} // replica index -> its system.replicas row for this table
	for i, r := range view.Replicas {
		if f := facts[i]; f != nil && f[name] != nil && tc.Engine == "" {
			tc.Engine = f[name].Engine
		}
		for _, t := range r.Tables {
			if t.FullName() == name {
				live[i] = t
			}
		}
	}
	tc.Replicated = strings.HasPrefix(tc.Engine, "Replicated")
	tc.ZooKeeperPath, tc.UUID = referenceGroup(live, view)
	columns := majority(facts, name)
	var group *clickhouse.Group
	for i := range view.Groups {
		if view.Groups[i].ZooKeeperPath == tc.ZooKeeperPath {
			group = &view.Groups[i]
		}
	}
	// The reference rows come from a caught-up member of the reference group.
	var refRows map[string]uint64
	refName := ""
	for i, t := range live {
		if t.ZooKeeperPath == tc.ZooKeeperPath && t.UUID == tc.UUID && t.QueueSize == 0 && facts[i] != nil && facts[i][name] != nil {
			if refName == "" || view.Replicas[i].Name() < refName {
				refRows, refName = facts[i][name].Partitions, view.Replicas[i].Name()
			}
		}
	}
	problem := func(kind, replica, msg, fix string) {
		rep.Problems = append(rep.Problems, Problem{Kind: kind, Table: name, Replica: replica, Message: msg, Fix: fix})
	}
	for i, r := range view.Replicas {
		c := Cell{Replica: r.Name(), Verdict: VerdictOK}
		set := func(v, detail string) {
			if verdictRank[v] > verdictRank[c.Verdict] {
				c.Verdict, c.Detail = v, detail
			}
		}
		f := facts[i]
		switch {
		case !r.Up:
			set(VerdictDown, r.Error)
		case f[name] == nil:
			set(VerdictMissing, "the table does not exist here")
			problem(VerdictMissing, r.Name(), fmt.Sprintf("%s is missing on %s; its peers have it", name, r.Name()),
				"tracevault restore-replica "+r.Name()+fromSnapshotHint(tc))
		default:
			tf := f[name]
			c.Rows = sum(tf.Partitions)
			if d := columnDiff(columns, tf.Columns); d != "" {
				set(VerdictSchema, d)
				problem(VerdictSchema, r.Name(), fmt.Sprintf("%s on %s has other columns than on its peers: %s", name, r.Name(), d),
					fmt.Sprintf("align the schema with ALTER TABLE %s ON CLUSTER …, or rebuild the replica: tracevault restore-replica %s", name, r.Name()))
			}
			if t, ok := live[i]; ok {
				judgeReplicated(&c, t, tc, group, refRows, tf, o, set, problem, name, r.Name())
			}
		}
		tc.Cells = append(tc.Cells, c)
	}
	return tc
}

func judgeReplicated(c *Cell, t clickhouse.ReplicaTable, tc TableCheck, group *clickhouse.Group, refRows map[string]uint64, tf *tableFacts, o CheckOptions,
	set func(v, detail string), problem func(kind, replica, msg, fix string), name, replica string) {
	c.QueueSize, c.AbsoluteDelay = t.QueueSize, t.AbsoluteDelay
	if t.ZooKeeperPath != tc.ZooKeeperPath || t.UUID != tc.UUID {
		c.ZooKeeperPath, c.UUID = t.ZooKeeperPath, t.UUID
		what := fmt.Sprintf("path %s", t.ZooKeeperPath)
		if t.ZooKeeperPath == tc.ZooKeeperPath {
			what = fmt.Sprintf("UUID %s", t.UUID)
		}
		set(VerdictIsolated, fmt.Sprintf("replicates under %s, alone; %d rows here, %d on its peers", what, c.Rows, sum(refRows)))
		problem(VerdictIsolated, replica, fmt.Sprintf("%s on %s replicates under %s, not its peers' %s: queries routed to %s see %d rows, the peers %d",
			name, replica, what, tc.ZooKeeperPath, replica, c.Rows, sum(refRows)),
			"tracevault restore-replica "+replica+" (rows found only here are kept in a recovery table)")
		return
	}
	switch {
	case t.IsSessionExpired:
		set(VerdictExpired, "ZooKeeper session expired")
		problem(VerdictExpired, replica, fmt.Sprintf("%s on %s lost its ZooKeeper session: it accepts no writes and fetches nothing", name, replica),
			fmt.Sprintf("tracevault zk health; then on %s: SYSTEM RESTART REPLICA %s", replica, name))
	case t.IsReadonly:
		set(VerdictReadonly, "readonly")
		problem(VerdictReadonly, replica, fmt.Sprintf("%s on %s is readonly", name, replica),
			fmt.Sprintf("tracevault zk health; if its ZooKeeper metadata is gone: tracevault restore-replica %s; else on %s: SYSTEM RESTART REPLICA %s", replica, replica, name))
	}
	if group != nil && group.Registered != nil {
		reg := -1
		for j, g := range group.Registered {
			if g.Name == t.ReplicaName {
				reg = j
			}
		}
		switch {
		case reg < 0:
			set(VerdictUnregistered, "not registered in ZooKeeper")
			problem(VerdictUnregistered, replica, fmt.Sprintf("%s on %s is not registered under %s/replicas", name, replica, tc.ZooKeeperPath),
				"tracevault restore-replica "+replica)
		case !group.Registered[reg].Active:
			set(VerdictInactive, "registered but not active")
			problem(VerdictInactive, replica, fmt.Sprintf("%s on %s is registered under %s but not active", name, replica, tc.ZooKeeperPath),
				fmt.Sprintf("on %s: SYSTEM RESTART REPLICA %s", replica, name))
		}
	}
	if time.Duration(t.AbsoluteDelay)*time.Second > o.MaxDelay {
		set(VerdictLagging, fmt.Sprintf("%d s behind, %d entries queued", t.AbsoluteDelay, t.QueueSize))
		problem(VerdictLagging, replica, fmt.Sprintf("%s on %s is %d s behind its peers (%d entries queued)", name, replica, t.AbsoluteDelay, t.QueueSize),
			fmt.Sprintf("on %s: SELECT last_exception FROM system.replication_queue WHERE table = '%s'; then SYSTEM SYNC REPLICA %s", replica, t.Table, name))
	}
	if t.QueueSize > 0 {
		set(VerdictSyncing, fmt.Sprintf("%d entries queued; rows not compared", t.QueueSize))
		return
	}
	if refRows != nil {
		if d := partitionDiff(refRows, tf.Partitions); d != "" {
			set(VerdictRowsDiffer, d)
			problem(VerdictRowsDiffer, replica, fmt.Sprintf("%s on %s holds other rows than its peers with an empty queue: %s", name, replica, d),
				fmt.Sprintf("on %s: SYSTEM SYNC REPLICA %s; if they still differ: tracevault restore-replica %s", replica, name, replica))
		}
	}
}

func fromSnapshotHint(tc TableCheck) string {
	if !tc.Replicated && strings.HasSuffix(tc.Engine, "MergeTree") {
		return " --from-snapshot latest (a local table's rows come only from a snapshot)"
	}
	return ""
}

// staleRegistrations finds replicas registered in a reference group that no configured server
// answers for: the group keeps its replication log for them forever, which grows ZooKeeper.
func staleRegistrations(view *clickhouse.View, tables []TableCheck, configured map[string]bool) []Problem {
	var out []Problem
	for _, tc := range tables {
		if !tc.Replicated {
			continue
		}
		for _, g := range view.Groups {
			if g.ZooKeeperPath != tc.ZooKeeperPath {
				continue
			}
			for _, reg := range g.Registered {
				if configured[reg.Name] || reg.Active {
					continue
				}
				out = append(out, Problem{Kind: "stale-registration", Table: tc.Table, Replica: reg.Name,
					Message: fmt.Sprintf("%s/replicas/%s is registered but no configured replica is named %s", g.ZooKeeperPath, reg.Name, reg.Name),
					Fix:     fmt.Sprintf("if that replica is gone for good, remove its registration: SYSTEM DROP REPLICA '%s' FROM TABLE %s (modern servers), or delete %s/replicas/%s in ZooKeeper", reg.Name, tc.Table, g.ZooKeeperPath, reg.Name)})
			}
		}
	}
	return out
}
