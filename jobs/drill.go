package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
)

// DrillSuffix names a drill's scratch targets: database db is restored as db + DrillSuffix.
const DrillSuffix = "_drill"

// DrillCompared says plainly what a drill compares, for its result and the page.
const DrillCompared = "clickhouse: every object's SHA-256 as it is read, the restorer's row count of each partition on every replica, " +
	"then each partition's active-part rows on the loading replica against the manifest, and its content checksum " +
	"(count and sum(cityHash64(formatRow('TSV', *)))) against the one recorded at backup where the servers have formatRow; " +
	"postgres: every COPY object's SHA-256 as it is read, then each table's count(*) against the manifest; " +
	"blobs: every blob read back out of its pack, its size and MD5 checked against the listing, and the listing's count and bytes " +
	"against the manifest (read, not written: a scratch container would cost as much as the container)"

// DrillRequest is one restore drill.
type DrillRequest struct {
	Snapshot string        // ID, unique prefix or "latest" (default)
	Keep     bool          // leave the scratch databases for inspection
	Timeout  time.Duration // 0: [drill] timeout
}

// DrillSource is one source's part of a drill.
type DrillSource struct {
	Source         string   `json:"source"`
	Targets        []string `json:"targets"` // scratch databases
	RestoreSeconds float64  `json:"restore_seconds"`
	Steps          int      `json:"steps"`
	Rows           uint64   `json:"rows"` // for blobs, the blobs read back and checked
	// Content says how far partitions' content checksums were compared (clickhouse).
	Content string `json:"content_checksum,omitempty"`
}

// Mismatch is one difference between a scratch copy and the manifest.
type Mismatch struct {
	Source    string `json:"source"`
	Target    string `json:"target"`
	Partition string `json:"partition,omitempty"`
	Want      uint64 `json:"want_rows"`
	Got       uint64 `json:"got_rows"`
	// Content marks a content checksum mismatch: WantSum over Want rows recorded at backup,
	// GotSum over Got rows restored.
	Content bool   `json:"content,omitempty"`
	WantSum uint64 `json:"want_sum,omitempty"`
	GotSum  uint64 `json:"got_sum,omitempty"`
}

func (m Mismatch) String() string {
	where := m.Target
	if m.Partition != "" {
		where += " partition " + m.Partition
	}
	if m.Content {
		return fmt.Sprintf("%s %s content checksum %d over %d rows, the snapshot %d over %d rows", m.Source, where, m.GotSum, m.Got, m.WantSum, m.Want)
	}
	return fmt.Sprintf("%s %s holds %d rows, the snapshot %d", m.Source, where, m.Got, m.Want)
}

// DrillResult is what a drill proved, as `drill --json` prints it and the run history keeps.
type DrillResult struct {
	Snapshot   string        `json:"snapshot"`
	Outcome    string        `json:"outcome"` // succeeded or failed
	Error      string        `json:"error,omitempty"`
	RTOSeconds float64       `json:"rto_seconds"` // time to restore, all sources
	RPOSeconds float64       `json:"rpo_seconds"` // the snapshot's age when the drill started
	Sources    []DrillSource `json:"sources"`
	Mismatches []Mismatch    `json:"mismatches"`
	Compared   string        `json:"compared"`
	DiskCheck  string        `json:"disk_check"`
	Kept       bool          `json:"kept,omitempty"`
}

// drillSuffix is DrillSuffix; a test sets it to "" to prove a plan onto live targets is refused.
var drillSuffix = DrillSuffix

// Drill restores a snapshot set into scratch databases (ClickHouse <db>_drill, whose replication
// paths move with the database; PostgreSQL <db>_drill), compares what landed with the manifest,
// and drops the scratch databases unless req.Keep. It reuses the restore planners and executors
// of `tracevault restore`. The result is returned also when the drill fails, with the cause.
func Drill(ctx context.Context, cfg *config.Config, repo *store.Repository, req DrillRequest, log *slog.Logger) (*DrillResult, error) {
	res := &DrillResult{Outcome: OutcomeFailed, Compared: DrillCompared, Kept: req.Keep, Mismatches: []Mismatch{}}
	err := drill(ctx, cfg, repo, req, res, log)
	if err == nil && len(res.Mismatches) > 0 {
		err = fmt.Errorf("%d mismatches, first: %s", len(res.Mismatches), res.Mismatches[0])
	}
	if err != nil {
		res.Error = store.ErrorText(err.Error())
		return res, err
	}
	res.Outcome = OutcomeSucceeded
	return res, nil
}

