package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// DrillSuffix names a drill's scratch targets: database db is restored as db + DrillSuffix.
const DrillSuffix = "_drill"

// DrillCompared says plainly what a drill compares, for its result and the page.
const DrillCompared = "clickhouse: every object's SHA-256 as it is read, the restorer's row count of each partition on every replica, " +
	"then each partition's active-part rows on the loading replica against the manifest, and its content checksum " +
	"(count and sum(cityHash64(tuple(*))), or of formatRow('TSV', *) as recorded before 25.5) against the one recorded at backup where the servers compute it; " +
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
	// Refused says the drill stopped before restoring anything (a scratch database already
	// there, too little disk, a snapshot it cannot prove): it measured no RTO and proves nothing.
	Refused bool `json:"refused,omitempty"`
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
	// Nothing restored, nothing kept: --keep names what a drill left, and a drill that stopped
	// before its first restore left nothing.
	res.Kept = req.Keep && len(res.Sources) > 0
	res.Refused = err != nil && len(res.Sources) == 0
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
			q := "DROP DATABASE IF EXISTS " + clickhouse.QuoteIdent(db)
			if s.Caps.DatabaseUUIDs {
				// An Atomic database drops its tables minutes later without SYNC, and with them
				// their ZooKeeper nodes, which the cleanup below must find gone.
				q += " SYNC"
			}
			if err := s.Conn.Exec(ctx, q); err != nil {
				log.Error("could not drop a drill's scratch database; drop it by hand", "server", s.Addr, "database", db, "err", err)
			}
		}
	}
	d.dropZKParents(ctx, log)
}

// dropZKParents removes the empty ZooKeeper nodes the scratch tables' replication paths left
// (…/default_drill), which zk diff would otherwise report. A node still holding children is
// kept: something else registered there.
func (d *chDrill) dropZKParents(ctx context.Context, log *slog.Logger) {
	zc := d.cfg.ZooKeeper
	if len(d.zkScratch) == 0 || len(zc.Servers) == 0 {
		return
	}
	conn, err := zookeeper.Connect(ctx, zc.Servers, zc.SessionTimeout.D(), log)
	if err != nil {
		log.Warn("could not remove the drill's empty ZooKeeper nodes; remove them by hand", "nodes", d.zkScratch, "err", err)
		return
	}
	defer conn.Close()
	for _, p := range d.zkScratch {
		if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNotEmpty) {
			log.Warn("could not remove a drill's empty ZooKeeper node; remove it by hand", "node", p, "err", err)
		}
	}
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
