package replica

// The check judges a cluster view: for every table on every replica, is it where its peers are
// (same ZooKeeper path, same UUID), alive, caught up, holding the same rows and the same columns?
// Gathering (Check) is separate from judging (judge), so the verdicts are tested on fixtures.

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// Verdicts of a cell of the matrix, from healthy to worst. A cell shows its worst verdict.
const (
	VerdictOK           = "ok"
	VerdictSyncing      = "syncing" // queue not empty yet: rows are not compared
	VerdictLagging      = "lagging" // absolute_delay past CheckOptions.MaxDelay
	VerdictRowsDiffer   = "rows-differ"
	VerdictSchema       = "schema-differs"
	VerdictInactive     = "inactive"     // registered in ZooKeeper but its session is gone
	VerdictUnregistered = "unregistered" // not under its group's replicas/ in ZooKeeper
	VerdictReadonly     = "readonly"
	VerdictExpired      = "expired"
	VerdictIsolated     = "isolated" // replicates under another path or UUID than its peers
	VerdictMissing      = "missing"
	VerdictDown         = "down"
)

var verdictRank = map[string]int{VerdictOK: 0, VerdictSyncing: 1, VerdictLagging: 2, VerdictRowsDiffer: 3, VerdictSchema: 4,
	VerdictInactive: 5, VerdictUnregistered: 6, VerdictReadonly: 7, VerdictExpired: 8, VerdictIsolated: 9, VerdictMissing: 10, VerdictDown: 11}

// Report is the health of the cluster: a matrix of tables by replicas and the problems found,
// each with the command that fixes it. The status page renders it as is.
type Report struct {
	Taken   time.Time `json:"taken"`
	Healthy bool      `json:"healthy"`
	// Replicas are the matrix's columns: each configured replica's name ({replica} macro, or
	// its address while it is down), in configuration order.
	Replicas   []ReplicaColumn          `json:"replicas"`
	Tables     []TableCheck             `json:"tables"`
	Migrations []Migration              `json:"migrations,omitempty"`
	ZooKeeper  []zookeeper.ServerHealth `json:"zookeeper,omitempty"`
	Problems   []Problem                `json:"problems"`
}

// ReplicaColumn names one configured replica.
type ReplicaColumn struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"`
}

// TableCheck is one row of the matrix.
type TableCheck struct {
	Table      string `json:"table"` // db.table
	Engine     string `json:"engine"`
	Replicated bool   `json:"replicated"`
	// ZooKeeperPath and UUID are the group most replicas are in: the reference the cells are
	// judged against.
	ZooKeeperPath string `json:"zookeeper_path,omitempty"`
	UUID          string `json:"uuid,omitempty"`
	Cells         []Cell `json:"cells"` // one per replica, in Report.Replicas order
}

// Cell is one table on one replica.
type Cell struct {
	Replica       string `json:"replica"`
	Verdict       string `json:"verdict"`
	Rows          uint64 `json:"rows"`
	QueueSize     uint32 `json:"queue_size,omitempty"`
	AbsoluteDelay uint64 `json:"absolute_delay,omitempty"`
	ZooKeeperPath string `json:"zookeeper_path,omitempty"`
	UUID          string `json:"uuid,omitempty"`
	Detail        string `json:"detail,omitempty"`
}

// Migration is the state of golang-migrate's schema_migrations in one database.
type Migration struct {
	Database string `json:"database"`
	Version  int64  `json:"version"`
	Dirty    bool   `json:"dirty"`
}

