package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

// hasComponent reports whether m holds a complete part of source.
func hasComponent(m *store.Manifest, source string) bool {
	c, ok := component(m, source)
	return ok && c.Status == store.StatusComplete
}

// landing is where a drill writes part of its data: a server's data directory.
type landing struct {
	what string // the source
	dir  string // as named on the server; measured only if it is on this host
	need int64
}

// diskCheck refuses a drill that would not fit where it writes: each filesystem on this host that
// holds a data directory of a server the drill restores into must have room for what lands on
// it. A source restored into several directories of one filesystem (replicas on one host) counts
// once: its need, the snapshot's raw bytes, already exceeds what its compressed parts take. Data
// directories on other hosts cannot be measured, and the result says so. (The repository's own
// disk says nothing of this: it is often a separate volume.)
func diskCheck(lands []landing) (string, error) {
	type fsys struct {
		dir        string
		free, need int64
		counted    map[string]bool
	}
	var order []uint64
	byDev := map[uint64]*fsys{}
	var away []string
	for _, l := range lands {
		var st syscall.Statfs_t
		var fi syscall.Stat_t
		if l.dir == "" || syscall.Stat(l.dir, &fi) != nil || syscall.Statfs(l.dir, &st) != nil {
			away = append(away, l.what)
			continue
		}
		dev := uint64(fi.Dev)
		f := byDev[dev]
		if f == nil {
			f = &fsys{dir: l.dir, free: int64(st.Bavail) * int64(st.Bsize), counted: map[string]bool{}}
			byDev[dev] = f
			order = append(order, dev)
		}
		if !f.counted[l.what] {
			f.counted[l.what] = true
			f.need += l.need
		}
	}
	var out []string
	for _, dev := range order {
		f := byDev[dev]
		if f.free < f.need {
			return "", fmt.Errorf("not enough disk for the drill: the filesystem of %s has %s free, the snapshot restores %s onto it; free space or drill on another host",
				f.dir, store.HumanBytes(f.free), store.HumanBytes(f.need))
		}
		out = append(out, fmt.Sprintf("%s: %s free, %s to restore", f.dir, store.HumanBytes(f.free), store.HumanBytes(f.need)))
	}
	if len(away) > 0 {
		out = append(out, fmt.Sprintf("not measured: the data directories of %s are not on this host (or not readable)", strings.Join(slices.Compact(slices.Sorted(slices.Values(away))), ", ")))
	}
	return strings.Join(out, "; "), nil
}

type chDrill struct {
	cfg  *config.Config
	rs   *restore.Restorer
	plan *restore.Plan
	dbs  []string
	dirs []string // the servers' data directories, as named on this host
	log  *slog.Logger
	// content are the partitions' content checksums recorded at backup, by object id.
	content map[string]clickhouse.ContentSum
	// zkScratch are the ZooKeeper nodes the scratch tables' replication paths create under the
	// drill's database segment, deepest first: dropping a table removes its own node only.
	zkScratch []string
}

func planClickHouseDrill(ctx context.Context, cfg *config.Config, m *store.Manifest, log *slog.Logger) (*chDrill, error) {
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		return nil, err
	}
	dbMap := map[string]string{}
	var dbs []string
	for _, t := range sec.Tables {
		if _, ok := dbMap[t.Database]; !ok {
			dbMap[t.Database] = t.Database + drillSuffix
			dbs = append(dbs, t.Database+drillSuffix)
		}
	}
	dirs, err := inspectCH(ctx, cfg, dbs, log)
	if err != nil {
		return nil, err
	}
	rs, err := restore.New(ctx, clickHouseRestoreOptions(cfg.ClickHouse, dbMap, log))
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	plan, err := rs.Plan(ctx, m)
	if err == nil {
		err = plan.RefuseLive(sec)
	}
	if err != nil {
		rs.Close()
		return nil, fmt.Errorf("plan the clickhouse drill of snapshot %s: %w", m.ID, err)
	}
	content := map[string]clickhouse.ContentSum{}
	for _, t := range sec.Tables {
		for _, p := range t.Partitions {
			if p.Content != nil {
				content[p.Object] = *p.Content
			}
		}
	}
	return &chDrill{cfg: cfg, rs: rs, plan: plan, dbs: dbs, log: log, content: content, dirs: dirs,
		zkScratch: scratchZKNodes(sec.Tables, dbMap)}, nil
}

