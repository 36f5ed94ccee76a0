package clickhouse

// restore-replica rebuilds one replica so that it rejoins its replication groups: every table
// is re-created with its peers' definition, ZooKeeper path, replica name and UUID, and then
// fetches its data from them. Nothing is ever executed on the peers: they are only read.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/snapshot/store"
)

// ReplicaOptions say how a replica is rebuilt.
type ReplicaOptions struct {
	Filter Filter
	Conn   ConnOptions
	HTTP   map[string]string // native address -> HTTP address, to load a local table's partitions
	// Snapshot is the clickhouse section of --from-snapshot (nil without): the definitions when
	// no peer is healthy, and the rows of the replica's local tables.
	Snapshot   *Section
	SnapshotID string
	Objects    map[string]store.ObjectRef // the snapshot's objects by id
	// SyncTimeout bounds the wait for each table to fetch its data; default 30 minutes.
	SyncTimeout time.Duration
	Log         *slog.Logger
}

// ReplicaStep is one action of a rebuild.
type ReplicaStep struct {
	// Action: create-database, recover-rows, drop-table, drop-registration, create-table,
	// restore-metadata, load-partition, create-view, sync, verify.
	Action        string `json:"action"`
	Target        string `json:"target"` // database or db.table on the replica
	SQL           string `json:"sql,omitempty"`
	ZooKeeperPath string `json:"zookeeper_path,omitempty"`
	Partition     string `json:"partition,omitempty"`
	Object        string `json:"object,omitempty"`
	Rows          uint64 `json:"rows,omitempty"`
	Detail        string `json:"detail,omitempty"`

	table *Table       // the peers' definition
	own   *Table       // the replica's current, isolated definition (recover-rows)
	rec   *TableRecord // the snapshot's record (load-partition)
	ref   store.ObjectRef
}

// ReplicaPlan rebuilds one replica.
type ReplicaPlan struct {
	Replica  string        `json:"replica"` // native address
	Name     string        `json:"name"`    // its {replica} macro
	Peer     string        `json:"peer,omitempty"`
	Snapshot string        `json:"snapshot,omitempty"`
	Steps    []ReplicaStep `json:"steps"`
	// Notes are what the operator must know: local tables created empty, for instance.
	Notes []string `json:"notes,omitempty"`
}

// Recovered is a table of rows that existed only on the isolated replica, kept aside.
type Recovered struct {
	Table         string `json:"table"`
	RecoveryTable string `json:"recovery_table"`
	Rows          uint64 `json:"rows"`
}

// ReplicaResult is what a rebuild did.
type ReplicaResult struct {
	Recovered []Recovered `json:"recovered,omitempty"`
	Verified  []string    `json:"verified"` // tables whose rows per partition match the peers'
}

// ReplicaProgress is told about each step as it finishes, and about the fetch while a sync waits.
type ReplicaProgress func(done, total int, s ReplicaStep, detail string)

// Rebuilder plans and runs restore-replica against connected servers.
type Rebuilder struct {
	view    *View
	servers map[string]*Server
	zk      *zk.Conn
	opts    ReplicaOptions
}

// NewRebuilder observes the cluster once; the plan and its execution read that view.
func NewRebuilder(ctx context.Context, servers []*Server, addrs []string, conn *zk.Conn, o ReplicaOptions) *Rebuilder {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = 30 * time.Minute
	}
	b := &Rebuilder{view: Observe(ctx, servers, addrs, conn), servers: map[string]*Server{}, zk: conn, opts: o}
	for _, s := range servers {
		b.servers[s.Addr] = s
	}
	return b
}

// resolve finds the replica named on the command line: its address or its {replica} macro.
func (b *Rebuilder) resolve(which string) (*Replica, error) {
	var known, down []string
	for i := range b.view.Replicas {
		r := &b.view.Replicas[i]
		if r.Addr == which || (r.Macros["replica"] != "" && r.Macros["replica"] == which) {
			if !r.Up {
				return nil, fmt.Errorf("replica %s is not answering (%s): start it (empty, if its volume was lost), then rerun restore-replica", which, r.Error)
			}
			return r, nil
		}
		known = append(known, r.Name()+" ("+r.Addr+")")
		if !r.Up {
			down = append(down, r.Addr)
		}
	}
	err := fmt.Errorf("no configured replica is %q; the replicas are %s", which, strings.Join(known, ", "))
	if len(down) > 0 {
		// A server that does not answer has no macros to match a name against.
		err = fmt.Errorf("%w; %s not answering, so their names are unknown: start them (empty, if their volume was lost)", err, strings.Join(down, ", "))
	}
	return nil, err
}