// Problem is one thing to fix, with the command that fixes it.
type Problem struct {
	Kind    string `json:"kind"` // a cell verdict, or zookeeper, migration, stale-registration
	Table   string `json:"table,omitempty"`
	Replica string `json:"replica,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

// CheckOptions tune the check.
type CheckOptions struct {
	Filter clickhouse.Filter
	// ZooKeeper is the ensemble's health (zookeeper.Health); unhealthy servers are problems.
	ZooKeeper []zookeeper.ServerHealth
	// MaxDelay is the absolute_delay past which a replica counts as lagging; default 5 minutes.
	MaxDelay time.Duration
	// ZooKeeperError is why the caller has no session to pass to Check, if it tried.
	ZooKeeperError string
}

// tableFacts is what one replica says about one of its tables, beyond system.replicas.
type tableFacts struct {
	Engine     string
	UUID       string
	Columns    []string
	Partitions map[string]uint64 // partition id -> rows of active parts
}

// replicaFacts are one up replica's tables by "db.table".
type replicaFacts map[string]*tableFacts

// Check observes the cluster and judges it.
func Check(ctx context.Context, servers []*clickhouse.Server, addrs []string, conn *zk.Conn, o CheckOptions) (*Report, error) {
	view := clickhouse.Observe(ctx, servers, addrs, conn)
	byAddr := map[string]*clickhouse.Server{}
	for _, s := range servers {
		byAddr[s.Addr] = s
	}
	facts := make([]replicaFacts, len(view.Replicas))
	var migrations []Migration
	for i, r := range view.Replicas {
		if !r.Up {
			continue
		}
		f, err := gatherFacts(ctx, byAddr[r.Addr], o.Filter)
		if err != nil {
			return nil, err
		}
		facts[i] = f
		if migrations == nil {
			if migrations, err = readMigrations(ctx, byAddr[r.Addr], f); err != nil {
				return nil, err
			}
		}
	}
	return judge(view, facts, migrations, o), nil
}

func gatherFacts(ctx context.Context, s *clickhouse.Server, f clickhouse.Filter) (replicaFacts, error) {
	uuid := "''"
	if s.Caps.TableUUIDs {
		uuid = "toString(uuid)"
	}
	out := replicaFacts{}
	rows, err := s.Conn.Query(ctx, "SELECT database, name, engine, "+uuid+" FROM system.tables WHERE NOT is_temporary")
	if err != nil {
		return nil, fmt.Errorf("list tables on %s: %w", s.Addr, err)
	}
	for rows.Next() {
		var db, name, engine, id string
		if err := rows.Scan(&db, &name, &engine, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables on %s: %w", s.Addr, err)
		}
		if !f.Matches(db, name) || isScratchTable(name) {
			continue
		}
		if id == "00000000-0000-0000-0000-000000000000" {
			id = ""
		}
		out[db+"."+name] = &tableFacts{Engine: engine, UUID: id, Partitions: map[string]uint64{}}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables on %s: %w", s.Addr, err)
	}
	// One pass over each system table for the whole server, not one query per table.
	cols, err := s.Conn.Query(ctx, "SELECT database, table, name, type FROM system.columns")
	if err != nil {
		return nil, fmt.Errorf("read columns on %s: %w", s.Addr, err)
	}
	for cols.Next() {
		var db, table, name, typ string
		if err := cols.Scan(&db, &table, &name, &typ); err != nil {
			cols.Close()
			return nil, fmt.Errorf("read columns on %s: %w", s.Addr, err)
		}
		if t := out[db+"."+table]; t != nil {
			t.Columns = append(t.Columns, name+" "+typ)
		}
	}
	cols.Close()
	parts, err := s.Conn.Query(ctx, "SELECT database, table, partition_id, sum(rows) FROM system.parts WHERE active GROUP BY database, table, partition_id")
	if err != nil {
		return nil, fmt.Errorf("read parts on %s: %w", s.Addr, err)
	}
	defer parts.Close()
	for parts.Next() {
		var db, table, id string
		var n uint64
		if err := parts.Scan(&db, &table, &id, &n); err != nil {
			return nil, fmt.Errorf("read parts on %s: %w", s.Addr, err)
		}
		if t := out[db+"."+table]; t != nil {
			t.Partitions[id] = n
		}
	}
	return out, parts.Err()
}

// isScratchTable: tracevault's own staging and recovery tables are not part of the schema.
func isScratchTable(name string) bool { return strings.HasPrefix(name, "__tracevault_") }

// readMigrations reads golang-migrate's current version (the row with the highest sequence) of
// every database that has a schema_migrations table.
func readMigrations(ctx context.Context, s *clickhouse.Server, f replicaFacts) ([]Migration, error) {
	out := []Migration{}
	for _, name := range sortedKeys(f) {
		db, table, _ := strings.Cut(name, ".")
		if table != "schema_migrations" {
			continue
		}
		var m Migration
		var dirty uint8
		err := s.Conn.QueryRow(ctx, fmt.Sprintf("SELECT version, dirty FROM %s.schema_migrations ORDER BY sequence DESC LIMIT 1", clickhouse.QuoteIdent(db))).Scan(&m.Version, &dirty)
		if err != nil && strings.Contains(err.Error(), "no rows") {
			continue // no migration has run yet
		}
		if err != nil {
			return nil, fmt.Errorf("read %s.schema_migrations on %s: %w", db, s.Addr, err)
		}
		m.Database, m.Dirty = db, dirty != 0
		out = append(out, m)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// judge is the pure part of the check.
func judge(view *clickhouse.View, facts []replicaFacts, migrations []Migration, o CheckOptions) *Report {
	if o.MaxDelay == 0 {
		o.MaxDelay = 5 * time.Minute
	}
	rep := &Report{Taken: view.Taken, Migrations: migrations, ZooKeeper: o.ZooKeeper, Problems: []Problem{}}
	configured := map[string]bool{}
	for _, r := range view.Replicas {
		rep.Replicas = append(rep.Replicas, ReplicaColumn{Name: r.Name(), Addr: r.Addr, Up: r.Up, Error: r.Error})
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

// referenceGroup is the path (and UUID) most of a table's replicas are in; ties go to the one
// with more replicas registered in ZooKeeper, then to the first replica's.
func referenceGroup(live map[int]clickhouse.ReplicaTable, view *clickhouse.View) (string, string) {
	type key struct{ path, uuid string }
	count := map[key]int{}
	first := map[key]int{}
	for i, t := range live {
		k := key{t.ZooKeeperPath, t.UUID}
		count[k]++
		if f, ok := first[k]; !ok || i < f {
			first[k] = i
		}
	}
	registered := func(path string) int {
		for _, g := range view.Groups {
			if g.ZooKeeperPath == path {
				return len(g.Registered)
			}
		}
		return 0
	}
	var best key
	bestSet := false
	for k := range count {
		better := !bestSet || count[k] > count[best] ||
			(count[k] == count[best] && (registered(k.path) > registered(best.path) ||
				(registered(k.path) == registered(best.path) && first[k] < first[best])))
		if better {
			best, bestSet = k, true
		}
	}
	return best.path, best.uuid
}

// majority is the column list most replicas that have the table agree on.
func majority(facts []replicaFacts, name string) []string {
	votes := map[string]int{}
	lists := map[string][]string{}
	for _, f := range facts {
		if f == nil || f[name] == nil {
			continue
		}
		k := strings.Join(f[name].Columns, ", ")
		votes[k]++
		lists[k] = f[name].Columns
	}
	best := ""
	for _, k := range sortedKeys(votes) {
		if votes[k] > votes[best] {
			best = k
		}
	}
	return lists[best]
}

func columnDiff(want, got []string) string {
	in := func(xs []string, s string) bool {
		for _, x := range xs {
			if x == s {
				return true
			}
		}
		return false
	}
	var d []string
	for _, c := range want {
		if !in(got, c) {
			d = append(d, "lacks "+c)
		}
	}
	for _, c := range got {
		if !in(want, c) {
			d = append(d, "has "+c)
		}
	}
	return strings.Join(d, "; ")
}

func partitionDiff(want, got map[string]uint64) string {
	ids := map[string]bool{}
	for id := range want {
		ids[id] = true
	}
	for id := range got {
		ids[id] = true
	}
	var d []string
	for _, id := range sortedKeys(ids) {
		if want[id] != got[id] {
			d = append(d, fmt.Sprintf("partition %s: %d rows, peers %d", id, got[id], want[id]))
		}
	}
	return strings.Join(d, "; ")
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
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

// WriteReport prints the matrix, then the problems with their fixes.
func WriteReport(w io.Writer, r *Report) {
	width := len("table")
	for _, t := range r.Tables {
		width = max(width, len(t.Table))
	}
	fmt.Fprintf(w, "%-*s", width+2, "table")
	for _, c := range r.Replicas {
		fmt.Fprintf(w, "%-16s", c.Name)
	}
	fmt.Fprintln(w)
	for _, t := range r.Tables {
		fmt.Fprintf(w, "%-*s", width+2, t.Table)
		for _, c := range t.Cells {
			cell := c.Verdict
			if c.Verdict != VerdictDown && c.Verdict != VerdictMissing && strings.HasSuffix(t.Engine, "MergeTree") {
				cell = fmt.Sprintf("%s %d", c.Verdict, c.Rows)
			}
			fmt.Fprintf(w, "%-16s", cell)
		}
		fmt.Fprintln(w)
	}
	for _, m := range r.Migrations {
		state := "clean"
		if m.Dirty {
			state = "DIRTY"
		}
		fmt.Fprintf(w, "migrations %s: version %d, %s\n", m.Database, m.Version, state)
	}
	for _, h := range r.ZooKeeper {
		state := "ok"
		if !h.OK {
			state = "DOWN " + h.Error
		}
		fmt.Fprintf(w, "zookeeper %s: %s %s, %d znodes\n", h.Server, state, h.Mode, h.ZnodeCount)
	}
	if r.Healthy {
		fmt.Fprintf(w, "healthy: %d tables on %d replicas\n", len(r.Tables), len(r.Replicas))
		return
	}
	fmt.Fprintf(w, "%d problem(s):\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "- [%s] %s\n  fix: %s\n", p.Kind, p.Message, p.Fix)
	}
}