func drill(ctx context.Context, cfg *config.Config, repo *store.Repository, req DrillRequest, res *DrillResult, log *slog.Logger) (err error) {
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = cfg.Drill.Timeout.D()
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the drill took longer than its timeout %s ([drill] timeout or --timeout)", timeout))
		defer cancel()
		defer func() {
			// A restore step fails with a bare "context deadline exceeded": say which limit.
			if err != nil && ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
				err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
			}
		}()
	}
	id := req.Snapshot
	if id == "" {
		id = "latest"
	}
	m, err := repo.Snapshot(ctx, id)
	if err != nil {
		return fmt.Errorf("find snapshot %s to drill: %w", id, err)
	}
	res.Snapshot = m.ID
	res.RPOSeconds = time.Since(m.Start).Seconds()
	if m.Status != store.StatusComplete {
		return fmt.Errorf("snapshot %s is %s (%s): a drill proves complete snapshots only", m.ID, m.Status, m.Error)
	}

	var ch *chDrill
	if len(cfg.ClickHouse.Addresses) > 0 && hasComponent(m, config.SourceClickHouse) {
		if ch, err = planClickHouseDrill(ctx, cfg, m, log); err != nil {
			return err
		}
		defer ch.close()
	}
	var pg *pgDrill
	if cfg.Postgres.DSN != "" && hasComponent(m, config.SourcePostgres) {
		if pg, err = planPostgresDrill(ctx, cfg, m, log); err != nil {
			return err
		}
	}
	withBlobs := hasComponent(m, blobs.Name)
	if ch == nil && pg == nil && !withBlobs {
		return fmt.Errorf("snapshot %s holds no complete clickhouse, postgres or blobs part that the configuration can restore", m.ID)
	}
	// What the restores read back, for whoever watches the progress.
	for _, o := range m.Objects {
		if ch != nil && o.Source == config.SourceClickHouse || pg != nil && o.Source == config.SourcePostgres {
			progress.From(ctx).Plan(o.Unit())
		}
	}
	var lands []landing
	if ch != nil {
		for _, dir := range ch.dirs {
			lands = append(lands, landing{what: "clickhouse", dir: dir, need: ch.bytes()})
		}
	}
	if pg != nil {
		lands = append(lands, landing{what: "postgres", dir: pg.dir, need: pg.bytes()})
	}
	if res.DiskCheck, err = diskCheck(lands); err != nil {
		return err
	}

	if ch != nil {
		if !req.Keep {
			defer ch.drop(context.WithoutCancel(ctx), log)
		}
		src, err := ch.run(ctx, repo, res)
		res.Sources = append(res.Sources, src)
		res.RTOSeconds += src.RestoreSeconds
		if err != nil {
			return err
		}
	}
	if pg != nil {
		if !req.Keep {
			defer pg.drop(context.WithoutCancel(ctx), log)
		}
		src, err := pg.run(ctx, repo)
		res.Sources = append(res.Sources, src)
		res.RTOSeconds += src.RestoreSeconds
		if err != nil {
			return err
		}
	}
	if withBlobs {
		src, err := drillBlobs(ctx, repo, m, log)
		res.Sources = append(res.Sources, src)
		res.RTOSeconds += src.RestoreSeconds
		if err != nil {
			return err
		}
	}
	return nil
}

// drillBlobs restores the snapshot's blobs to nowhere: each read back out of its pack and
// checked, the listing against the manifest.
func drillBlobs(ctx context.Context, repo *store.Repository, m *store.Manifest, log *slog.Logger) (DrillSource, error) {
	start := time.Now()
	rep, err := blobs.Restore(ctx, repo, m, blobs.RestoreOptions{ReadBack: true, Log: log})
	src := DrillSource{Source: blobs.Name, Targets: []string{rep.Target}, RestoreSeconds: time.Since(start).Seconds(), Rows: uint64(rep.Written)}
	if err != nil {
		return src, fmt.Errorf("drill the blobs of snapshot %s: %w", m.ID, err)
	}
	return src, nil
}