// peer picks the replica whose definitions are copied: up, every replicated table writable and
// in session, and in the group most replicas other than the target are in.
func (b *Rebuilder) peer(target string) *Server {
	others := map[int]bool{}
	for i, r := range b.view.Replicas {
		others[i] = r.Addr != target && r.Up
	}
	reference := map[string][2]string{} // db.table -> path, uuid of most other replicas
	for i, r := range b.view.Replicas {
		for _, t := range r.Tables {
			if _, done := reference[t.FullName()]; done || !others[i] {
				continue
			}
			live := map[int]ReplicaTable{}
			for j, o := range b.view.Replicas {
				for _, ot := range o.Tables {
					if others[j] && ot.FullName() == t.FullName() {
						live[j] = ot
					}
				}
			}
			path, uuid := referenceGroup(live, b.view)
			reference[t.FullName()] = [2]string{path, uuid}
		}
	}
	for i, r := range b.view.Replicas {
		if !others[i] {
			continue
		}
		good := true
		for _, t := range r.Tables {
			if b.opts.Filter.matches(t.Database, t.Table) && (!t.Healthy() || reference[t.FullName()] != [2]string{t.ZooKeeperPath, t.UUID}) {
				good = false
			}
		}
		if good {
			return b.servers[r.Addr]
		}
	}
	return nil
}

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

