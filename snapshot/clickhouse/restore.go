package clickhouse

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/snapshot/store"
)

// RestoreOptions choose what to restore and where.
type RestoreOptions struct {
	Native      []string
	HTTP        []string
	Conn        ConnOptions
	Cluster     string
	Tables      []string          // "db.table" globs; empty = all
	Partitions  []string          // partition ids; empty = all
	DatabaseMap map[string]string // source db -> target db
	Force       bool              // replace partitions that already hold rows
	// WholeCluster (restore --cluster) rebuilds a cluster that lost its replicas' data or its
	// ZooKeeper metadata: see planCluster. It needs ZooKeeper.
	WholeCluster bool
	ZooKeeper    *zk.Conn
	// DataPath is where the loading replica's data path is mounted on this host, for objects
	// of frozen parts (see Source.DataPath); empty uses the server's paths as they are.
	DataPath string
	Log      *slog.Logger
}

// Step is one action of a restore plan; --dry-run prints them.
type Step struct {
	Action    string `json:"action"` // create-database, create-table, load-partition, create-view, verify
	Target    string `json:"target"` // db.table on the target
	Replica   string `json:"replica,omitempty"`
	Partition string `json:"partition,omitempty"`
	Object    string `json:"object,omitempty"`
	Rows      uint64 `json:"rows,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	Format    string `json:"format,omitempty"` // of the object: FormatNative or FormatPartsTar
	SQL       string `json:"sql,omitempty"`
	// ZooKeeperPath is what a drop-registration or drop-group step (restore --cluster) removes.
	ZooKeeperPath string `json:"zookeeper_path,omitempty"`

	ref   store.ObjectRef
	table *TableRecord
}

// Plan is the ordered restore: databases, tables, partitions, views.
type Plan struct {
	Snapshot string `json:"snapshot"`
	Steps    []Step `json:"steps"`
}

// Restorer plans and executes restores against the configured cluster.
type Restorer struct {
	opts    RestoreOptions
	servers map[string]*Server // by native address; only the reachable ones
	httpOf  map[string]string
	first   *Server
	local   localFS
	// insert are the settings of a restore's INSERT on each server (by native address), once
	// detected; restore-replica's Restorer starts without them too.
	insert map[string]url.Values
}

// NewRestorer connects to every reachable replica.
func NewRestorer(ctx context.Context, o RestoreOptions) (*Restorer, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	src := &Source{Native: o.Native, HTTP: o.HTTP, Conn: o.Conn, Log: o.Log}
	servers, httpOf, err := Connect(ctx, src.Native, src.HTTP, src.Conn, src.Log)
	if err != nil {
		return nil, err
	}
	r := &Restorer{opts: o, servers: map[string]*Server{}, httpOf: httpOf, first: servers[0], local: localFS{dataPath: o.DataPath}}
	for _, s := range servers {
		r.servers[s.Addr] = s
	}
	return r, nil
}

// insertSettings are the settings of a restore's INSERT on srv, detected once per server.
func (r *Restorer) insertSettings(ctx context.Context, srv *Server) (url.Values, error) {
	if v, ok := r.insert[srv.Addr]; ok {
		return v, nil
	}
	v, err := detectInsertSettings(ctx, srv)
	if err != nil {
		return nil, err
	}
	if r.insert == nil {
		r.insert = map[string]url.Values{}
	}
	r.insert[srv.Addr] = v
	return v, nil
}

// detectInsertSettings keeps an INSERT from changing the rows it loads: since 21.x a server merges
// the rows of each inserted block by a Replacing or Aggregating table's sorting key
// (optimize_on_insert, on by default), so a partition with unmerged versions would load fewer
// rows than it holds. Servers without the setting (18.16) never do that.
func detectInsertSettings(ctx context.Context, s *Server) (url.Values, error) {
	var n uint64
	if err := s.Conn.QueryRow(ctx, "SELECT count() FROM system.settings WHERE name = 'optimize_on_insert'").Scan(&n); err != nil {
		return nil, fmt.Errorf("read the settings of clickhouse %s: %w", s.Addr, err)
	}
	if n == 0 {
		return nil, nil
	}
	return url.Values{"optimize_on_insert": {"0"}}, nil
}

// Close releases the connections.
func (r *Restorer) Close() {
	for _, s := range r.servers {
		s.Close()
	}
}

func (r *Restorer) target(db string) string {
	if t, ok := r.opts.DatabaseMap[db]; ok {
		return t
	}
	return db
}

// Plan builds the restore plan for a snapshot's clickhouse section, refusing targets that
// already hold rows in a partition to be loaded unless Force is set.
func (r *Restorer) Plan(ctx context.Context, m *store.Manifest) (*Plan, error) {
	sec, objects, err := SnapshotSection(m)
	if err != nil {
		return nil, err
	}
	filter := Filter{Databases: []string{"*"}, Include: r.opts.Tables}
	plan := &Plan{Snapshot: m.ID}
	dbs := map[string]bool{}
	var views []Step
	for i := range sec.Tables {
		t := &sec.Tables[i]
		if !filter.matches(t.Database, t.Name) {
			continue
		}
		dst := r.target(t.Database)
		full := dst + "." + t.Name
		if !dbs[dst] {
			dbs[dst] = true
			create, err := r.createDatabase(sec, t.Database, dst)
			if err != nil {
				return nil, fmt.Errorf("plan database %s of snapshot %s: %w", dst, m.ID, err)
			}
			plan.Steps = append(plan.Steps, Step{Action: "create-database", Target: dst, SQL: create})
		}
		create, err := RewriteCreate(t.Create, r.rewrite(t, dst))
		if err != nil {
			return nil, fmt.Errorf("plan %s: %w", t.FullName(), err)
		}
		step := Step{Action: "create-table", Target: full, SQL: create, table: t}
		if t.IsView() {
			step.Action = "create-view"
			views = append(views, step) // after the data, so materialized views never fire twice
			continue
		}
		plan.Steps = append(plan.Steps, step)
		for _, p := range t.Partitions {
			if !r.wantPartition(p.ID) {
				continue
			}
			ref, ok := objects[p.Object]
			if !ok {
				return nil, fmt.Errorf("snapshot %s lists partition %s of %s but not its object %s; run 'tracevault verify %s'", m.ID, p.ID, t.FullName(), p.Object, m.ID)
			}
			format := p.format()
			replica := r.loadReplica(t, p)
			if replica == "" {
				return nil, fmt.Errorf("restore %s partition %s: replica %s it was taken from is not reachable, and a local table's rows belong to it", t.FullName(), p.ID, p.Replica)
			}
			if format == FormatPartsTar {
				if replica, err = r.localLoadReplica(ctx, t, p, replica); err != nil {
					return nil, err
				}
			}
			plan.Steps = append(plan.Steps, Step{Action: "load-partition", Target: full, Replica: replica, Partition: p.ID,
				Object: ref.ID, Rows: p.Rows, Bytes: ref.RawSize, Format: format, ref: ref, table: t})
		}
	}
	plan.Steps = append(plan.Steps, views...)
	if r.opts.WholeCluster {
		if plan, err = r.planCluster(ctx, plan); err != nil {
			return nil, err
		}
	}
	if !r.opts.Force {
		if err := r.refuseNonEmpty(ctx, plan); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// createDatabase is the statement that creates a restored table's database. In place, on a
// server with database UUIDs, an Atomic database gets its recorded UUID back; under
// --database-map the copy gets a fresh one on purpose, as its tables do, since the original may
// still hold that UUID.
func (r *Restorer) createDatabase(sec *Section, src, dst string) (string, error) {
	head := "CREATE DATABASE IF NOT EXISTS " + QuoteIdent(dst)
	if src != dst || !r.first.Caps.TableUUIDs {
		return head + r.onCluster(), nil
	}
	for _, d := range sec.Databases {
		if d.Name != src || d.Engine != "Atomic" {
			continue
		}
		// The UUID comes from the manifest, which is not trusted: only a well-formed one goes
		// into SQL.
		if !wellFormedUUID(d.UUID) {
			return "", fmt.Errorf("the snapshot records database %s with UUID %q, which is not a UUID: the manifest is damaged or forged; run 'tracevault verify'", src, d.UUID)
		}
		return fmt.Sprintf("%s UUID '%s'%s ENGINE = Atomic", head, d.UUID, r.onCluster()), nil
	}
	return head + r.onCluster(), nil
}

func (r *Restorer) onCluster() string {
	if r.opts.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + QuoteIdent(r.opts.Cluster)
}

func (r *Restorer) rewrite(t *TableRecord, dst string) Rewrite {
	rw := Rewrite{Database: dst, Cluster: r.opts.Cluster, DBMap: r.opts.DatabaseMap}
	if dst != t.Database {
		src := t.Database
		rw.ZKPathMap = func(p string) string { return MapZooKeeperPath(p, src, dst) }
	} else if r.first.Caps.TableUUIDs {
		rw.UUID = t.UUID // same UUID, same default replication path: the table rejoins its group
	}
	return rw
}

func (r *Restorer) wantPartition(id string) bool {
	if len(r.opts.Partitions) == 0 {
		return true
	}
	for _, p := range r.opts.Partitions {
		if p == id {
			return true
		}
	}
	return false
}

// loadReplica picks where a partition is loaded: any reachable replica for a replicated table
// (replication copies it to the others), the recorded replica for a local one.
func (r *Restorer) loadReplica(t *TableRecord, p PartitionRecord) string {
	if !t.Replicated() {
		if _, ok := r.servers[p.Replica]; ok {
			return p.Replica
		}
		return ""
	}
	if _, ok := r.servers[p.Replica]; ok {
		return p.Replica
	}
	return r.first.Addr
}

// localLoadReplica keeps the chosen replica for an object of frozen parts if its data path is
// on this host, or for a replicated table moves to one that is.
func (r *Restorer) localLoadReplica(ctx context.Context, t *TableRecord, p PartitionRecord, chosen string) (string, error) {
	_, err := r.local.root(ctx, r.servers[chosen])
	if err == nil {
		return chosen, nil
	}
	if t.Replicated() {
		for addr, srv := range r.servers {
			if _, e := r.local.root(ctx, srv); e == nil {
				return addr, nil
			}
		}
	}
	return "", fmt.Errorf("restore %s partition %s: its object holds frozen parts, which load only into a replica whose data path is on this host: %w", t.FullName(), p.ID, err)
}

func (r *Restorer) refuseNonEmpty(ctx context.Context, plan *Plan) error {
	type load struct {
		partitions int
		rows       uint64
	}
	busy := map[string]*load{}
	var order []string
	seen := map[string]bool{}
	for _, s := range plan.Steps {
		if s.Action != "load-partition" || seen[s.Target+s.Partition+s.Replica] {
			continue
		}
		seen[s.Target+s.Partition+s.Replica] = true
		db, table, _ := strings.Cut(s.Target, ".")
		rows, err := partitionRowCount(ctx, r.servers[s.Replica], db, table, s.Partition)
		if err != nil {
			return fmt.Errorf("check target: %w", err)
		}
		if rows > 0 {
			if busy[s.Target] == nil {
				busy[s.Target] = &load{}
				order = append(order, s.Target)
			}
			busy[s.Target].partitions++
			busy[s.Target].rows += rows
		}
	}
	if len(busy) == 0 {
		return nil
	}
	var parts []string
	for _, t := range order {
		parts = append(parts, fmt.Sprintf("%s (%d partitions, %d rows)", t, busy[t].partitions, busy[t].rows))
	}
	return fmt.Errorf("the target already holds rows in partitions this restore would replace: %s; pass --replace to replace them atomically (REPLACE PARTITION), or --database-map SRC:DST to restore next to them", strings.Join(parts, ", "))
}

// Progress is told about each step as it finishes.
type Progress func(done, total int, s Step)

// Execute runs a plan: DDL on the cluster, each partition through a staging table and an atomic
// REPLACE PARTITION, views last, then waits for replication and checks row counts everywhere.
// Every step is idempotent, so rerunning after an interruption is safe.
func (r *Restorer) Execute(ctx context.Context, repo *store.Repository, plan *Plan, progress Progress) error {
	// A Replacing or Aggregating table may legitimately lose rows to a merge right after the
	// load, which would make the row-count check below fail on a correct restore.
	defer r.setMerges(context.WithoutCancel(ctx), plan, "START")
	for i, s := range plan.Steps {
		var err error
		switch s.Action {
		case "create-database", "create-table", "create-view":
			err = r.first.Conn.Exec(ctx, s.SQL)
		case "restore-metadata":
			err = r.restoreMetadata(ctx, s)
		case "drop-registration":
			err = dropRegistration(ctx, r.opts.ZooKeeper, s.ZooKeeperPath)
		case "drop-group":
			err = dropGroup(ctx, r.opts.ZooKeeper, s.ZooKeeperPath)
		case "load-partition":
			err = r.loadPartition(ctx, repo, s)
		}
		if err != nil {
			return fmt.Errorf("restore step %d/%d (%s %s %s): %w", i+1, len(plan.Steps), s.Action, s.Target, s.Partition, err)
		}
		if s.Action == "create-table" {
			r.setMerges(ctx, &Plan{Steps: []Step{s}}, "STOP")
		}
		if progress != nil {
			progress(i+1, len(plan.Steps), s)
		}
	}
	r.dropStaging(ctx, plan)
	return r.verify(ctx, plan)
}

// setMerges stops or starts background merges of the plan's tables on every reachable replica.
func (r *Restorer) setMerges(ctx context.Context, plan *Plan, verb string) {
	for _, s := range plan.Steps {
		if s.Action != "create-table" || !s.table.HasData() {
			continue
		}
		db, table, _ := strings.Cut(s.Target, ".")
		for _, srv := range r.servers {
			if err := srv.Conn.Exec(ctx, fmt.Sprintf("SYSTEM %s MERGES %s.%s", verb, QuoteIdent(db), QuoteIdent(table))); err != nil {
				r.opts.Log.Debug("could not change merges", "verb", verb, "table", s.Target, "replica", srv.Addr, "err", err)
			}
		}
	}
}

func stagingName(table string) string { return "__tracevault_staging_" + table }

func (r *Restorer) loadPartition(ctx context.Context, repo *store.Repository, s Step) error {
	srv := r.servers[s.Replica]
	db, table, _ := strings.Cut(s.Target, ".")
	staging := stagingName(table)
	create, err := RewriteCreate(s.table.Create, Rewrite{Database: db, Table: staging, DBMap: r.opts.DatabaseMap, Staging: true})
	if err != nil {
		return err
	}
	stagingFull := QuoteIdent(db) + "." + QuoteIdent(staging)
	// Merges stay off in the staging twin: a Replacing merge there would drop duplicates
	// before the row check below.
	for _, sql := range []string{create, "SYSTEM STOP MERGES " + stagingFull, "ALTER TABLE " + stagingFull + " DROP PARTITION ID " + QuoteString(s.Partition)} {
		if err := srv.Conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("prepare staging table %s on %s: %w", stagingFull, srv.Addr, err)
		}
	}
	obj, err := repo.OpenObject(ctx, s.ref)
	if err != nil {
		return err
	}
	defer obj.Close()
	// The format comes from the snapshot's record, so restore-replica's steps load right too.
	if s.table.partitionFormat(s.Partition) == FormatPartsTar {
		if err := r.attachParts(ctx, srv, db, staging, s.Partition, obj); err != nil {
			return fmt.Errorf("load object %s into %s: %w", s.ref.Name(), stagingFull, err)
		}
	} else {
		if r.httpOf[srv.Addr] == "" {
			return fmt.Errorf("load object %s into %s: native objects load through the HTTP interface: set [clickhouse] http_addresses", s.ref.Name(), stagingFull)
		}
		settings, err := r.insertSettings(ctx, srv)
		if err != nil {
			return err
		}
		h := &HTTP{Addr: r.httpOf[srv.Addr], User: r.opts.Conn.User, Password: r.opts.Conn.Password, Settings: settings}
		if err := h.Exec(ctx, "INSERT INTO "+stagingFull+" FORMAT Native", obj); err != nil {
			return fmt.Errorf("load object %s into %s: %w", s.ref.Name(), stagingFull, err)
		}
	}
	// The check comes before the swap: a partition whose object does not hold the recorded
	// rows must leave the target as it was.
	staged, err := partitionRowCount(ctx, srv, db, staging, s.Partition)
	if err != nil {
		return err
	}
	if staged != s.Rows {
		return fmt.Errorf("object %s loaded %d rows into %s partition %s, the snapshot records %d; the target was not changed: run 'tracevault verify --read-data' on the snapshot", s.ref.Name(), staged, stagingFull, s.Partition, s.Rows)
	}
	replace := fmt.Sprintf("ALTER TABLE %s.%s REPLACE PARTITION ID %s FROM %s", QuoteIdent(db), QuoteIdent(table), QuoteString(s.Partition), stagingFull)
	if err := srv.Conn.Exec(ctx, replace); err != nil {
		return fmt.Errorf("replace partition on %s: %w", srv.Addr, err)
	}
	return nil
}

// attachParts unpacks an object of frozen parts into the staging table's detached/ directory,
// owned like the table's own directory, and attaches the partition. The staging table was
// created from the recorded CREATE, so the parts' columns match it.
func (r *Restorer) attachParts(ctx context.Context, srv *Server, db, staging, partition string, obj io.Reader) error {
	root, err := r.local.root(ctx, srv)
	if err != nil {
		return err
	}
	dataPath, err := tableDataPath(ctx, srv, db, staging)
	if err != nil {
		return err
	}
	dir := root.path(dataPath)
	uid, gid, err := ownerOf(dir)
	if err != nil {
		return fmt.Errorf("staging table directory on %s: %w", srv.Addr, err)
	}
	// ATTACH PARTITION takes every detached part of the partition, so parts left by an
	// interrupted attempt must go; the staging table is tracevault's own.
	detached := filepath.Join(dir, "detached")
	if err := os.RemoveAll(detached); err != nil {
		return fmt.Errorf("clear %s: %w", detached, err)
	}
	if err := os.MkdirAll(detached, 0o750); err != nil {
		return err
	}
	if err := os.Lchown(detached, uid, gid); err != nil {
		return fmt.Errorf("give %s to the server's user: %w", detached, err)
	}
	if _, err := extractPartsTar(obj, detached, uid, gid); err != nil {
		return err
	}
	attach := fmt.Sprintf("ALTER TABLE %s.%s ATTACH PARTITION ID %s", QuoteIdent(db), QuoteIdent(staging), QuoteString(partition))
	if err := srv.Conn.Exec(ctx, attach); err != nil {
		return fmt.Errorf("attach partition %s of %s.%s on %s: %w", partition, db, staging, srv.Addr, err)
	}
	return nil
}

func (r *Restorer) dropStaging(ctx context.Context, plan *Plan) {
	seen := map[string]bool{}
	for _, s := range plan.Steps {
		if s.Action != "load-partition" || seen[s.Replica+s.Target] {
			continue
		}
		seen[s.Replica+s.Target] = true
		db, table, _ := strings.Cut(s.Target, ".")
		if err := r.servers[s.Replica].Conn.Exec(ctx, "DROP TABLE IF EXISTS "+QuoteIdent(db)+"."+QuoteIdent(stagingName(table))); err != nil {
			r.opts.Log.Warn("could not drop staging table", "table", s.Target, "replica", s.Replica, "err", err)
		}
	}
}

// verify waits until every reachable replica has replicated the loaded partitions and checks
// each partition's row count against the snapshot.
func (r *Restorer) verify(ctx context.Context, plan *Plan) error {
	for _, s := range plan.Steps {
		if s.Action != "load-partition" {
			continue
		}
		db, table, _ := strings.Cut(s.Target, ".")
		replicas := []string{s.Replica}
		if s.table.Replicated() {
			replicas = nil
			for addr := range r.servers {
				replicas = append(replicas, addr)
			}
		}
		for _, addr := range replicas {
			srv := r.servers[addr]
			if s.table.Replicated() {
				syncCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
				err := srv.Conn.Exec(syncCtx, "SYSTEM SYNC REPLICA "+QuoteIdent(db)+"."+QuoteIdent(table))
				cancel()
				if err != nil {
					return fmt.Errorf("wait for %s to replicate %s: %w", addr, s.Target, err)
				}
			}
			rows, err := partitionRowCount(ctx, srv, db, table, s.Partition)
			if err != nil {
				return err
			}
			if rows != s.Rows {
				return fmt.Errorf("after restore %s partition %s has %d rows on %s, the snapshot has %d", s.Target, s.Partition, rows, addr, s.Rows)
			}
		}
	}
	return nil
}

// partitionRowCount is the rows of a partition's active parts on one replica.
func partitionRowCount(ctx context.Context, srv *Server, db, table, partition string) (uint64, error) {
	var rows uint64
	if err := srv.Conn.QueryRow(ctx, "SELECT sum(rows) FROM system.parts WHERE database = ? AND table = ? AND partition_id = ? AND active", db, table, partition).Scan(&rows); err != nil {
		return 0, fmt.Errorf("count %s.%s partition %s on %s: %w", db, table, partition, srv.Addr, err)
	}
	return rows, nil
}

// WritePlan prints a plan for --dry-run.
func WritePlan(w io.Writer, p *Plan) {
	var rows uint64
	var bytes int64
	for _, s := range p.Steps {
		switch s.Action {
		case "load-partition":
			how := ""
			if s.Format == FormatPartsTar {
				how = " (frozen parts, attached)"
			}
			fmt.Fprintf(w, "load     %s partition %s on %s: %d rows, %d bytes from object %.12s%s\n", s.Target, s.Partition, s.Replica, s.Rows, s.Bytes, s.Object, how)
			rows += s.Rows
			bytes += s.Bytes
		case "drop-registration", "drop-group":
			fmt.Fprintf(w, "%-8s %s: remove %s from zookeeper\n", s.Action, s.Target, s.ZooKeeperPath)
		default:
			fmt.Fprintf(w, "%-8s %s\n", strings.TrimPrefix(s.Action, "create-"), s.Target)
		}
	}
	fmt.Fprintf(w, "plan: %d steps, %d rows, %d bytes from snapshot %s\n", len(p.Steps), rows, bytes, p.Snapshot)
}
