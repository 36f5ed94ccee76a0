package clickhouse

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// Table is one object of a database as a backup records it.
type Table struct {
	Database string `json:"database"`
	Name     string `json:"name"`
	Engine   string `json:"engine"`
	// Create is SHOW CREATE TABLE: what restore replays (with ON CLUSTER added when needed).
	Create string `json:"create"`
	UUID   string `json:"uuid,omitempty"`
	// ZooKeeperPath and ReplicaName identify a replicated table's replication group.
	ZooKeeperPath string `json:"zookeeper_path,omitempty"`
	ReplicaName   string `json:"replica_name,omitempty"`
	// DependsOn lists "db.table" objects that must exist before this one: a view's sources, a
	// materialized view's source and target.
	DependsOn []string `json:"depends_on,omitempty"`

	// incarnation tells a replicated table from one of the same name dropped and re-created:
	// the creation zxid of its replication group's node, which the last replica's DROP removes.
	// It is the same on every replica; 18.16 has no table UUID to tell them apart.
	incarnation string
}

// FullName is "db.table".
func (t Table) FullName() string { return t.Database + "." + t.Name }

// HasData reports whether the table stores parts: the MergeTree family. Views hold no data, and
// a materialized view's data lives in its target (or .inner) table, backed up as a table itself.
func (t Table) HasData() bool { return strings.HasSuffix(t.Engine, "MergeTree") }

// KeepsRowsOutsideParts reports whether the table stores rows a backup leaves out: the Log
// engines (golang-migrate's default TinyLog schema_migrations on a single server) and the
// in-memory ones hold rows but no parts, and only parts are exported.
func (t Table) KeepsRowsOutsideParts() bool {
	switch t.Engine {
	case "TinyLog", "Log", "StripeLog", "Memory", "Set", "Join":
		return true
	}
	return false
}

// IsView reports whether restore must create it after the tables it reads from.
func (t Table) IsView() bool { return t.Engine == "View" || t.Engine == "MaterializedView" }

// Replicated reports whether the table replicates through ZooKeeper.
func (t Table) Replicated() bool { return strings.HasPrefix(t.Engine, "Replicated") }

// Filter selects what to back up.
type Filter struct {
	Databases []string // globs
	Include   []string // "db.table" globs
	Exclude   []string // "db.table" globs
}

var systemDatabases = map[string]bool{"system": true, "information_schema": true, "INFORMATION_SCHEMA": true}

// Matches says whether the filter selects db.table; a system database never is.
func (f Filter) Matches(db, table string) bool {
	if systemDatabases[db] || !anyMatch(f.Databases, db) {
		return false
	}
	full := db + "." + table
	include := f.Include
	if len(include) == 0 {
		include = []string{"*.*"}
	}
	return anyMatch(include, full) && !anyMatch(f.Exclude, full)
}