func recoveryName(table string, at time.Time) string {
	return fmt.Sprintf("__tracevault_recovered_%s_%s", table, at.UTC().Format("20060102T150405"))
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

// WriteReplicaPlan prints a plan for --dry-run.
func WriteReplicaPlan(w io.Writer, p *ReplicaPlan) {
	from := "peer " + p.Peer
	if p.Peer == "" {
		from = "snapshot " + p.Snapshot
	}
	fmt.Fprintf(w, "rebuild replica %s (%s) from %s\n", p.Name, p.Replica, from)
	for i, s := range p.Steps {
		line := fmt.Sprintf("%3d. %-17s %s", i+1, s.Action, s.Target)
		switch {
		case s.Action == "load-partition":
			line += fmt.Sprintf(" partition %s: %d rows from object %.12s", s.Partition, s.Rows, s.Object)
		case s.Action == "drop-registration":
			line += " " + s.ZooKeeperPath
		case s.Detail != "":
			line += ": " + s.Detail
		}
		fmt.Fprintln(w, line)
		if s.SQL != "" && (s.Action == "create-table" || s.Action == "drop-table") {
			fmt.Fprintf(w, "       %s\n", oneLine(s.SQL))
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(p.Steps) == 0 {
		fmt.Fprintf(w, "nothing to do: every table of %s is in its peers' groups\n", p.Name)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Execute runs a plan on the replica it was made for. Every step is idempotent or checks before
// acting, so rerunning restore-replica after an interruption plans what is left and does it.
func (b *Rebuilder) Execute(ctx context.Context, repo *store.Repository, plan *ReplicaPlan, progress ReplicaProgress) (*ReplicaResult, error) {
	target := b.servers[plan.Replica]
	res := &ReplicaResult{Verified: []string{}}
	for i, s := range plan.Steps {
		report := func(detail string) {
			if progress != nil {
				progress(i+1, len(plan.Steps), s, detail)
			}
		}
		var err error
		switch s.Action {
		case "create-database", "create-table", "create-view", "drop-table", "restore-metadata":
			err = target.Conn.Exec(ctx, s.SQL)
		case "recover-rows":
			var rec *Recovered
			if rec, err = b.recoverRows(ctx, target, plan.Peer, s); rec != nil {
				res.Recovered = append(res.Recovered, *rec)
			}
		case "drop-registration":
			err = dropRegistration(ctx, b.zk, s.ZooKeeperPath)
		case "load-partition":
			err = b.loadLocal(ctx, repo, target, s)
		case "sync":
			err = b.sync(ctx, target, s, report)
		case "verify":
			if err = b.verify(ctx, target, plan.Peer, s); err == nil {
				res.Verified = append(res.Verified, s.Target)
			}
		}
		if err != nil {
			return res, fmt.Errorf("restore-replica %s step %d/%d (%s %s): %w", plan.Name, i+1, len(plan.Steps), s.Action, s.Target, err)
		}
		report("")
	}
	return res, nil
}

// recoverRows keeps aside the rows of an isolated table that no peer has, comparing a hash of
// each whole row partition by partition (so memory holds one partition's hashes, not a table's).
// Without a peer every row is kept. An empty recovery table is dropped again.
func (b *Rebuilder) recoverRows(ctx context.Context, target *Server, peerAddr string, s ReplicaStep) (*Recovered, error) {
	own := s.own
	name := recoveryName(own.Name, b.view.Taken)
	full := QuoteIdent(own.Database) + "." + QuoteIdent(name)
	src := QuoteIdent(own.Database) + "." + QuoteIdent(own.Name)
	create, err := RewriteCreate(own.Create, Rewrite{Database: own.Database, Table: name, Staging: true})
	if err != nil {
		return nil, err
	}
	if err := target.Conn.Exec(ctx, create); err != nil {
		return nil, fmt.Errorf("create recovery table %s on %s: %w", full, target.Addr, err)
	}
	cols, err := Columns(ctx, target, own.Database, own.Name)
	if err != nil {
		return nil, err
	}
	insert := "INSERT INTO " + full + " SELECT * FROM " + src
	peer := b.servers[peerAddr]
	peerHTTP, targetHTTP := b.opts.HTTP[peerAddr], b.opts.HTTP[target.Addr]
	switch {
	case peer != nil && (peerHTTP == "" || targetHTTP == ""):
		b.opts.Log.Warn("without the HTTP addresses of the replicas, every row of the isolated table is kept aside, not only those its peers lack; set [clickhouse] http_addresses", "table", s.Target)
		fallthrough
	case peer == nil || !sameColumns(ctx, peer, own, cols):
		if err := target.Conn.Exec(ctx, insert); err != nil {
			return nil, fmt.Errorf("copy rows of %s into %s: %w", src, full, err)
		}
	default:
		hash := rowHash(cols)
		parts, err := Partitions(ctx, target, own.Database, own.Name)
		if err != nil {
			return nil, err
		}
		hashes := QuoteIdent(own.Database) + "." + QuoteIdent("__tracevault_peer_hashes_"+own.Name)
		defer func() {
			if err := target.Conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+hashes); err != nil {
				b.opts.Log.Warn("could not drop scratch table", "table", hashes, "replica", target.Addr, "err", err)
			}
		}()
		from := &HTTP{Addr: peerHTTP, User: b.opts.Conn.User, Password: b.opts.Conn.Password}
		to := &HTTP{Addr: targetHTTP, User: b.opts.Conn.User, Password: b.opts.Conn.Password}
		for _, p := range parts {
			if err := copyPeerHashes(ctx, from, to, target, hashes, hash, src, p.ID); err != nil {
				return nil, err
			}
			q := fmt.Sprintf("%s WHERE _partition_id = %s AND %s NOT IN %s", insert, QuoteString(p.ID), hash, hashes)
			if err := target.Conn.Exec(ctx, q); err != nil {
				return nil, fmt.Errorf("copy rows of %s partition %s found on no peer into %s: %w", src, p.ID, full, err)
			}
		}
	}
	var rows uint64
	if err := target.Conn.QueryRow(ctx, "SELECT count() FROM "+full).Scan(&rows); err != nil {
		return nil, fmt.Errorf("count %s on %s: %w", full, target.Addr, err)
	}
	if rows == 0 {
		return &Recovered{Table: s.Target}, target.Conn.Exec(ctx, "DROP TABLE IF EXISTS "+full)
	}
	b.opts.Log.Warn("rows found only on the isolated replica kept aside", "table", s.Target, "recovery_table", own.Database+"."+name, "rows", rows, "replica", target.Addr)
	return &Recovered{Table: s.Target, RecoveryTable: own.Database + "." + name, Rows: rows}, nil
}

// copyPeerHashes fills a Set table on the target with the row hashes of one partition on the
// peer. They are streamed through tracevault, from the peer's HTTP interface into the
// target's, rather than read by the target with remote(): that would put the credentials in
// the SQL text, which both servers keep in system.query_log.
func copyPeerHashes(ctx context.Context, from, to *HTTP, target *Server, hashes, hash, src, partition string) error {
	for _, sql := range []string{"DROP TABLE IF EXISTS " + hashes, "CREATE TABLE " + hashes + " (h UInt64) ENGINE = Set"} {
		if err := target.Conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("prepare %s on %s: %w", hashes, target.Addr, err)
		}
	}
	ns, err := from.QueryNative(ctx, fmt.Sprintf("SELECT %s AS h FROM %s WHERE _partition_id = %s FORMAT Native", hash, src, QuoteString(partition)))
	if err != nil {
		return fmt.Errorf("read the row hashes of %s partition %s on the peer: %w", src, partition, err)
	}
	defer ns.Close()
	if err := to.Exec(ctx, "INSERT INTO "+hashes+" FORMAT Native", ns); err != nil {
		return fmt.Errorf("copy the peer's row hashes of %s partition %s to %s: %w", src, partition, target.Addr, err)
	}
	return nil
}

// sameColumns: rows can be matched by hash only when the peer has the same columns.
func sameColumns(ctx context.Context, peer *Server, t *Table, cols []string) bool {
	theirs, err := Columns(ctx, peer, t.Database, t.Name)
	if err != nil {
		return false
	}
	return strings.Join(theirs, ", ") == strings.Join(cols, ", ")
}

// rowHash hashes a whole row; toString of the tuple handles Nullable, Array and aggregate states
// alike, which the hash functions themselves do not on 18.16.
func rowHash(cols []string) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		name, _, _ := strings.Cut(c, " ")
		names[i] = QuoteIdent(name)
	}
	return "sipHash64(toString(tuple(" + strings.Join(names, ", ") + ")))"
}

// sync waits until the new replica's queue is empty, reporting its progress, then lets SYSTEM
// SYNC REPLICA confirm it has caught up with the replication log.
func (b *Rebuilder) sync(ctx context.Context, target *Server, s ReplicaStep, report func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.SyncTimeout)
	defer cancel()
	db, table, _ := strings.Cut(s.Target, ".")
	last := time.Time{}
	for {
		var queue uint32
		if err := target.Conn.QueryRow(ctx, "SELECT queue_size FROM system.replicas WHERE database = ? AND table = ?", db, table).Scan(&queue); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s has not fetched its data within %s; rerun restore-replica to keep waiting: %w", s.Target, b.opts.SyncTimeout, ctx.Err())
			}
			return fmt.Errorf("read the replication queue of %s on %s: %w", s.Target, target.Addr, err)
		}
		if queue == 0 {
			break
		}
		if time.Since(last) > 5*time.Second {
			report(fmt.Sprintf("%d parts left to fetch", queue))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s has not fetched its data within %s (%d entries still queued); rerun restore-replica to keep waiting", s.Target, b.opts.SyncTimeout, queue)
		case <-time.After(time.Second):
		}
	}
	if err := target.Conn.Exec(ctx, "SYSTEM SYNC REPLICA "+QuoteIdent(db)+"."+QuoteIdent(table)); err != nil {
		return fmt.Errorf("sync replica %s on %s: %w", s.Target, target.Addr, err)
	}
	return nil
}