// scratchZKNodes are the replication-path ancestors a drill's scratch tables leave in ZooKeeper:
// for a path moved to the scratch database (/clickhouse/tables/01/default_drill/traces), every
// node from the table's parent up to the scratch database's segment, deepest first. Only nodes
// named after a scratch database are listed, so cleaning them up never touches a live path.
func scratchZKNodes(tables []clickhouse.TableRecord, dbMap map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range tables {
		dst, ok := dbMap[t.Database]
		if t.ZooKeeperPath == "" || !ok || dst == t.Database {
			continue
		}
		p := path.Clean(clickhouse.MapZooKeeperPath(t.ZooKeeperPath, t.Database, dst))
		if !strings.Contains(p+"/", "/"+dst+"/") {
			continue // moved by a suffix on the table's own node, which the drop removes
		}
		for p = path.Dir(p); p != "/" && p != "."; p = path.Dir(p) {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
			if path.Base(p) == dst {
				break
			}
		}
	}
	// Deepest first, so a parent is tried after its children went.
	slices.SortStableFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return out
}

// inspectCH refuses scratch databases that exist before the drill: the drill drops what it
// restored into, so it must be what it created, never a database of the same name that someone
// uses (or a copy kept with --keep, which is dropped by hand). It also returns where each server
// keeps its data, for the disk check: [clickhouse] data_path where set, else the server's path.
func inspectCH(ctx context.Context, cfg *config.Config, dbs []string, log *slog.Logger) ([]string, error) {
	ch := cfg.ClickHouse
	servers, _, err := clickhouse.Connect(ctx, ch.Addresses, ch.HTTPAddresses, ClickHouseConn(ch), log)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	defer closeServers(servers)
	var dirs []string
	for _, s := range servers {
		for _, db := range dbs {
			var n uint64
			if err := s.Conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", db).Scan(&n); err != nil {
				return nil, fmt.Errorf("look for scratch database %s on clickhouse %s: %w", db, s.Addr, err)
			}
			if n > 0 {
				return nil, fmt.Errorf("refusing the drill: scratch database %s already exists on clickhouse %s (kept by drill --keep, or not the drill's); drop it: %s", db, s.Addr, dropScratchSQL(ch.Cluster, db))
			}
		}
		dir := ch.DataPath
		if dir == "" {
			if dir, err = clickhouse.DataPath(ctx, s); err != nil {
				log.Info("the disk check leaves a clickhouse server out", "server", s.Addr, "err", err)
				continue
			}
		}
		dirs = append(dirs, dir)
	}
	return dirs, nil
}

// dropScratchSQL is the statement an operator runs to drop a kept scratch database: on the
// configured cluster, or on every replica when none is configured.
func dropScratchSQL(cluster, db string) string {
	if cluster == "" {
		return "DROP DATABASE " + clickhouse.QuoteIdent(db) + " (on every replica)"
	}
	return "DROP DATABASE " + clickhouse.QuoteIdent(db) + " ON CLUSTER " + clickhouse.QuoteIdent(cluster)
}

func (d *chDrill) close() { d.rs.Close() }

func (d *chDrill) bytes() int64 {
	var n int64
	for _, s := range d.plan.Steps {
		n += s.Bytes
	}
	return n
}

type pgDrill struct {
	dsn  string
	dir  string // the server's data_directory, or "" where the role may not read it
	rs   *postgres.Restorer
	plan *postgres.Plan
}

func planPostgresDrill(ctx context.Context, cfg *config.Config, m *store.Manifest, log *slog.Logger) (*pgDrill, error) {
	sec, err := postgres.ReadSection(m)
	if err != nil {
		return nil, err
	}
	live := sec.Database.Name
	scratch := live + drillSuffix
	pg := cfg.Postgres
	dir, err := inspectPG(ctx, pg.DSN.Reveal(), scratch)
	if err != nil {
		return nil, err
	}
	rs := postgres.NewRestorer(postgresRestoreOptions(pg, scratch, log))
	plan, err := rs.Plan(ctx, m)
	if err == nil && (plan.LoadInto == live || plan.Database == live) {
		err = fmt.Errorf("refusing the scratch restore: it would load database %s, the live one", live)
	}
	if err != nil {
		return nil, fmt.Errorf("plan the postgres drill of snapshot %s: %w", m.ID, err)
	}
	return &pgDrill{dsn: pg.DSN.Reveal(), rs: rs, plan: plan, dir: dir}, nil
}

// inspectPG is inspectCH for the PostgreSQL scratch database; the data directory can be read
// only by superusers and pg_read_all_settings, and is "" otherwise.
func inspectPG(ctx context.Context, dsn, scratch string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("drill: connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", scratch).Scan(&n); err != nil {
		return "", fmt.Errorf("look for scratch database %s on postgres: %w", scratch, err)
	}
	if n > 0 {
		return "", fmt.Errorf("refusing the drill: scratch database %s already exists on postgres (kept by drill --keep, or not the drill's); drop it: DROP DATABASE %s", scratch, postgres.Ident(scratch))
	}
	var dir string
	if conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir) != nil {
		return "", nil
	}
	return dir, nil
}

func (d *pgDrill) bytes() int64 {
	var n int64
	for _, s := range d.plan.Steps {
		n += s.Bytes
	}
	return n
}