func anyMatch(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

// Databases lists a server's databases by name with their engines and, where the server has
// database UUIDs and the database one (Atomic), their UUIDs.
func Databases(ctx context.Context, s *Server) ([]DatabaseRecord, error) {
	uuidExpr := "''"
	if s.Caps.DatabaseUUIDs {
		uuidExpr = "toString(uuid)"
	}
	rows, err := s.Conn.Query(ctx, "SELECT name, engine, "+uuidExpr+" FROM system.databases ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list databases on %s: %w", s.Addr, err)
	}
	defer rows.Close()
	var out []DatabaseRecord
	for rows.Next() {
		var d DatabaseRecord
		if err := rows.Scan(&d.Name, &d.Engine, &d.UUID); err != nil {
			return nil, fmt.Errorf("list databases on %s: %w", s.Addr, err)
		}
		if d.UUID == zeroUUID {
			d.UUID = ""
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list databases on %s: %w", s.Addr, err)
	}
	return out, nil
}

// Discover lists the selected tables of a server in restore order.
func Discover(ctx context.Context, s *Server, f Filter) ([]Table, error) {
	uuidExpr := "''"
	if s.Caps.TableUUIDs {
		uuidExpr = "toString(uuid)"
	}
	rows, err := s.Conn.Query(ctx, "SELECT database, name, engine, "+uuidExpr+" FROM system.tables WHERE NOT is_temporary ORDER BY database, name")
	if err != nil {
		return nil, fmt.Errorf("list tables on %s: %w", s.Addr, err)
	}
	var tables []Table
	for rows.Next() {
		var t Table
		if err := rows.Scan(&t.Database, &t.Name, &t.Engine, &t.UUID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables on %s: %w", s.Addr, err)
		}
		if t.UUID == zeroUUID {
			t.UUID = ""
		}
		if f.Matches(t.Database, t.Name) {
			tables = append(tables, t)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables on %s: %w", s.Addr, err)
	}
	replicas, err := replicaIdentities(ctx, s)
	if err != nil {
		return nil, err
	}
	// A few statements at once: one round trip per table is most of a discovery's time.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range tables {
		t := &tables[i]
		g.Go(func() error {
			if err := s.Conn.QueryRow(gctx, "SHOW CREATE TABLE "+QuoteIdent(t.Database)+"."+QuoteIdent(t.Name)).Scan(&t.Create); err != nil {
				return fmt.Errorf("show create table %s on %s: %w", t.FullName(), s.Addr, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	czxids := map[string]map[string]string{} // parent path → node → czxid, read once per parent
	for i := range tables {
		t := &tables[i]
		if id, ok := replicas[t.FullName()]; ok {
			t.ZooKeeperPath, t.ReplicaName = id[0], id[1]
			p := path.Clean(t.ZooKeeperPath)
			parent := path.Dir(p)
			if _, ok := czxids[parent]; !ok {
				czxids[parent] = creations(ctx, s, parent)
			}
			t.incarnation = czxids[parent][path.Base(p)]
		}
		t.DependsOn = dependencies(*t)
	}
	return RestoreOrder(tables), nil
}

func replicaIdentities(ctx context.Context, s *Server) (map[string][2]string, error) {
	rows, err := s.Conn.Query(ctx, "SELECT database, table, zookeeper_path, replica_name FROM system.replicas")
	if err != nil {
		return nil, fmt.Errorf("read system.replicas on %s: %w", s.Addr, err)
	}
	defer rows.Close()
	out := map[string][2]string{}
	for rows.Next() {
		var db, table, zkPath, replica string
		if err := rows.Scan(&db, &table, &zkPath, &replica); err != nil {
			return nil, fmt.Errorf("read system.replicas on %s: %w", s.Addr, err)
		}
		out[db+"."+table] = [2]string{zkPath, replica}
	}
	return out, rows.Err()
}

// creations reads the creation zxid of each child of a ZooKeeper node: a table's incarnation is
// its replication group's node's. Tables usually share a parent, so one read serves them all.
// Without ZooKeeper it is empty: the fingerprint then differs from one taken with it, which
// costs an upload, never a stale reuse.
func creations(ctx context.Context, s *Server, parent string) map[string]string {
	out := map[string]string{}
	rows, err := s.Conn.Query(ctx, "SELECT name, czxid FROM system.zookeeper WHERE path = ?", parent)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var czxid int64
		if rows.Scan(&name, &czxid) != nil {
			return map[string]string{}
		}
		out[name] = strconv.FormatInt(czxid, 10)
	}
	if rows.Err() != nil {
		return map[string]string{}
	}
	return out
}

var (
	mvTarget  = regexp.MustCompile("(?is)^CREATE\\s+MATERIALIZED\\s+VIEW\\s+.*?\\sTO\\s+([`\\w.]+)")
	fromTable = regexp.MustCompile("(?i)\\b(?:FROM|JOIN)\\s+([`\\w]+\\.[`\\w]+)")
)

// ViewTarget is the "db.table" a materialized view writes to (its TO table); empty for other
// objects and for a materialized view that keeps its rows in an inner table.
func (t Table) ViewTarget() string {
	if t.Engine != "MaterializedView" {
		return ""
	}
	if m := mvTarget.FindStringSubmatch(t.Create); m != nil {
		return strings.ReplaceAll(m[1], "`", "")
	}
	return ""
}

// dependencies reads a view's sources (FROM/JOIN db.table) and a materialized view's TO target
// from its create statement; ClickHouse writes them fully qualified in SHOW CREATE.
func dependencies(t Table) []string {
	if !t.IsView() {
		return nil
	}
	seen := map[string]bool{}
	var deps []string
	add := func(name string) {
		name = strings.ReplaceAll(name, "`", "")
		if name != t.FullName() && !seen[name] {
			seen[name] = true
			deps = append(deps, name)
		}
	}
	if m := mvTarget.FindStringSubmatch(t.Create); m != nil {
		add(m[1])
	}
	for _, m := range fromTable.FindAllStringSubmatch(t.Create, -1) {
		add(m[1])
	}
	sort.Strings(deps)
	return deps
}

// RestoreOrder sorts tables so that every object comes after what it depends on: data tables
// first, then views in dependency order. Dependencies outside the set are ignored.
func RestoreOrder(tables []Table) []Table {
	byName := map[string]Table{}
	for _, t := range tables {
		byName[t.FullName()] = t
	}
	sorted := append([]Table(nil), tables...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].IsView() != sorted[j].IsView() {
			return !sorted[i].IsView()
		}
		return sorted[i].FullName() < sorted[j].FullName()
	})
	var out []Table
	done := map[string]bool{}
	var visit func(t Table, stack map[string]bool)
	visit = func(t Table, stack map[string]bool) {
		if done[t.FullName()] || stack[t.FullName()] {
			return
		}
		stack[t.FullName()] = true
		for _, d := range t.DependsOn {
			if dep, ok := byName[d]; ok {
				visit(dep, stack)
			}
		}
		done[t.FullName()] = true
		out = append(out, t)
	}
	for _, t := range sorted {
		visit(t, map[string]bool{})
	}
	return out
}