// verify compares rows per partition with the peer (or the snapshot), after letting the peer
// catch up too. A merge on the peer between the two reads can shift rows between parts but
// not between partitions; a Replacing merge can drop duplicates, so a mismatch is retried.
func (b *Rebuilder) verify(ctx context.Context, target *Server, peerAddr string, s ReplicaStep) error {
	db, table, _ := strings.Cut(s.Target, ".")
	var diff string
	for attempt := 0; attempt < 5; attempt++ {
		mine, err := partitionRows(ctx, target, db, table)
		if err != nil {
			return err
		}
		var want map[string]uint64
		if peer := b.servers[peerAddr]; peer != nil {
			if err := peer.Conn.Exec(ctx, "SYSTEM SYNC REPLICA "+QuoteIdent(db)+"."+QuoteIdent(table)); err != nil {
				return fmt.Errorf("sync replica %s on %s: %w", s.Target, peer.Addr, err)
			}
			if want, err = partitionRows(ctx, peer, db, table); err != nil {
				return err
			}
		} else {
			want = b.snapshotRows(s.Target)
		}
		if diff = partitionDiff(want, mine); diff == "" {
			return nil
		}
		if err := target.Conn.Exec(ctx, "SYSTEM SYNC REPLICA "+QuoteIdent(db)+"."+QuoteIdent(table)); err != nil {
			return fmt.Errorf("sync replica %s on %s: %w", s.Target, target.Addr, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("verify %s: %w", s.Target, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("%s does not hold the peers' rows after syncing: %s; see 'tracevault check'", s.Target, diff)
}

func (b *Rebuilder) snapshotRows(name string) map[string]uint64 {
	out := map[string]uint64{}
	for _, t := range b.opts.Snapshot.Tables {
		if t.FullName() == name {
			for _, p := range t.Partitions {
				out[p.ID] = p.Rows
			}
		}
	}
	return out
}

// loadLocal loads a local table's partition from the snapshot, through the restore's staging
// table and REPLACE PARTITION, so a rerun never duplicates rows.
func (b *Rebuilder) loadLocal(ctx context.Context, repo *store.Repository, target *Server, s ReplicaStep) error {
	if repo == nil {
		return fmt.Errorf("loading %s partition %s needs the snapshot's repository", s.Target, s.Partition)
	}
	rs := &Restorer{opts: RestoreOptions{Conn: b.opts.Conn, Log: b.opts.Log}, servers: map[string]*Server{target.Addr: target}, httpOf: b.opts.HTTP, first: target}
	step := Step{Action: "load-partition", Target: s.Target, Replica: target.Addr, Partition: s.Partition, Object: s.Object, Rows: s.Rows, ref: s.ref, table: s.rec}
	if err := rs.loadPartition(ctx, repo, step); err != nil {
		return err
	}
	rs.dropStaging(ctx, &Plan{Steps: []Step{step}})
	return nil
}