func hasComponent(m *store.Manifest, source string) bool {
	for _, c := range m.Components {
		if c.Source == source && c.Status == store.StatusComplete {
			return true
		}
	}
	return false
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
			return "", fmt.Errorf("not enough disk for the drill: the filesystem of %s has %d bytes free, the snapshot restores %d onto it; free space or drill on another host", f.dir, f.free, f.need)
		}
		out = append(out, fmt.Sprintf("%s: %d bytes free, %d to restore", f.dir, f.free, f.need))
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
	ch := cfg.ClickHouse
	dirs, err := inspectCH(ctx, cfg, dbs, log)
	if err != nil {
		return nil, err
	}
	rs, err := restore.New(ctx, restore.Options{Native: ch.Addresses, HTTP: ch.HTTPAddresses, Conn: ClickHouseConn(ch),
		Cluster: ch.Cluster, DatabaseMap: dbMap, DataPath: ch.DataPath, Parallel: ch.Parallel, Log: log})
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
	return &chDrill{cfg: cfg, rs: rs, plan: plan, dbs: dbs, log: log, content: content, dirs: dirs}, nil
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
				return nil, fmt.Errorf("refusing the drill: scratch database %s already exists on clickhouse %s (kept by drill --keep, or not the drill's); drop it: DROP DATABASE %s ON CLUSTER ...", db, s.Addr, clickhouse.QuoteIdent(db))
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

func (d *chDrill) close() { d.rs.Close() }

func (d *chDrill) bytes() int64 {
	var n int64
	for _, s := range d.plan.Steps {
		n += s.Bytes
	}
	return n
}

func (d *chDrill) run(ctx context.Context, repo *store.Repository, res *DrillResult) (DrillSource, error) {
	src := DrillSource{Source: config.SourceClickHouse, Targets: d.dbs, Steps: len(d.plan.Steps)}
	start := time.Now()
	err := d.rs.Execute(ctx, repo, d.plan, nil)
	src.RestoreSeconds = time.Since(start).Seconds()
	if err != nil {
		return src, fmt.Errorf("restore clickhouse into %s: %w", strings.Join(d.dbs, ", "), err)
	}
	mm, rows, content, err := d.compare(ctx)
	src.Rows, src.Content = rows, content
	res.Mismatches = append(res.Mismatches, mm...)
	return src, err
}

// compare reads each loaded partition's active-part rows on the replica it was loaded into:
// a count independent of the restorer's own check; then, where the backup recorded one and the
// server has formatRow, its content checksum. It returns what the content comparison covered.
func (d *chDrill) compare(ctx context.Context) ([]Mismatch, uint64, string, error) {
	ch := d.cfg.ClickHouse
	servers, _, err := clickhouse.Connect(ctx, ch.Addresses, ch.HTTPAddresses, ClickHouseConn(ch), d.log)
	if err != nil {
		return nil, 0, "", fmt.Errorf("compare the clickhouse drill: %w", err)
	}
	defer closeServers(servers)
	byAddr := map[string]*clickhouse.Server{}
	for _, s := range servers {
		byAddr[s.Addr] = s
	}
	var out []Mismatch
	var total uint64
	var summed, unrecorded int
	unsupported := ""
	for _, s := range d.plan.Steps {
		if s.Action != restore.ActionLoadPartition {
			continue
		}
		srv := byAddr[s.Replica]
		if srv == nil {
			return out, total, "", fmt.Errorf("compare %s partition %s: its replica %s no longer answers", s.Target, s.Partition, s.Replica)
		}
		db, table, _ := strings.Cut(s.Target, ".")
		var got uint64
		err := srv.Conn.QueryRow(ctx, "SELECT toUInt64(sum(rows)) FROM system.parts WHERE active AND database = ? AND table = ? AND partition_id = ?",
			db, table, s.Partition).Scan(&got)
		if err != nil {
			return out, total, "", fmt.Errorf("count rows of %s partition %s on %s: %w", s.Target, s.Partition, s.Replica, err)
		}
		total += got
		if got != s.Rows {
			out = append(out, Mismatch{Source: config.SourceClickHouse, Target: s.Target, Partition: s.Partition, Want: s.Rows, Got: got})
		}
		want, recorded := d.content[s.Object]
		switch {
		case !srv.Caps.FormatRow:
			unsupported = fmt.Sprintf("not supported by this server (ClickHouse %s on %s has no formatRow): rows compared", srv.Caps.Version, srv.Addr)
		case !recorded:
			unrecorded++
		default:
			sum, err := clickhouse.PartitionContent(ctx, srv, db, table, s.Partition, nil)
			if err != nil {
				return out, total, "", err
			}
			summed++
			if sum != want {
				out = append(out, Mismatch{Source: config.SourceClickHouse, Target: s.Target, Partition: s.Partition, Content: true,
					Want: want.Rows, Got: sum.Rows, WantSum: want.Sum, GotSum: sum.Sum})
			}
		}
	}
	if unsupported != "" {
		return out, total, unsupported, nil
	}
	note := fmt.Sprintf("compared for %d partitions", summed)
	if unrecorded > 0 {
		note += fmt.Sprintf("; %d partitions have none in the snapshot (taken on a server without formatRow, changed while backed up, or by an older tracevault): rows compared", unrecorded)
	}
	return out, total, note, nil
}

