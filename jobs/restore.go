package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// RestoreRequest is one restore of one source from a snapshot: `tracevault restore`.
type RestoreRequest struct {
	Snapshot string // ID, unique prefix or "latest"
	Only     string // the source: clickhouse, zookeeper, postgres or blobs
	// Tables are ClickHouse db.table or PostgreSQL schema.table globs; empty = all.
	Tables      []string
	Partitions  []string // ClickHouse partition ids; empty = all
	DatabaseMap []string // ClickHouse SRC:DST pairs: database SRC restored as DST
	Cluster     bool     // ClickHouse whole-cluster disaster recovery
	Root        string   // the ZooKeeper subtree to restore
	PGDatabase  string   // the PostgreSQL database to restore into; default the snapshot's
	BlobURL     string   // the container to restore blobs into; default the snapshot's
	Replace     bool     // replace what already exists on the target
	// AllowPartial restores what a partial snapshot holds.
	AllowPartial bool
	// AllowUnreachable lets a ClickHouse restore succeed though configured replicas did not
	// answer, so their rows went unverified; without it that restore fails, naming them.
	AllowUnreachable bool
	DryRun           bool
}

// Restore is a request whose snapshot was found and may be restored: the first of restore's
// three steps, NewRestore → Plan → RestorePlan.Run.
type Restore struct {
	cfg  *config.Config
	repo *store.Repository
	req  RestoreRequest
	// Snapshot is the snapshot the request names.
	Snapshot *store.Manifest
}

// NewRestore finds the snapshot a request names and checks that it may be restored: a partial
// snapshot only with AllowPartial.
func NewRestore(ctx context.Context, cfg *config.Config, repo *store.Repository, req RestoreRequest) (*Restore, error) {
	m, err := FindSnapshot(ctx, repo, req.Snapshot)
	if err != nil {
		return nil, err
	}
	if slices.Contains(config.Sources, req.Only) {
		if err := repo.RequireSource(ctx, m, req.Only); err != nil {
			return nil, err
		}
	}
	if m.Status != store.StatusComplete && !req.AllowPartial {
		return nil, fmt.Errorf("snapshot %s is %s (%s); pass --allow-partial to restore what it holds, or restore from a complete snapshot ('tracevault list')", m.ID, m.Status, m.Error)
	}
	return &Restore{cfg: cfg, repo: repo, req: req, Snapshot: m}, nil
}

// FindSnapshot finds the snapshot a restore names. When "latest" finds no complete snapshot,
// the error names the newest partial one and how to restore what it holds, rather than a bare
// "not found". When complete sets exist but none of the scope asked for, the store's error
// (store.ErrNoSuchScope) names them and passes through.
func FindSnapshot(ctx context.Context, repo *store.Repository, id string) (*store.Manifest, error) {
	m, err := repo.Snapshot(ctx, id)
	if !strings.HasPrefix(id, "latest") || !errors.Is(err, store.ErrNotFound) {
		return m, err
	}
	all, lerr := repo.Snapshots(ctx)
	switch {
	case lerr != nil:
		return nil, err
	case len(all) == 0:
		return nil, fmt.Errorf("no snapshot to restore: the repository holds none; take one with 'tracevault backup'")
	}
	newest := all[len(all)-1]
	return nil, fmt.Errorf("no complete snapshot: the newest, %s, is %s (%s); restore what it holds with 'tracevault restore %s --allow-partial ...'",
		newest.ID, newest.Status, newest.Error, newest.ID)
}

// PlanProgress tells the progress in ctx which objects the restore reads: the total, and the
// table and partition each one is.
func (r *Restore) PlanProgress(ctx context.Context) {
	rep := progress.From(ctx)
	for _, o := range r.Snapshot.Objects {
		if r.reads(o) {
			rep.Plan(o.Unit())
		}
	}
}

// reads says whether the restore reads an object: its source, and for ClickHouse the tables
// and partitions selected. It sizes the progress, nothing else.
func (r *Restore) reads(o store.ManifestObject) bool {
	req := r.req
	if o.Source != req.Only {
		return false
	}
	if req.Only != config.SourceClickHouse {
		return true
	}
	if len(req.Partitions) > 0 && !slices.Contains(req.Partitions, o.Partition) {
		return false
	}
	for _, g := range req.Tables {
		if ok, _ := path.Match(g, o.Database+"."+o.Table); ok {
			return true
		}
	}
	return len(req.Tables) == 0
}

