package jobs

// tracevault migrate-cluster: move Langfuse's ClickHouse to another cluster (another version,
// another topology). One plan (which tables, each engine rewritten for the target's
// replication, the schema_migrations version carried over) drives passes: each pass is a
// backup of the source into the repository (incremental: unchanged partitions reuse their
// objects) and a restore of what changed since the last pass into the target, through the
// restore planner with the target's topology (restore.Options.Topology). The cutover pass,
// with ingestion paused, ends with a proof that every target replica holds the source's rows.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// MigrateClusterRequest is one run of `tracevault migrate-cluster`.
type MigrateClusterRequest struct {
	// Target is the --to configuration file: its [clickhouse] (and [zookeeper]) describe the
	// target cluster. The pass state is kept next to it (StatePath).
	Target string
	// FromSnapshot is the snapshot the first pass restores instead of backing up the source.
	FromSnapshot string
	Cutover      bool
	// AllowNonEmpty lets the first pass write into target databases that already hold tables
	// (and a target container that holds blobs).
	AllowNonEmpty bool
	// Only are the sources moved (--only): clickhouse, postgres, blobs; empty, every one the
	// target file names.
	Only []string
}

// StatePath is where the passes of a migration to target are recorded, so that an interrupted
// pass resumes where it stopped and the next pass moves only what changed.
func StatePath(target string) string { return target + ".migrate-state.json" }

// ClusterEnd is one side of a migration as the plan describes it.
type ClusterEnd struct {
	Addresses []string `json:"addresses"`
	Cluster   string   `json:"cluster,omitempty"` // ON CLUSTER name; empty for none
	Version   string   `json:"version"`
}

// MigratedTable is one table and how the target creates it.
type MigratedTable struct {
	Table        string `json:"table"`
	Engine       string `json:"engine"`
	TargetEngine string `json:"target_engine"`
	Create       string `json:"create"` // as the target runs it
}

// MigratedDatabase is one database and the engine the target gives it.
type MigratedDatabase struct {
	Name         string `json:"name"`
	Engine       string `json:"engine"`
	TargetEngine string `json:"target_engine"`
}

// SchemaVersion is a database's golang-migrate schema_migrations state.
type SchemaVersion struct {
	Database string `json:"database"`
	Version  int64  `json:"version"`
	Dirty    bool   `json:"dirty"`
	engine   string // of the source's table
}

// ClusterMigrationPlan is what --dry-run prints and every pass follows.
type ClusterMigrationPlan struct {
	Source           ClusterEnd           `json:"source"`
	Target           ClusterEnd           `json:"target"`
	Topology         *clickhouse.Topology `json:"topology"`
	Databases        []MigratedDatabase   `json:"databases"`
	Tables           []MigratedTable      `json:"tables"`
	SchemaMigrations []SchemaVersion      `json:"schema_migrations,omitempty"`
	Passes           int                  `json:"passes_done"`
	Notes            []string             `json:"notes,omitempty"`
	// Sources are what the migration moves; Moves the plans of those beside ClickHouse.
	Sources []string     `json:"sources"`
	Moves   []SourceMove `json:"moves,omitempty"`
	// Refused are ClickHouse's refusals that depend on what the target holds: every run stops
	// on them before it writes.
	Refused []string `json:"refused,omitempty"`
}

// ClusterMigration is a planned migration, both clusters connected. Close it when done.
type ClusterMigration struct {
	Plan    *ClusterMigrationPlan
	cfg     *config.Config
	target  *config.Config
	req     MigrateClusterRequest
	log     *slog.Logger
	source  []*clickhouse.Server
	targets []*clickhouse.Server
	tables  []clickhouse.Table
	state   *migrationState
	// pgState and blobState record PostgreSQL's and the blobs' passes, when moved.
	pgState, blobState *moveState
	// shared is the run's one backup of the sources its passes back up (backUpOnce).
	shared *store.Manifest
}