// drop removes the scratch databases on every replica; dropping a replicated table removes its
// registration, the last one its replication group.
func (d *chDrill) drop(ctx context.Context, log *slog.Logger) {
	ch := d.cfg.ClickHouse
	servers, _, err := clickhouse.Connect(ctx, ch.Addresses, ch.HTTPAddresses, ClickHouseConn(ch), log)
	if err != nil {
		log.Error("could not drop the drill's scratch databases", "databases", d.dbs, "err", err)
		return
	}
	defer closeServers(servers)
	for _, s := range servers {
		for _, db := range d.dbs {
			if err := s.Conn.Exec(ctx, "DROP DATABASE IF EXISTS "+clickhouse.QuoteIdent(db)); err != nil {
				log.Error("could not drop a drill's scratch database; drop it by hand", "server", s.Addr, "database", db, "err", err)
			}
		}
	}
}

func closeServers(servers []*clickhouse.Server) {
	for _, s := range servers {
		s.Close()
	}
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
	rs := postgres.NewRestorer(postgres.RestoreOptions{DSN: pg.DSN.Reveal(), Database: scratch, Parallel: pg.Parallel, Log: log})
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

// run restores; the restorer's last step counts every table's rows against the manifest and
// fails naming the tables that differ.
func (d *pgDrill) run(ctx context.Context, repo *store.Repository) (DrillSource, error) {
	src := DrillSource{Source: config.SourcePostgres, Targets: []string{d.plan.Database}, Steps: len(d.plan.Steps)}
	start := time.Now()
	err := d.rs.Execute(ctx, repo, d.plan, func(_, _ int, s postgres.Step) {
		if s.Action == "load" && s.Rows > 0 {
			src.Rows += uint64(s.Rows)
		}
	})
	src.RestoreSeconds = time.Since(start).Seconds()
	if err != nil {
		return src, fmt.Errorf("restore postgres into %s: %w", d.plan.Database, err)
	}
	return src, nil
}

func (d *pgDrill) drop(ctx context.Context, log *slog.Logger) {
	conn, err := pgx.Connect(ctx, d.dsn)
	if err == nil {
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+postgres.Ident(d.plan.Database)+" WITH (FORCE)")
		conn.Close(ctx)
	}
	if err != nil {
		log.Error("could not drop the drill's scratch database; drop it by hand", "database", d.plan.Database, "err", err)
	}
}

// recoveryPoints are, per source, the start of the newest complete snapshot holding it: the
// age a restore now would lose, which /metrics computes at each scrape.
func recoveryPoints(snaps []store.Manifest) map[string]time.Time {
	out := map[string]time.Time{}
	for _, m := range snaps {
		if m.Status != store.StatusComplete {
			continue
		}
		for _, c := range m.Components {
			if c.Status == store.StatusComplete && m.Start.After(out[c.Source]) {
				out[c.Source] = m.Start
			}
		}
	}
	return out
}

// LastDrill is the newest finished drill run, for the page's "last proven restore" panel.
func LastDrill(runs []Run) *Run {
	for i := range runs {
		if runs[i].Action == config.ActionDrill && runs[i].Outcome != OutcomeRunning && runs[i].Outcome != OutcomeSkipped {
			return &runs[i]
		}
	}
	return nil
}

// DrillRun turns a drill's result into its run record's fields.
func DrillRun(r *Run, res *DrillResult) {
	if res == nil {
		return
	}
	r.Snapshot, r.RTOSeconds, r.RPOSeconds = res.Snapshot, res.RTOSeconds, res.RPOSeconds
	r.RestoreSeconds = map[string]float64{}
	for _, s := range res.Sources {
		r.RestoreSeconds[s.Source] = s.RestoreSeconds
	}
}

// RecordDrill keeps a drill run outside the daemon (`tracevault drill`) in the shared run
// history, so the status page and /metrics of every daemon see the proof or the failure.
func RecordDrill(ctx context.Context, repo *store.Repository, res *DrillResult, start time.Time) (Run, error) {
	host, _ := os.Hostname()
	r := Run{ID: newRunID(), Job: config.ActionDrill, Action: config.ActionDrill, Trigger: TriggerManual, Host: host,
		Start: start.UTC(), End: time.Now().UTC(), Outcome: res.Outcome, Error: res.Error}
	DrillRun(&r, res)
	return r, (&History{Repo: repo, Limit: historyLimit}).Record(ctx, r)
}