// RestorePlan is a planned restore of one source, its target connected: --dry-run prints it,
// Run executes it. Close it when done.
type RestorePlan struct {
	Snapshot *store.Manifest
	Source   string
	req      RestoreRequest
	repo     *store.Repository
	log      *slog.Logger
	closers  []func()

	ch       *restore.Restorer
	chPlan   *restore.Plan
	pg       *postgres.Restorer
	pgPlan   *postgres.Plan
	zk       *zk.Conn
	zkRecord io.ReadCloser
	blobs    blobs.RestoreOptions
}

// RestoreResult is what a restore did, for the command to print.
type RestoreResult struct {
	Snapshot string
	Steps    int // the plan's (clickhouse, postgres)
	// Database and Mode are where and how PostgreSQL was restored (postgres.Mode*).
	Database, Mode string
	ZooKeeper      *zookeeper.RestoreReport
	Blobs          *blobs.RestoreReport
	// Reach is which configured ClickHouse replicas the row counts were verified on.
	Reach *restore.Reach
}

// Plan checks the request against the snapshot and the configuration, connects to the target
// and orders the restore. Errors in what was asked are ErrUsage.
func (r *Restore) Plan(ctx context.Context, log *slog.Logger) (*RestorePlan, error) {
	p := &RestorePlan{Snapshot: r.Snapshot, Source: r.req.Only, req: r.req, repo: r.repo, log: log}
	var err error
	switch r.req.Only {
	case config.SourceClickHouse:
		err = r.planClickHouse(ctx, p)
	case config.SourceZooKeeper:
		err = r.planZooKeeper(ctx, p)
	case config.SourcePostgres:
		err = r.planPostgres(ctx, p)
	case config.SourceBlobs:
		err = r.planBlobs(p)
	default:
		err = usageError{errors.New("--only is required: clickhouse, zookeeper, postgres or blobs (one source per restore)")}
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (r *Restore) planClickHouse(ctx context.Context, p *RestorePlan) error {
	req, m := r.req, r.Snapshot
	if err := unmatchedFilters(m, req.Tables, req.Partitions); err != nil {
		return err
	}
	dbMap := map[string]string{}
	for _, pair := range req.DatabaseMap {
		src, dst, ok := strings.Cut(pair, ":")
		if !ok || src == "" || dst == "" {
			return usageError{fmt.Errorf("--database-map %q: write SRC:DST, e.g. default:restored", pair)}
		}
		dbMap[src] = dst
	}
	opts := clickHouseRestoreOptions(r.cfg.ClickHouse, dbMap, p.log)
	opts.Tables, opts.Partitions, opts.Replace, opts.Repo = req.Tables, req.Partitions, req.Replace, r.repo
	if req.Cluster {
		zc := r.cfg.ZooKeeper
		if len(zc.Servers) == 0 {
			return usageError{fmt.Errorf("--cluster needs [zookeeper] servers: the restored tables register there")}
		}
		conn, err := zkConnect(ctx, zc, zc.SessionTimeout.D(), p.log)
		if err != nil {
			return err
		}
		p.closers = append(p.closers, conn.Close)
		opts.WholeCluster, opts.ZooKeeper = true, conn
	}
	rs, err := restore.New(ctx, opts)
	if err != nil {
		return err
	}
	p.closers = append(p.closers, rs.Close)
	p.ch = rs
	p.chPlan, err = rs.Plan(ctx, m)
	return err
}

func (r *Restore) planZooKeeper(ctx context.Context, p *RestorePlan) error {
	if r.req.Root == "" {
		return usageError{fmt.Errorf("--root is required for a zookeeper restore, e.g. --root /clickhouse/tables")}
	}
	rc, err := openZKRecord(ctx, r.cfg, r.repo, r.Snapshot.ID, p.log)
	if err != nil {
		return err
	}
	p.closers = append(p.closers, func() { rc.Close() })
	p.zkRecord = rc
	zc := r.cfg.ZooKeeper
	conn, err := zkConnect(ctx, zc, zc.SessionTimeout.D(), p.log)
	if err != nil {
		return err
	}
	p.closers = append(p.closers, conn.Close)
	p.zk = conn
	return nil
}

func (r *Restore) planPostgres(ctx context.Context, p *RestorePlan) error {
	if err := requirePostgres(r.cfg); err != nil {
		return err
	}
	m := r.Snapshot
	// A failed postgres component leaves a section describing a copy that never finished.
	if c, ok := component(m, config.SourcePostgres); ok && c.Status != store.StatusComplete {
		return fmt.Errorf("the postgres part of snapshot %s failed (%s); restore from another snapshot ('tracevault list')", m.ID, c.Error)
	}
	o := postgresRestoreOptions(r.cfg.Postgres, r.req.PGDatabase, p.log)
	o.Tables, o.Replace = r.req.Tables, r.req.Replace
	p.pg = postgres.NewRestorer(o)
	var err error
	p.pgPlan, err = p.pg.Plan(ctx, m)
	return err
}

func (r *Restore) planBlobs(p *RestorePlan) error {
	if r.req.DryRun {
		return usageError{fmt.Errorf("--dry-run is not supported with --only blobs")}
	}
	b := r.cfg.Blobs
	p.blobs = blobs.RestoreOptions{URL: r.req.BlobURL, Credentials: BlobCredentials(b), Replace: r.req.Replace, Workers: b.Workers, Log: p.log}
	return nil
}

// Previewed says whether --dry-run prints this plan (clickhouse, postgres); a ZooKeeper restore
// previews by running with nothing written, and blobs have no preview.
func (p *RestorePlan) Previewed() bool { return p.chPlan != nil || p.pgPlan != nil }

// Write prints the plan in its own words, for --dry-run.
func (p *RestorePlan) Write(w io.Writer) {
	switch {
	case p.chPlan != nil:
		restore.WritePlan(w, p.chPlan)
	case p.pgPlan != nil:
		postgres.WritePlan(w, p.pgPlan)
	}
}

// MarshalJSON is the plan as --dry-run --json prints it: the source's own plan.
func (p *RestorePlan) MarshalJSON() ([]byte, error) {
	switch {
	case p.chPlan != nil:
		return json.Marshal(p.chPlan)
	case p.pgPlan != nil:
		return json.Marshal(p.pgPlan)
	}
	return []byte("null"), nil
}

// Run executes the plan. A blob restore's result comes back also when it fails, with what it
// wrote.
func (p *RestorePlan) Run(ctx context.Context) (*RestoreResult, error) {
	res := &RestoreResult{Snapshot: p.Snapshot.ID}
	switch {
	case p.chPlan != nil:
		res.Steps = len(p.chPlan.Steps)
		err := p.ch.Execute(ctx, p.repo, p.chPlan, func(done, total int, s restore.Step) {
			if s.Action == restore.ActionLoadPartition {
				p.log.Info("restored partition", "step", fmt.Sprintf("%d/%d", done, total), "table", s.Target, "partition", s.Partition, "rows", s.Rows)
			}
		})
		if err == nil {
			reach := p.ch.Reach()
			res.Reach = &reach
			err = reach.Err(p.req.AllowUnreachable)
		}
		return res, err
	case p.pgPlan != nil:
		res.Steps, res.Database, res.Mode = len(p.pgPlan.Steps), p.pgPlan.Database, p.pgPlan.Mode
		err := p.pg.Execute(ctx, p.repo, p.pgPlan, func(done, total int, s postgres.Step) {
			p.log.Info("restore step done", "step", fmt.Sprintf("%d/%d", done, total), "action", s.Action, "target", s.Target, "tables", s.Tables, "rows", s.Rows)
		})
		return res, err
	case p.zk != nil:
		rep, err := zookeeper.RestoreRecord(ctx, p.zk, p.zkRecord, zookeeper.RestoreOptions{Root: p.req.Root, Replace: p.req.Replace, DryRun: p.req.DryRun})
		res.ZooKeeper = &rep
		return res, err
	default:
		rep, err := blobs.Restore(ctx, p.repo, p.Snapshot, p.blobs)
		res.Blobs = &rep
		return res, err
	}
}

// Close releases the plan's connections.
func (p *RestorePlan) Close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// clickHouseRestoreOptions maps [clickhouse] to a restorer's options, for restore and drill
// alike; dbMap restores database SRC as DST.
func clickHouseRestoreOptions(ch config.ClickHouse, dbMap map[string]string, log *slog.Logger) restore.Options {
	return restore.Options{Native: ch.Addresses, HTTP: ch.HTTPAddresses, Conn: ClickHouseConn(ch), Cluster: ch.Cluster,
		DatabaseMap: dbMap, DataPath: ch.DataPath, Parallel: ch.Parallel, Log: log}
}

// postgresRestoreOptions maps [postgres] to a restorer's options into database (default the
// snapshot's), for restore and drill alike.
func postgresRestoreOptions(pg config.Postgres, database string, log *slog.Logger) postgres.RestoreOptions {
	return postgres.RestoreOptions{DSN: pg.DSN.Reveal(), Database: database, Parallel: pg.Parallel,
		MaintenanceWorkMem: int64(pg.RestoreMaintenanceWorkMem), MaintenanceWorkers: pg.RestoreParallelMaintenanceWorkers,
		SplitBytes: pgSplitBytes(pg), Log: log}
}

// pgSplitBytes is [postgres] restore_split_table_size as a restorer's SplitBytes, where 0 is
// the default: 0 in the file loads every table on one connection.
func pgSplitBytes(pg config.Postgres) int64 {
	if pg.RestoreSplitTableSize == 0 {
		return -1
	}
	return int64(pg.RestoreSplitTableSize)
}

// requirePostgres refuses a PostgreSQL restore without a server to restore into.
func requirePostgres(cfg *config.Config) error {
	if cfg.Postgres.DSN == "" {
		return usageError{errors.New("no PostgreSQL configured: set [postgres] dsn to the server to restore into (a superuser or the database owner)")}
	}
	return nil
}

// component is m's part of source, if it has one.
func component(m *store.Manifest, source string) (store.Component, bool) {
	for _, c := range m.Components {
		if c.Source == source {
			return c, true
		}
	}
	return store.Component{}, false
}

// unmatchedFilters refuses a ClickHouse restore whose tables or partitions select nothing: a
// typo must not end in "restored 0 steps" and exit 0. Each glob and each partition must match.
func unmatchedFilters(m *store.Manifest, tables, partitions []string) error {
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		return err
	}
	if len(sec.Tables) == 0 {
		return fmt.Errorf("nothing to restore: snapshot %s holds no ClickHouse table", m.ID)
	}
	matched := map[string]bool{} // glob -> matched a table
	held := map[string]bool{}
	for _, t := range sec.Tables {
		selected := len(tables) == 0
		for _, g := range tables {
			if ok, _ := path.Match(g, t.Database+"."+t.Name); ok {
				matched[g], selected = true, true
			}
		}
		for _, p := range t.Partitions {
			held[p.ID] = held[p.ID] || selected
		}
	}
	var noTable, noPartition []string
	for _, g := range tables {
		if !matched[g] {
			noTable = append(noTable, g)
		}
	}
	if len(noTable) > 0 {
		return fmt.Errorf("--tables %s matches no table of snapshot %s (write db.table globs); 'tracevault show %s' lists its tables", strings.Join(noTable, ","), m.ID, m.ID)
	}
	for _, p := range partitions {
		if !held[p] {
			noPartition = append(noPartition, p)
		}
	}
	if len(noPartition) > 0 {
		scope := "any of its tables"
		if len(tables) > 0 {
			scope = "--tables " + strings.Join(tables, ",")
		}
		return fmt.Errorf("--partitions %s: snapshot %s holds no such partition of %s; 'tracevault show %s' lists them", strings.Join(noPartition, ","), m.ID, scope, m.ID)
	}
	return nil
}

// closeServers closes the connections clickhouse.Connect opened.
func closeServers(servers []*clickhouse.Server) {
	for _, s := range servers {
		s.Close()
	}
}