// NewClusterMigration loads the target configuration, connects to both clusters and plans the
// migration. Nothing is written; a table the target cannot create, a dirty schema_migrations on
// the source, or a state file of another migration refuse it here.
func NewClusterMigration(ctx context.Context, cfg *config.Config, repo *store.Repository, req MigrateClusterRequest, log *slog.Logger) (*ClusterMigration, error) {
	target, err := config.Load(req.Target)
	if err != nil {
		return nil, usageError{fmt.Errorf("--to: %w", err)}
	}
	sources, err := moveSources(cfg, target, req.Only)
	if err != nil {
		return nil, err
	}
	m := &ClusterMigration{cfg: cfg, target: target, req: req, log: log, Plan: &ClusterMigrationPlan{Sources: sources}}
	if err := m.planClickHouse(ctx, repo); err != nil {
		return nil, err
	}
	if err := m.planMoves(ctx); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// planClickHouse connects to both clusters and plans ClickHouse's move, when it is moved.
func (m *ClusterMigration) planClickHouse(ctx context.Context, repo *store.Repository) error {
	if !slices.Contains(m.Plan.Sources, config.SourceClickHouse) {
		return nil
	}
	cfg, target, req, log := m.cfg, m.target, m.req, m.log
	var err error
	if m.source, err = connectAll(ctx, cfg.ClickHouse, log); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if m.targets, err = connectAll(ctx, target.ClickHouse, log); err != nil {
		m.Close()
		return fmt.Errorf("target: %w", err)
	}
	if m.state, err = loadMigrationState(StatePath(req.Target), cfg.ClickHouse.Addresses, target.ClickHouse.Addresses); err != nil {
		m.Close()
		return err
	}
	if err := m.plan(ctx, repo); err != nil {
		m.Close()
		return err
	}
	return nil
}

// connectAll connects to every server of a [clickhouse]: a migration needs all of them.
func connectAll(ctx context.Context, ch config.ClickHouse, log *slog.Logger) ([]*clickhouse.Server, error) {
	servers, _, err := clickhouse.Connect(ctx, ch.Addresses, ch.HTTPAddresses, ClickHouseConn(ch), log)
	if err != nil {
		return nil, err
	}
	if len(servers) != len(ch.Addresses) {
		closeServers(servers)
		return nil, fmt.Errorf("%d of %d servers of %s answered: a migration needs every one", len(servers), len(ch.Addresses), strings.Join(ch.Addresses, ", "))
	}
	return servers, nil
}

// Close releases both clusters' connections.
func (m *ClusterMigration) Close() {
	closeServers(m.source)
	closeServers(m.targets)
}

// targetReplicated: a target of several servers, or with ZooKeeper, replicates its tables; a
// single server without ZooKeeper keeps them plain and gets no ON CLUSTER.
func targetReplicated(t *config.Config) bool {
	return len(t.ClickHouse.Addresses) > 1 || len(t.ZooKeeper.Servers) > 0
}

func (m *ClusterMigration) plan(ctx context.Context, repo *store.Repository) error {
	tgt := m.targets[0]
	replicated := targetReplicated(m.target)
	macros, err := serverMacros(ctx, tgt)
	if err != nil {
		return err
	}
	topo, err := clickhouse.TopologyFor(replicated, macros)
	if err != nil {
		return fmt.Errorf("target %s: %w", tgt.Addr, err)
	}
	cluster := ""
	if replicated {
		if cluster = m.target.ClickHouse.Cluster; cluster == "" && len(m.targets) > 1 {
			return usageError{fmt.Errorf("the target has %d servers but --to sets no [clickhouse] cluster: its tables are created ON CLUSTER", len(m.targets))}
		}
	}
	p := m.Plan
	p.Source = ClusterEnd{Addresses: m.cfg.ClickHouse.Addresses, Cluster: m.cfg.ClickHouse.Cluster, Version: m.source[0].Caps.Version}
	p.Target = ClusterEnd{Addresses: m.target.ClickHouse.Addresses, Cluster: cluster, Version: tgt.Caps.Version}
	p.Topology, p.Passes = topo, len(m.state.Passes)
	if m.tables, err = m.sourceTables(ctx, repo); err != nil {
		return err
	}
	dbEngines, err := databaseEngines(ctx, m.source[0])
	if err != nil {
		return err
	}
	targetDB := "Ordinary"
	if tgt.Caps.DatabaseUUIDs {
		targetDB = "Atomic"
	}
	seen := map[string]bool{}
	var refused []error
	var records []*clickhouse.TableRecord
	for _, t := range m.tables {
		records = append(records, &clickhouse.TableRecord{Table: t})
	}
	for _, f := range restore.CheckFeatures(records, tgt.Caps) {
		if f.Refuse {
			refused = append(refused, errors.New(f.Message))
		}
	}
	for _, t := range m.tables {
		if !seen[t.Database] {
			seen[t.Database] = true
			p.Databases = append(p.Databases, MigratedDatabase{Name: t.Database, Engine: dbEngines[t.Database], TargetEngine: targetDB})
		}
		if t.HasData() && !t.Replicated() && len(m.source) > 1 {
			refused = append(refused, fmt.Errorf("%s is a local %s table on a source of %d servers: each holds its own rows (shards), which this migration does not merge", t.FullName(), t.Engine, len(m.source)))
		}
		create, err := clickhouse.RewriteCreate(t.Create, clickhouse.Rewrite{Database: t.Database, Cluster: cluster, Topology: topo})
		if err != nil {
			refused = append(refused, fmt.Errorf("%s: %w", t.FullName(), err))
			continue
		}
		p.Tables = append(p.Tables, MigratedTable{Table: t.FullName(), Engine: t.Engine, TargetEngine: clickhouse.EngineOf(create), Create: create})
		if t.Name == "schema_migrations" && (t.HasData() || t.KeepsRowsOutsideParts()) {
			v, err := schemaVersion(ctx, m.source[0], t.Database)
			if err != nil {
				return err
			}
			if v.Dirty {
				refused = append(refused, fmt.Errorf("%s.schema_migrations is dirty at version %d on the source: finish or force that migration ('tracevault migrate force') before moving it", t.Database, v.Version))
			}
			v.engine = t.Engine
			p.SchemaMigrations = append(p.SchemaMigrations, v)
			if t.KeepsRowsOutsideParts() {
				p.Notes = append(p.Notes, fmt.Sprintf("%s.schema_migrations is %s (golang-migrate's single-server default): a backup holds no rows of it, so each pass copies its new rows itself", t.Database, t.Engine))
			}
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("the target cannot take this migration, nothing was written: %w", errors.Join(refused...))
	}
	if len(p.Tables) == 0 {
		return usageError{errors.New("nothing to migrate: the source's [clickhouse] databases and include_tables select no table")}
	}
	if _, ok := clickhouse.CommonContentKind(m.source[0].Caps, tgt.Caps); !ok {
		p.Notes = append(p.Notes, "the cutover proves per-partition row counts only: content checksums need formatRow on both sides")
	}
	return nil
}

// sourceTables are the tables to move: the snapshot's for --from-snapshot, else the source's
// selected tables as they are now.
func (m *ClusterMigration) sourceTables(ctx context.Context, repo *store.Repository) ([]clickhouse.Table, error) {
	if m.req.FromSnapshot != "" {
		snap, err := FindSnapshot(ctx, repo, m.req.FromSnapshot)
		if err != nil {
			return nil, err
		}
		sec, _, err := clickhouse.SnapshotSection(snap)
		if err != nil {
			return nil, err
		}
		var out []clickhouse.Table
		for _, t := range sec.Tables {
			out = append(out, t.Table)
		}
		return out, nil
	}
	ch := m.cfg.ClickHouse
	return clickhouse.Discover(ctx, m.source[0], clickhouse.Filter{Databases: ch.Databases, Include: ch.IncludeTables, Exclude: ch.ExcludeTables})
}

func serverMacros(ctx context.Context, s *clickhouse.Server) (map[string]string, error) {
	rows, err := s.Conn.Query(ctx, "SELECT macro, substitution FROM system.macros")
	if err != nil {
		return nil, fmt.Errorf("read the macros of %s: %w", s.Addr, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("read the macros of %s: %w", s.Addr, err)
		}
		out[k] = v
	}
	return out, rows.Err()
}

func databaseEngines(ctx context.Context, s *clickhouse.Server) (map[string]string, error) {
	dbs, err := clickhouse.Databases(ctx, s)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, d := range dbs {
		out[d.Name] = d.Engine
	}
	return out, nil
}

// schemaVersion reads db's schema_migrations as golang-migrate does: the row with the highest
// sequence.
func schemaVersion(ctx context.Context, s *clickhouse.Server, db string) (SchemaVersion, error) {
	v := SchemaVersion{Database: db}
	var dirty uint8
	err := s.Conn.QueryRow(ctx, "SELECT version, dirty FROM "+clickhouse.QuoteIdent(db)+".schema_migrations ORDER BY sequence DESC LIMIT 1").Scan(&v.Version, &dirty)
	if err != nil && !strings.Contains(err.Error(), "no rows") {
		return v, fmt.Errorf("read %s.schema_migrations on %s: %w", db, s.Addr, err)
	}
	v.Dirty = dirty == 1
	return v, nil
}

// PassReport is what one pass did and how far behind the target was.
type PassReport struct {
	Pass     int       `json:"pass"`
	Cutover  bool      `json:"cutover"`
	Snapshot string    `json:"snapshot"`
	Start    time.Time `json:"start"`
	Duration Duration  `json:"duration"`
	// BehindPartitions and BehindRows are what had changed on the source since the last pass
	// (as of this pass's snapshot): what the pass moved.
	BehindPartitions int      `json:"behind_partitions"`
	BehindRows       uint64   `json:"behind_rows"`
	Dropped          []string `json:"dropped_partitions,omitempty"` // db.table/partition gone from the source
	// Proof is the cutover's comparison of every target replica with the source.
	Proof *MigrationProof `json:"proof,omitempty"`
}

// Duration marshals as a Go duration string.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).Round(time.Millisecond).String() }

// MarshalText writes the duration as "1m2.5s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// MigrationProof says every target replica holds every source partition's rows.
type MigrationProof struct {
	Partitions int  `json:"partitions"`
	Replicas   int  `json:"replicas"`
	Rows       bool `json:"rows_equal"`
	Content    bool `json:"content_checksums"` // compared as well (formatRow on both sides)
}

// migrationState is the record of a migration's passes, next to its --to file.
type migrationState struct {
	path   string
	mu     sync.Mutex
	Source []string `json:"source"`
	Target []string `json:"target"`
	// Started is set before the first pass writes to the target.
	Started bool `json:"started"`
	// Loaded is, per db.table and partition, the object the target holds.
	Loaded map[string]map[string]string `json:"loaded"`
	Passes []PassReport                 `json:"passes"`
}

// Pass runs one pass: a backup of the source (or the --from-snapshot snapshot, first), then a
// restore into the target of every partition whose object differs from the one it holds, and
// of the tables it lacks; partitions gone from the source are dropped. The state is saved after
// every partition, so an interrupted pass resumes. A cutover pass then proves the target.
func (m *ClusterMigration) Pass(ctx context.Context, repo *store.Repository) (*PassReport, error) {
	rep := &PassReport{Pass: len(m.state.Passes) + 1, Cutover: m.req.Cutover, Start: time.Now().UTC()}
	if !m.state.Started && !m.req.AllowNonEmpty {
		if err := m.refuseNonEmpty(ctx); err != nil {
			return nil, err
		}
	}
	snap, err := m.snapshot(ctx, repo)
	if err != nil {
		return nil, err
	}
	rep.Snapshot = snap.ID
	opts := clickHouseRestoreOptions(m.target.ClickHouse, nil, m.log)
	opts.Cluster, opts.Topology, opts.Replace = m.Plan.Target.Cluster, m.Plan.Topology, true
	rs, err := restore.New(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	defer rs.Close()
	plan, err := rs.Plan(ctx, snap)
	if err != nil {
		return nil, fmt.Errorf("plan pass %d into the target: %w", rep.Pass, err)
	}
	plan.Steps = m.changedSteps(plan.Steps, rep)
	rep.Dropped = m.gone(plan, snap)
	// From here the target holds what this migration writes: a rerun after an interruption
	// finds its own tables there, and must not take them for someone else's.
	m.state.Started = true
	if err := m.state.save(); err != nil {
		return nil, err
	}
	m.log.Info("migration pass", "pass", rep.Pass, "snapshot", snap.ID, "behind_partitions", rep.BehindPartitions, "behind_rows", rep.BehindRows, "dropped", len(rep.Dropped))
	err = rs.Execute(ctx, repo, plan, func(done, total int, s restore.Step) {
		if s.Action == restore.ActionLoadPartition {
			m.log.Info("moved partition", "step", fmt.Sprintf("%d/%d", done, total), "table", s.Target, "partition", s.Partition, "rows", s.Rows)
			if err := m.state.loaded(s.Target, s.Partition, s.Object); err != nil {
				// The next pass moves this partition again: slower, not wrong.
				m.log.Warn("could not record a moved partition", "table", s.Target, "partition", s.Partition, "err", err)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("pass %d (resumable: run it again): %w", rep.Pass, err)
	}
	if err := m.drop(ctx, rep.Dropped); err != nil {
		return nil, err
	}
	if err := m.carryLogMigrations(ctx); err != nil {
		return nil, err
	}
	if m.req.Cutover {
		if rep.Proof, err = m.prove(ctx, snap); err != nil {
			return nil, fmt.Errorf("cutover pass %d moved every change but the target does not equal the source: %w", rep.Pass, err)
		}
	}
	rep.Duration = Duration(time.Since(rep.Start))
	m.state.Passes = append(m.state.Passes, *rep)
	return rep, m.state.save()
}

// refuseNonEmpty refuses a first pass into target databases that already hold tables: the
// target is meant to be new, and a table of the same name would be written over.
func (m *ClusterMigration) refuseNonEmpty(ctx context.Context) error {
	var held []string
	for _, d := range m.Plan.Databases {
		for _, s := range m.targets {
			var n uint64
			if err := s.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ?", d.Name).Scan(&n); err != nil {
				return fmt.Errorf("check target %s for database %s: %w", s.Addr, d.Name, err)
			}
			if n > 0 {
				held = append(held, fmt.Sprintf("%s on %s (%d tables)", d.Name, s.Addr, n))
			}
		}
	}
	if len(held) > 0 {
		return usageError{fmt.Errorf("the target already holds %s: migrate into an empty target, or pass --allow-nonempty to write into these databases (same-named tables get the source's partitions)", strings.Join(held, ", "))}
	}
	return nil
}

// snapshot is the pass's snapshot of the source: --from-snapshot for the first pass, else a
// new backup of ClickHouse alone (incremental, so only changed partitions are exported).
func (m *ClusterMigration) snapshot(ctx context.Context, repo *store.Repository) (*store.Manifest, error) {
	if m.req.FromSnapshot != "" && len(m.state.Passes) == 0 {
		return FindSnapshot(ctx, repo, m.req.FromSnapshot)
	}
	return m.sourceSnapshot(ctx, repo, config.SourceClickHouse)
}

// changedSteps keeps the plan's DDL (idempotent) and the loads whose object the target does not
// hold yet, counting them as how far behind the target is.
func (m *ClusterMigration) changedSteps(steps []restore.Step, rep *PassReport) []restore.Step {
	var out []restore.Step
	for _, s := range steps {
		if s.Action == restore.ActionLoadPartition {
			if m.state.holds(s.Target, s.Partition, s.Object) {
				continue
			}
			rep.BehindPartitions++
			rep.BehindRows += s.Rows
		}
		out = append(out, s)
	}
	return out
}

// gone lists the partitions the target holds from an earlier pass that the snapshot no longer
// has (dropped or merged away on the source), as db.table/partition.
func (m *ClusterMigration) gone(plan *restore.Plan, snap *store.Manifest) []string {
	sec, _, err := clickhouse.SnapshotSection(snap)
	if err != nil {
		return nil
	}
	have := map[string]bool{}
	for _, t := range sec.Tables {
		for _, p := range t.Partitions {
			have[t.FullName()+"/"+p.ID] = true
		}
	}
	var out []string
	for _, table := range slices.Sorted(maps.Keys(m.state.Loaded)) {
		for _, p := range slices.Sorted(maps.Keys(m.state.Loaded[table])) {
			if !have[table+"/"+p] {
				out = append(out, table+"/"+p)
			}
		}
	}
	return out
}

// drop removes partitions gone from the source, on the target's first server (replication
// carries a replicated table's drop to the others; a plain target is that one server).
func (m *ClusterMigration) drop(ctx context.Context, gone []string) error {
	for _, g := range gone {
		table, p, _ := strings.Cut(g, "/")
		db, name, _ := strings.Cut(table, ".")
		q := fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION ID %s", clickhouse.QuoteIdent(db), clickhouse.QuoteIdent(name), clickhouse.QuoteString(p))
		if err := m.targets[0].Conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("drop partition %s of %s on the target, gone from the source: %w", p, table, err)
		}
		if err := m.state.loaded(table, p, ""); err != nil {
			return err
		}
	}
	return nil
}

// prove compares, for every table the snapshot holds rows of, each partition's rows on every
// target server with the source's now (ingestion paused), and their content checksums where
// both sides have formatRow; then the schema_migrations versions.
func (m *ClusterMigration) prove(ctx context.Context, snap *store.Manifest) (*MigrationProof, error) {
	sec, _, err := clickhouse.SnapshotSection(snap)
	if err != nil {
		return nil, err
	}
	src := m.source[0]
	_, sums := src.Caps.ContentKind()
	proof := &MigrationProof{Replicas: len(m.targets), Rows: true, Content: sums}
	var diffs []string
	for _, t := range sec.Tables {
		if !t.HasData() || t.RowsNotKept != "" {
			continue
		}
		want, err := clickhouse.PartitionRows(ctx, src, t.Database, t.Name)
		if err != nil {
			return nil, fmt.Errorf("count the source's rows: %w", err)
		}
		for _, tgt := range m.targets {
			kind, common := clickhouse.CommonContentKind(src.Caps, tgt.Caps)
			content := proof.Content && common
			proof.Content = content
			if m.Plan.Topology.Replicated {
				// Not SYSTEM SYNC REPLICA, which waits for merges too (see WaitFetched).
				if err := clickhouse.WaitFetched(ctx, tgt, t.Database, t.Name, clickhouse.FetchStall, nil); err != nil {
					return nil, err
				}
			}
			got, err := clickhouse.PartitionRows(ctx, tgt, t.Database, t.Name)
			if err != nil {
				return nil, fmt.Errorf("count the target's rows: %w", err)
			}
			for _, id := range slices.Sorted(maps.Keys(union(want, got))) {
				if want[id] != got[id] {
					if same, err := sameAfterMerges(ctx, src, tgt, t.Table, id); err != nil || same {
						if err != nil {
							return nil, err
						}
						continue
					}
					diffs = append(diffs, fmt.Sprintf("%s partition %s: %d rows on %s, %d on the source", t.FullName(), id, got[id], tgt.Addr, want[id]))
					continue
				}
				if !content {
					continue
				}
				a, err := clickhouse.PartitionContent(ctx, src, t.Database, t.Name, id, nil, kind)
				if err != nil {
					return nil, err
				}
				b, err := clickhouse.PartitionContent(ctx, tgt, t.Database, t.Name, id, nil, kind)
				if err != nil {
					return nil, err
				}
				if a != b {
					diffs = append(diffs, fmt.Sprintf("%s partition %s: content checksum %d on %s, %d on the source", t.FullName(), id, b.Sum, tgt.Addr, a.Sum))
				}
			}
			if tgt == m.targets[0] {
				proof.Partitions += len(want)
			}
		}
	}
	for _, v := range m.Plan.SchemaMigrations {
		now, err := schemaVersion(ctx, src, v.Database)
		if err != nil {
			return nil, err
		}
		for _, tgt := range m.targets {
			got, err := schemaVersion(ctx, tgt, v.Database)
			if err != nil {
				return nil, err
			}
			if got.Version != now.Version || got.Dirty != now.Dirty || got.Dirty {
				diffs = append(diffs, fmt.Sprintf("%s.schema_migrations: version %d dirty=%t on %s, %d dirty=%t on the source", v.Database, got.Version, got.Dirty, tgt.Addr, now.Version, now.Dirty))
			}
		}
	}
	if len(diffs) > 0 {
		proof.Rows = false
		return proof, fmt.Errorf("%d differences (was ingestion paused?): %s", len(diffs), strings.Join(diffs[:min(10, len(diffs))], "; "))
	}
	return proof, nil
}

// sameAfterMerges says whether a partition whose row counts differ reads the same under FINAL
// on both sides: a Replacing, Aggregating, Summing or Collapsing table's background merges go
// on after ingestion is paused, on the source as on the target, and fold rows its queries see
// as one. A plain MergeTree's merges keep every row, so its counts stand.
func sameAfterMerges(ctx context.Context, src, tgt *clickhouse.Server, t clickhouse.Table, partition string) (bool, error) {
	if strings.TrimPrefix(t.Engine, "Replicated") == "MergeTree" {
		return false, nil
	}
	q := "SELECT count() FROM " + clickhouse.QuoteIdent(t.Database) + "." + clickhouse.QuoteIdent(t.Name) + " FINAL WHERE _partition_id = ?"
	var n [2]uint64
	for i, s := range []*clickhouse.Server{src, tgt} {
		if err := s.Conn.QueryRow(ctx, q, partition).Scan(&n[i]); err != nil {
			return false, fmt.Errorf("count %s partition %s as FINAL reads it on %s: %w", t.FullName(), partition, s.Addr, err)
		}
	}
	return n[0] == n[1], nil
}

func union(a, b map[string]uint64) map[string]uint64 {
	out := maps.Clone(a)
	for k, v := range b {
		out[k] = v
	}
	return out
}

// Write prints the plan for --dry-run.
func (p *ClusterMigrationPlan) Write(w io.Writer) {
	end := func(e ClusterEnd) string {
		s := fmt.Sprintf("%s (ClickHouse %s", strings.Join(e.Addresses, ", "), e.Version)
		if e.Cluster != "" {
			s += ", ON CLUSTER " + e.Cluster
		}
		return s + ")"
	}
	fmt.Fprintf(w, "moves: %s\n", strings.Join(p.Sources, ", "))
	p.writeMoves(w)
	for _, r := range p.Refused {
		fmt.Fprintln(w, "refused: "+r)
	}
	if p.Topology == nil {
		return // ClickHouse is not moved
	}
	fmt.Fprintf(w, "source: %s\ntarget: %s\n", end(p.Source), end(p.Target))
	if p.Topology.Replicated {
		fmt.Fprintf(w, "target replicates: path %s, replica %s\n", p.Topology.ZooKeeperPath, p.Topology.Replica)
	} else {
		fmt.Fprintln(w, "target is one server: tables not replicated")
	}
	for _, d := range p.Databases {
		fmt.Fprintf(w, "database %s: %s -> %s (the target's default)\n", d.Name, d.Engine, d.TargetEngine)
	}
	for _, t := range p.Tables {
		fmt.Fprintf(w, "table    %s: %s -> %s\n", t.Table, t.Engine, t.TargetEngine)
	}
	for _, v := range p.SchemaMigrations {
		fmt.Fprintf(w, "schema_migrations %s: version %d, clean: the target ends at the same version\n", v.Database, v.Version)
	}
	for _, n := range p.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
	fmt.Fprintf(w, "plan: %d databases, %d tables; %d passes done\n", len(p.Databases), len(p.Tables), p.Passes)
}

// Write prints what a pass did.
func (r *PassReport) Write(w io.Writer) {
	kind := "pass"
	if r.Cutover {
		kind = "cutover pass"
	}
	fmt.Fprintf(w, "%s %d from snapshot %s: the target was %d partitions, %d rows behind; moved them in %s", kind, r.Pass, r.Snapshot, r.BehindPartitions, r.BehindRows, r.Duration)
	if len(r.Dropped) > 0 {
		fmt.Fprintf(w, "; dropped %d partitions gone from the source", len(r.Dropped))
	}
	fmt.Fprintln(w)
	if r.Proof != nil {
		what := "row counts"
		if r.Proof.Content {
			what += " and content checksums"
		}
		fmt.Fprintf(w, "proof: %d partitions, %s equal on %d target servers\ndowntime: %s (the cutover pass)\n", r.Proof.Partitions, what, r.Proof.Replicas, r.Duration)
	}
}

// carryLogMigrations copies the rows of a schema_migrations kept in a Log engine (TinyLog,
// golang-migrate's default on one server), which backups hold no rows of: the source's rows
// with a sequence above the target's highest, on every target server, since a Log table is
// local to each. golang-migrate only appends, so those are exactly the rows the target lacks.
func (m *ClusterMigration) carryLogMigrations(ctx context.Context) error {
	for _, v := range m.Plan.SchemaMigrations {
		if !(clickhouse.Table{Engine: v.engine}).KeepsRowsOutsideParts() {
			continue
		}
		table := clickhouse.QuoteIdent(v.Database) + ".schema_migrations"
		for _, tgt := range m.targets {
			var top uint64
			if err := tgt.Conn.QueryRow(ctx, "SELECT max(sequence) FROM "+table).Scan(&top); err != nil {
				return fmt.Errorf("read %s on the target %s: %w", table, tgt.Addr, err)
			}
			rows, err := m.source[0].Conn.Query(ctx, "SELECT version, dirty, sequence FROM "+table+" WHERE sequence > ? ORDER BY sequence", top)
			if err != nil {
				return fmt.Errorf("read %s on the source: %w", table, err)
			}
			type row struct {
				version  int64
				dirty    uint8
				sequence uint64
			}
			var values []row
			for rows.Next() {
				var version int64
				var dirty uint8
				var seq uint64
				if err := rows.Scan(&version, &dirty, &seq); err != nil {
					rows.Close()
					return fmt.Errorf("read %s on the source: %w", table, err)
				}
				values = append(values, row{version, dirty, seq})
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("read %s on the source: %w", table, err)
			}
			if len(values) == 0 {
				continue
			}
			// A batch, as the migration driver writes it: 18.16 waits for data blocks after an
			// INSERT … VALUES sent over the native protocol.
			b, err := tgt.Conn.PrepareBatch(ctx, "INSERT INTO "+table+" (version, dirty, sequence)")
			if err == nil {
				for _, r := range values {
					if err = b.Append(r.version, r.dirty, r.sequence); err != nil {
						break
					}
				}
				if err == nil {
					err = b.Send()
				} else {
					_ = b.Abort()
				}
			}
			if err != nil {
				return fmt.Errorf("copy %d rows of %s to the target %s: %w", len(values), table, tgt.Addr, err)
			}
		}
	}
	return nil
}
