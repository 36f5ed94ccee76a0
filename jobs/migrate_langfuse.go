package jobs

// The rest of the Langfuse move beside ClickHouse (migrate_cluster.go): PostgreSQL to another
// server and the blob container to another container, driven by the same plan, passes and
// cutover. PostgreSQL's first pass restores a snapshot of it (the PITR chain's base when
// [postgres] pitr streams); with PITR each later pass replays only the changes since (CatchUp),
// else each pass is a fresh logical copy swapped in once verified. A blob pass backs up the
// container (incremental) and restores into the target what is missing or changed there. Each
// source keeps its pass record next to the target file, so an interrupted pass resumes.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
	"github.com/tracevault/tracevault/snapshot/store"
)

// movable are the sources migrate-cluster moves, in the order a run moves them (a snapshot
// set's order; ZooKeeper's paths move with ClickHouse's tables).
var movable = []string{config.SourcePostgres, config.SourceClickHouse, config.SourceBlobs}

// configures says whether c names a server (or container) of source.
func configures(c *config.Config, source string) bool {
	switch source {
	case config.SourcePostgres:
		return c.Postgres.DSN != ""
	case config.SourceClickHouse:
		return len(c.ClickHouse.Addresses) > 0
	case config.SourceBlobs:
		return c.Blobs.URL != ""
	}
	return false
}

// sectionOf names the configuration section of a movable source, for messages.
var sectionOf = map[string]string{
	config.SourcePostgres:   "[postgres] dsn",
	config.SourceClickHouse: "[clickhouse] addresses",
	config.SourceBlobs:      "[blobs] url",
}

// moveSources are the sources a migration moves: those --only names, else every one the target
// file describes; each must be configured on both sides.
func moveSources(cfg, target *config.Config, only []string) ([]string, error) {
	for _, s := range only {
		if !slices.Contains(movable, s) {
			return nil, usageError{fmt.Errorf("--only %q: migrate-cluster moves %s", s, strings.Join(movable, ", "))}
		}
	}
	var out []string
	for _, s := range movable {
		if len(only) == 0 && configures(target, s) || slices.Contains(only, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, usageError{errors.New("--to names no target: give it a [clickhouse] addresses, [postgres] dsn or [blobs] url")}
	}
	for _, s := range out {
		if !configures(cfg, s) {
			return nil, usageError{fmt.Errorf("moving %s needs the source's %s in the configuration", s, sectionOf[s])}
		}
		if !configures(target, s) {
			return nil, usageError{fmt.Errorf("moving %s needs the target's %s in --to", s, sectionOf[s])}
		}
	}
	return out, nil
}

// SourceMove is the plan of one source beside ClickHouse: what moves, from where to where, how
// the passes move it, and what is refused before anything is written.
type SourceMove struct {
	Source  string   `json:"source"`
	From    string   `json:"from"`
	To      string   `json:"to"`
	What    string   `json:"what"`
	Passes  string   `json:"passes"`
	Refused []string `json:"refused,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

// MovePass is what one pass of PostgreSQL or the blobs did.
type MovePass struct {
	Source  string `json:"source"`
	Pass    int    `json:"pass"`
	Cutover bool   `json:"cutover"`
	// How: "copy" (PostgreSQL: a logical copy swapped in; blobs: what the target lacks),
	// "pitr-base" (the chain's base restored, then its changes replayed) or "pitr-catch-up".
	How      string    `json:"how"`
	Snapshot string    `json:"snapshot,omitempty"`
	Start    time.Time `json:"start"`
	Duration Duration  `json:"duration"`
	// PostgreSQL: the rows a copy loaded; the transactions and changes a replay applied, and
	// the commit it reached.
	Rows         int64  `json:"rows,omitempty"`
	Transactions int64  `json:"transactions,omitempty"`
	Changes      int64  `json:"changes,omitempty"`
	ReachedLSN   string `json:"reached_lsn,omitempty"`
	// Blobs: written (missing or changed on the target) and skipped as identical there.
	Written   int64      `json:"written,omitempty"`
	Bytes     int64      `json:"bytes,omitempty"`
	Identical int64      `json:"identical,omitempty"`
	Deleted   int64      `json:"deleted,omitempty"` // gone from the source
	Proof     *MoveProof `json:"proof,omitempty"`
}

// MoveProof is a cutover's comparison of the target with the source, ingestion paused.
type MoveProof struct {
	Compared int    `json:"compared"` // tables or blobs
	Equal    bool   `json:"equal"`
	What     string `json:"what"`
}

// MoveReport is one run: a pass (or the cutover) of every source moved. The ClickHouse pass's
// fields are at the top, as a ClickHouse-only run reports them.
type MoveReport struct {
	*PassReport
	Postgres *MovePass `json:"postgres,omitempty"`
	Blobs    *MovePass `json:"blobs,omitempty"`
	// Took is the whole run: a cutover's downtime.
	Took Duration `json:"took"`
}

// moveState is a source's record of its passes, TARGET.toml.migrate-<source>.json.
type moveState struct {
	path    string
	From    string `json:"from"`
	To      string `json:"to"`
	Started bool   `json:"started"` // set before a pass first writes to the target
	// Snapshot is the one whose postgres section lists the tables the target holds.
	Snapshot string `json:"snapshot,omitempty"`
	// Reached is the PITR chain and commit the PostgreSQL target was brought to.
	Reached *pitr.Reached `json:"reached,omitempty"`
	// Owned: the target container was empty when the move began, so every blob in it is the
	// source's, and one the source no longer has is deleted there.
	Owned  bool       `json:"owned,omitempty"`
	Passes []MovePass `json:"passes"`
}

func moveStatePath(target, source string) string {
	return target + ".migrate-" + source + ".json"
}

// loadMoveState reads a source's passes, or starts a record; one of a move between other
// servers is refused.
func loadMoveState(path, from, to string) (*moveState, error) {
	st := &moveState{path: path, From: from, To: to}
	var saved moveState
	if found, err := readState(path, &saved); err != nil || !found {
		return st, err
	}
	if saved.From != from || saved.To != to {
		return nil, fmt.Errorf("the migration state %s records a move from %s to %s, not from %s to %s: remove it to start over", path, saved.From, saved.To, from, to)
	}
	saved.path = path
	return &saved, nil
}

func (st *moveState) save() error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the migration state: %w", err)
	}
	return writeState(st.path, data)
}

// pgWhere names a PostgreSQL database without its credentials: host:port/database.
func pgWhere(dsn string) (string, error) {
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", usageError{errors.New("parse a [postgres] dsn: not a valid libpq URL or keyword/value string")}
	}
	db := c.Database
	if db == "" {
		db = c.User
	}
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, db), nil
}

// planMoves plans PostgreSQL and the blobs when moved, and loads their pass records; for
// ClickHouse it lists a target that holds tables as refused, so that --dry-run shows it.
func (m *ClusterMigration) planMoves(ctx context.Context) error {
	for _, s := range m.Plan.Sources {
		var err error
		switch s {
		case config.SourceClickHouse:
			if !m.state.Started && !m.req.AllowNonEmpty {
				var refused usageError
				if err = m.refuseNonEmpty(ctx); errors.As(err, &refused) {
					m.Plan.Refused, err = append(m.Plan.Refused, refused.Error()), nil
				}
			}
		case config.SourcePostgres:
			err = m.planPostgres(ctx)
		case config.SourceBlobs:
			err = m.planBlobs(ctx)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *ClusterMigration) planPostgres(ctx context.Context) error {
	src, tgt := m.cfg.Postgres.DSN.Reveal(), m.target.Postgres.DSN.Reveal()
	from, err := pgWhere(src)
	if err != nil {
		return err
	}
	to, err := pgWhere(tgt)
	if err != nil {
		return err
	}
	if from == to {
		return usageError{fmt.Errorf("the target PostgreSQL database %s is the source", to)}
	}
	if m.pgState, err = loadMoveState(moveStatePath(m.req.Target, config.SourcePostgres), from, to); err != nil {
		return err
	}
	mv := SourceMove{Source: config.SourcePostgres, From: from, To: to,
		Passes: "each pass: a fresh backup of the database, restored into the target (a staging copy swapped in once its row counts are verified); the cutover the same, ingestion paused, then every table's rows and content checksum compared"}
	if m.cfg.Postgres.PITR {
		mv.Passes = "first pass: the PITR chain's base restored, then its changes replayed; each later pass replays the changes since (PITR catch-up); the cutover catches up to the source's WAL position, ingestion paused, then compares every table's rows and content checksum"
	}
	conn, err := postgres.Connect(ctx, src)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tables, err := userTables(ctx, conn)
	if err != nil {
		return err
	}
	mv.What = fmt.Sprintf("database %s: %d tables", from[strings.LastIndex(from, "/")+1:], tables)
	if v, ok, err := pgSchemaVersion(ctx, conn); err != nil {
		return err
	} else if ok {
		mv.What += fmt.Sprintf(", schema_migrations version %d (carried: the target ends at it)", v.Version)
		if v.Dirty {
			mv.Refused = append(mv.Refused, fmt.Sprintf("schema_migrations is dirty at version %d on the source: finish or force that migration before moving it", v.Version))
		}
	}
	held, err := targetTables(ctx, tgt)
	switch {
	case err != nil:
		return fmt.Errorf("target: %w", err)
	case held < 0:
		mv.Notes = append(mv.Notes, "the target database does not exist yet: the first pass creates it")
	case held > 0 && !m.pgState.Started && !m.req.AllowNonEmpty:
		mv.Refused = append(mv.Refused, fmt.Sprintf("the target database %s holds %d tables: migrate into an empty database, or pass --allow-nonempty to replace it", to, held))
	}
	m.Plan.Moves = append(m.Plan.Moves, mv)
	return nil
}

// userTables counts the tables outside PostgreSQL's own schemas.
func userTables(ctx context.Context, conn *pgx.Conn) (int, error) {
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`).Scan(&n)
	if err != nil {
		return 0, postgres.Explain("count the tables", err)
	}
	return n, nil
}

// targetTables counts the target database's tables; -1 when it does not exist.
func targetTables(ctx context.Context, dsn string) (int, error) {
	conn, err := postgres.Connect(ctx, dsn)
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "3D000" { // invalid_catalog_name
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return userTables(ctx, conn)
}

// pgSchemaVersion reads golang-migrate's schema_migrations in the search path, if there is one.
func pgSchemaVersion(ctx context.Context, conn *pgx.Conn) (SchemaVersion, bool, error) {
	var v SchemaVersion
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil || !exists {
		return v, false, postgres.Explain("look for schema_migrations", err)
	}
	err := conn.QueryRow(ctx, "SELECT version, dirty FROM schema_migrations LIMIT 1").Scan(&v.Version, &v.Dirty)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, false, nil
	}
	return v, err == nil, postgres.Explain("read schema_migrations", err)
}

func (m *ClusterMigration) planBlobs(ctx context.Context) error {
	from, to := m.cfg.Blobs.URL, m.target.Blobs.URL
	if from == to && m.cfg.Blobs.Endpoint == m.target.Blobs.Endpoint && m.cfg.Blobs.ConnectionString == m.target.Blobs.ConnectionString {
		return usageError{fmt.Errorf("the target container %s is the source", to)}
	}
	var err error
	if m.blobState, err = loadMoveState(moveStatePath(m.req.Target, config.SourceBlobs), from, to); err != nil {
		return err
	}
	mv := SourceMove{Source: config.SourceBlobs, From: from, To: to,
		Passes: "each pass: a backup of the container (incremental), then every blob missing or changed on the target (by name, size and MD5) written there; the cutover the same, ingestion paused, then both listings compared"}
	src, err := blobs.OpenContainer(ctx, from, BlobCredentials(m.cfg.Blobs), false)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	var n, size int64
	if err := src.List(ctx, func(e blobs.Entry) error { n, size = n+1, size+e.Size; return nil }); err != nil {
		return fmt.Errorf("list the source container %s: %w", src, err)
	}
	mv.What = fmt.Sprintf("%d blobs, %s", n, store.HumanBytes(size))
	dst, err := blobs.OpenContainer(ctx, to, BlobCredentials(m.target.Blobs), false)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	first := ""
	errFound := errors.New("found")
	switch err := dst.List(ctx, func(e blobs.Entry) error { first = e.Name; return errFound }); {
	case errors.Is(err, errFound):
		if !m.blobState.Started && !m.req.AllowNonEmpty {
			mv.Refused = append(mv.Refused, fmt.Sprintf("the target container %s holds blobs (%s, ...): migrate into an empty container, or pass --allow-nonempty (blobs of the same name are replaced)", dst, first))
		}
		if !m.blobState.Owned {
			mv.Notes = append(mv.Notes, "blobs the target held before the move are left alone, and so are those the source deletes meanwhile")
		}
	case err != nil:
		mv.Notes = append(mv.Notes, fmt.Sprintf("the target container cannot be listed yet (%v): the first pass creates it", err))
		fallthrough
	default:
		m.blobState.Owned = m.blobState.Owned || !m.blobState.Started
	}
	m.Plan.Moves = append(m.Plan.Moves, mv)
	return nil
}

// refused is every refusal of the plan, each naming its source.
func (p *ClusterMigrationPlan) refused() []string {
	var out []string
	for _, r := range p.Refused {
		out = append(out, config.SourceClickHouse+": "+r)
	}
	for _, mv := range p.Moves {
		for _, r := range mv.Refused {
			out = append(out, mv.Source+": "+r)
		}
	}
	return out
}

// Run runs one pass of every source moved (PostgreSQL, ClickHouse, then the blobs), or with
// Cutover the last pass of each and its proof. Anything refused stops it before anything is
// written.
func (m *ClusterMigration) Run(ctx context.Context, repo *store.Repository) (*MoveReport, error) {
	if r := m.Plan.refused(); len(r) > 0 {
		return nil, usageError{fmt.Errorf("the target cannot take this migration, nothing was written: %s", strings.Join(r, "; "))}
	}
	start := time.Now()
	rep := &MoveReport{}
	if err := m.backUpOnce(ctx, repo); err != nil {
		return nil, err
	}
	var err error
	for _, s := range m.Plan.Sources {
		switch s {
		case config.SourcePostgres:
			rep.Postgres, err = m.postgresPass(ctx, repo)
		case config.SourceClickHouse:
			rep.PassReport, err = m.Pass(ctx, repo)
		case config.SourceBlobs:
			rep.Blobs, err = m.blobsPass(ctx, repo)
		}
		if err != nil {
			return rep, err
		}
	}
	rep.Took = Duration(time.Since(start))
	return rep, nil
}

// backUpOnce takes one snapshot set of every source this run's passes back up, so that they
// move one cut of Langfuse: all but PostgreSQL followed through PITR, and a source whose first
// pass restores --from-snapshot.
func (m *ClusterMigration) backUpOnce(ctx context.Context, repo *store.Repository) error {
	var need []string
	for _, s := range m.Plan.Sources {
		if s == config.SourcePostgres && m.cfg.Postgres.PITR {
			continue
		}
		if snap, err := m.fromSnapshot(ctx, repo, s); err != nil {
			return err
		} else if snap == nil {
			need = append(need, s)
		}
	}
	if len(need) == 0 {
		return nil
	}
	snap, err := backUpSources(ctx, m, repo, need)
	m.shared = snap
	return err
}

// fromSnapshot is --from-snapshot when this is source's first pass and it holds the source.
func (m *ClusterMigration) fromSnapshot(ctx context.Context, repo *store.Repository, source string) (*store.Manifest, error) {
	first := map[string]bool{config.SourceClickHouse: m.state != nil && len(m.state.Passes) == 0,
		config.SourcePostgres: m.pgState != nil && len(m.pgState.Passes) == 0, config.SourceBlobs: m.blobState != nil && len(m.blobState.Passes) == 0}
	if m.req.FromSnapshot == "" || !first[source] {
		return nil, nil
	}
	snap, err := FindSnapshot(ctx, repo, m.req.FromSnapshot)
	if err != nil {
		return nil, err
	}
	if _, ok := component(snap, source); !ok {
		return nil, nil
	}
	return snap, nil
}

// backUpSources takes a snapshot set of sources for a pass, tagged migrate-cluster.
func backUpSources(ctx context.Context, m *ClusterMigration, repo *store.Repository, sources []string) (*store.Manifest, error) {
	what := strings.Join(sources, ", ")
	snap, err := Backup(ctx, m.cfg, repo, BackupRequest{Only: sources, Tags: []string{"migrate-cluster"}, LockWait: 10 * time.Minute}, m.log)
	if err != nil {
		return nil, fmt.Errorf("back up the source's %s: %w", what, err)
	}
	if snap.Status != store.StatusComplete {
		return nil, fmt.Errorf("back up the source's %s: snapshot %s is %s: %s", what, snap.ID, snap.Status, snap.Error)
	}
	return snap, nil
}

// sourceSnapshot is a pass's snapshot of one source: --from-snapshot for its first pass when
// that snapshot holds the source, else the run's one backup (backUpOnce), else a new backup of
// the source alone.
func (m *ClusterMigration) sourceSnapshot(ctx context.Context, repo *store.Repository, source string) (*store.Manifest, error) {
	if snap, err := m.fromSnapshot(ctx, repo, source); snap != nil || err != nil {
		return snap, err
	}
	if m.shared != nil {
		if _, ok := component(m.shared, source); ok {
			return m.shared, nil
		}
	}
	return backUpSources(ctx, m, repo, []string{source})
}

// begin starts a pass's report, and records that the target is written to from here on: a
// rerun after an interruption finds this migration's own data there, not someone else's.
func (m *ClusterMigration) begin(st *moveState, source string) (*MovePass, error) {
	st.Started = true
	return &MovePass{Source: source, Pass: len(st.Passes) + 1, Cutover: m.req.Cutover, Start: time.Now().UTC()}, st.save()
}

// finish records a pass that ended well.
func (m *ClusterMigration) finish(st *moveState, rep *MovePass) (*MovePass, error) {
	rep.Duration = Duration(time.Since(rep.Start))
	st.Passes = append(st.Passes, *rep)
	m.log.Info("migration pass", "source", rep.Source, "pass", rep.Pass, "how", rep.How, "cutover", rep.Cutover, "seconds", time.Duration(rep.Duration).Seconds())
	return rep, st.save()
}

func (m *ClusterMigration) postgresPass(ctx context.Context, repo *store.Repository) (*MovePass, error) {
	st := m.pgState
	rep, err := m.begin(st, config.SourcePostgres)
	if err != nil {
		return nil, err
	}
	if m.cfg.Postgres.PITR {
		err = m.pitrPass(ctx, repo, rep)
	} else {
		var snap *store.Manifest
		if snap, err = m.sourceSnapshot(ctx, repo, config.SourcePostgres); err == nil {
			rep.How = "copy"
			err = m.loadPostgres(ctx, repo, snap, rep)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("postgres pass %d (resumable: run it again): %w", rep.Pass, err)
	}
	if m.req.Cutover {
		if rep.Proof, err = m.provePostgres(ctx, repo); err != nil {
			return nil, fmt.Errorf("postgres cutover pass %d moved every change but the target does not equal the source: %w", rep.Pass, err)
		}
	}
	return m.finish(st, rep)
}

// loadPostgres restores snap's PostgreSQL into the target database: created if missing, else
// loaded into a staging copy swapped in once verified (the restorer's replace mode).
func (m *ClusterMigration) loadPostgres(ctx context.Context, repo *store.Repository, snap *store.Manifest, rep *MovePass) error {
	tgt := m.target.Postgres
	db, err := pgWhere(tgt.DSN.Reveal())
	if err != nil {
		return err
	}
	o := postgresRestoreOptions(tgt, db[strings.LastIndex(db, "/")+1:], m.log)
	o.Replace = true // a non-empty target was refused by the plan unless --allow-nonempty
	r := postgres.NewRestorer(o)
	plan, err := r.Plan(ctx, snap)
	if err != nil {
		return fmt.Errorf("plan the restore of snapshot %s into the target: %w", snap.ID, err)
	}
	for _, s := range plan.Steps {
		if s.Action == "load" {
			rep.Rows += s.Rows
		}
	}
	if err := r.Execute(ctx, repo, plan, nil); err != nil {
		return err
	}
	rep.Snapshot, m.pgState.Snapshot = snap.ID, snap.ID
	return m.pgState.save()
}

// pitrWait is how long a cutover waits for the stream to cover the source's WAL position.
var pitrWait = 2 * time.Minute

// pitrPass loads the stream's chain base when the target follows no chain yet (or the chain it
// followed ended), then replays the chain's changes since the commit the target reached: up to
// what the stream covers, or at the cutover up to the source's WAL position once covered.
func (m *ClusterMigration) pitrPass(ctx context.Context, repo *store.Repository, rep *MovePass) error {
	st := m.pgState
	within, err := pitrTarget(m.cfg, PITRRequest{})
	if err != nil {
		return err
	}
	chain, covered, err := pitr.Covered(ctx, repo, within)
	if err != nil {
		return err
	}
	t := pitr.Target{LSN: covered - 1}
	if m.req.Cutover {
		if chain, t.LSN, err = m.waitCovered(ctx, repo, within); err != nil {
			return err
		}
	}
	rep.How = "pitr-catch-up"
	if st.Reached == nil || st.Reached.Chain != chain.ID {
		base, err := repo.Snapshot(ctx, chain.Base)
		if err != nil {
			return fmt.Errorf("read base snapshot %s of chain %s: %w", chain.Base, chain.ID, err)
		}
		rep.How = "pitr-base"
		if err := m.loadPostgres(ctx, repo, base, rep); err != nil {
			return err
		}
		st.Reached = &pitr.Reached{Chain: chain.ID, Base: chain.Base, LSN: chain.StartLSN, Time: chain.BaseTime}
		if err := st.save(); err != nil {
			return err
		}
	}
	from := *st.Reached
	rep.ReachedLSN = from.LSN.String()
	if t.LSN < chain.StartLSN || (from.Xid != 0 && t.LSN <= from.LSN) {
		return nil // nothing committed since
	}
	db, _ := pgWhere(m.target.Postgres.DSN.Reveal())
	from.Database = db[strings.LastIndex(db, "/")+1:]
	reached, err := pitr.CatchUp(ctx, repo, m.target.Postgres.DSN.Reveal(), from, t, m.log)
	if reached != nil && reached.Transactions > 0 {
		// Each replayed transaction committed on the target: a rerun goes on after it.
		st.Reached = reached
		rep.Transactions, rep.Changes, rep.ReachedLSN = reached.Transactions, reached.Changes, reached.LSN.String()
		if serr := st.save(); serr != nil && err == nil {
			err = serr
		}
	}
	return err
}

// waitCovered reads the source's WAL position (ingestion paused: every commit is before it) and
// waits until the stream covers it, so the catch-up reaches the source's last commit.
func (m *ClusterMigration) waitCovered(ctx context.Context, repo *store.Repository, within pitr.Target) (*pitr.Chain, pitr.LSN, error) {
	conn, err := postgres.Connect(ctx, m.cfg.Postgres.DSN.Reveal())
	if err != nil {
		return nil, 0, fmt.Errorf("source: %w", err)
	}
	var pos string
	err = conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&pos)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, 0, postgres.Explain("read the source's WAL position", err)
	}
	lsn, err := pitr.ParseLSN(pos)
	if err != nil {
		return nil, 0, err
	}
	deadline := time.Now().Add(pitrWait)
	for {
		chain, covered, err := pitr.Covered(ctx, repo, within)
		if err != nil {
			return nil, 0, err
		}
		if covered > lsn {
			return chain, lsn, nil
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("the PITR stream covers up to %s, the source is at %s after %s: is the daemon streaming ([postgres] pitr)?", covered, lsn, pitrWait)
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// provePostgres compares every table of the snapshot the target was loaded from, row count and
// content checksum (postgres.ContentOf), on the source now (ingestion paused) and the target.
func (m *ClusterMigration) provePostgres(ctx context.Context, repo *store.Repository) (*MoveProof, error) {
	snap, err := repo.Snapshot(ctx, m.pgState.Snapshot)
	if err != nil {
		return nil, err
	}
	sec, err := postgres.ReadSection(snap)
	if err != nil {
		return nil, err
	}
	src, err := postgres.Connect(ctx, m.cfg.Postgres.DSN.Reveal())
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer src.Close(context.WithoutCancel(ctx))
	tgt, err := postgres.Connect(ctx, m.target.Postgres.DSN.Reveal())
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	defer tgt.Close(context.WithoutCancel(ctx))
	proof := &MoveProof{What: "row counts and content checksums"}
	var diffs []string
	for _, t := range sec.Tables {
		if t.ObjectRecord == nil {
			continue // a partitioned table's rows are its partitions'
		}
		want, err := postgres.ContentOf(ctx, src, t.Schema, t.Name)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		got, err := postgres.ContentOf(ctx, tgt, t.Schema, t.Name)
		if err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		proof.Compared++
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s: %d rows (checksum %s) on the target, %d (%s) on the source", t.FullName(), got.Rows, got.Sum, want.Rows, want.Sum))
		}
	}
	return proof, proofErr(proof, diffs)
}

// proofErr fails a proof with differences, naming the first ten.
func proofErr(proof *MoveProof, diffs []string) error {
	proof.Equal = len(diffs) == 0
	if proof.Equal {
		return nil
	}
	return fmt.Errorf("%d differences (was ingestion paused?): %s", len(diffs), strings.Join(diffs[:min(10, len(diffs))], "; "))
}

func (m *ClusterMigration) blobsPass(ctx context.Context, repo *store.Repository) (*MovePass, error) {
	st := m.blobState
	rep, err := m.begin(st, config.SourceBlobs)
	if err != nil {
		return nil, err
	}
	rep.How = "copy"
	snap, err := m.sourceSnapshot(ctx, repo, config.SourceBlobs)
	if err != nil {
		return nil, err
	}
	rep.Snapshot = snap.ID
	b := m.target.Blobs
	// Replace: a blob the source changed since the last pass is written again; identical ones
	// are skipped, which makes each pass move only what changed, and a rerun resume.
	res, err := blobs.Restore(ctx, repo, snap, blobs.RestoreOptions{URL: b.URL, Credentials: BlobCredentials(b), Replace: true, Workers: b.Workers, Log: m.log})
	rep.Written, rep.Bytes, rep.Identical = res.Written, res.Bytes, res.Identical
	if err != nil {
		return nil, fmt.Errorf("blobs pass %d (resumable: run it again): %w", rep.Pass, err)
	}
	if st.Owned {
		if rep.Deleted, err = m.deleteGone(ctx); err != nil {
			return nil, fmt.Errorf("blobs pass %d (resumable: run it again): %w", rep.Pass, err)
		}
	}
	if m.req.Cutover {
		if rep.Proof, err = m.proveBlobs(ctx); err != nil {
			return nil, fmt.Errorf("blobs cutover pass %d moved every change but the target does not equal the source: %w", rep.Pass, err)
		}
	}
	return m.finish(st, rep)
}

// listBlobs lists a container's blobs by name.
func listBlobs(ctx context.Context, b config.Blobs) (map[string]blobs.Entry, blobs.Container, error) {
	c, err := blobs.OpenContainer(ctx, b.URL, BlobCredentials(b), false)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]blobs.Entry{}
	if err := c.List(ctx, func(e blobs.Entry) error { out[e.Name] = e; return nil }); err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", c, err)
	}
	return out, c, nil
}

// bothListings lists the source and the target container.
func (m *ClusterMigration) bothListings(ctx context.Context) (src, dst map[string]blobs.Entry, target blobs.Container, err error) {
	if src, _, err = listBlobs(ctx, m.cfg.Blobs); err != nil {
		return nil, nil, nil, fmt.Errorf("source: %w", err)
	}
	if dst, target, err = listBlobs(ctx, m.target.Blobs); err != nil {
		return nil, nil, nil, fmt.Errorf("target: %w", err)
	}
	return src, dst, target, nil
}

// deleteGone deletes from a target this move owns the blobs the source no longer has: Langfuse
// deletes blobs (retention, a deleted project) while the passes run.
func (m *ClusterMigration) deleteGone(ctx context.Context) (int64, error) {
	src, dst, target, err := m.bothListings(ctx)
	if err != nil {
		return 0, err
	}
	del, ok := target.(blobs.Deleter)
	if !ok {
		return 0, fmt.Errorf("the target container %s cannot delete blobs", target)
	}
	var n int64
	for _, name := range sortedKeys(dst, nil) {
		if _, kept := src[name]; kept {
			continue
		}
		if err := del.Delete(ctx, name); err != nil {
			return n, fmt.Errorf("delete %s from the target, gone from the source: %w", name, err)
		}
		n++
	}
	return n, nil
}

// proveBlobs compares both containers' listings, ingestion paused: the same names, each of the
// same size, and the same MD5 where both list one. Blobs of a target the move does not own that
// the source lacks are left out.
func (m *ClusterMigration) proveBlobs(ctx context.Context) (*MoveProof, error) {
	src, dst, _, err := m.bothListings(ctx)
	if err != nil {
		return nil, err
	}
	proof := &MoveProof{Compared: len(src)}
	var diffs []string
	byMD5, foreign := 0, 0
	for _, name := range sortedKeys(src, dst) {
		a, inSrc := src[name]
		b, inDst := dst[name]
		switch {
		case !inDst:
			diffs = append(diffs, name+" is missing on the target")
		case !inSrc && !m.blobState.Owned:
			foreign++
		case !inSrc:
			diffs = append(diffs, name+" is on the target only (deleted on the source since the pass?)")
		case a.Size != b.Size:
			diffs = append(diffs, fmt.Sprintf("%s: %d bytes on the target, %d on the source", name, b.Size, a.Size))
		case a.MD5 != nil && b.MD5 != nil:
			byMD5++
			if string(a.MD5) != string(b.MD5) {
				diffs = append(diffs, name+": its MD5 differs")
			}
		}
	}
	proof.What = fmt.Sprintf("names and sizes, and MD5 of %d blobs listed with one on both sides", byMD5)
	if foreign > 0 {
		proof.What += fmt.Sprintf(" (%d blobs the target held before the move left out)", foreign)
	}
	return proof, proofErr(proof, diffs)
}

func sortedKeys(a, b map[string]blobs.Entry) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// writeMoves prints the plan of PostgreSQL and the blobs, for --dry-run.
func (p *ClusterMigrationPlan) writeMoves(w io.Writer) {
	for _, mv := range p.Moves {
		fmt.Fprintf(w, "%s: %s -> %s: %s\n  passes: %s\n", mv.Source, mv.From, mv.To, mv.What, mv.Passes)
		for _, r := range mv.Refused {
			fmt.Fprintln(w, "  refused: "+r)
		}
		for _, n := range mv.Notes {
			fmt.Fprintln(w, "  note: "+n)
		}
	}
}

// Write prints what a pass of PostgreSQL or the blobs did.
func (r *MovePass) Write(w io.Writer) {
	kind := "pass"
	if r.Cutover {
		kind = "cutover pass"
	}
	fmt.Fprintf(w, "%s %s %d (%s", r.Source, kind, r.Pass, r.How)
	if r.Snapshot != "" {
		fmt.Fprintf(w, " of snapshot %s", r.Snapshot)
	}
	fmt.Fprint(w, "): ")
	switch {
	case r.Source == config.SourceBlobs:
		fmt.Fprintf(w, "wrote %d blobs (%s) missing or changed on the target, %d identical, deleted %d gone from the source", r.Written, store.HumanBytes(r.Bytes), r.Identical, r.Deleted)
	case r.How == "copy":
		fmt.Fprintf(w, "copied %d rows", r.Rows)
	default:
		if r.Rows > 0 {
			fmt.Fprintf(w, "loaded the base, %d rows; ", r.Rows)
		}
		fmt.Fprintf(w, "replayed %d transactions, %d changes, to commit %s", r.Transactions, r.Changes, r.ReachedLSN)
	}
	fmt.Fprintf(w, " in %s\n", r.Duration)
	if r.Proof != nil {
		fmt.Fprintf(w, "%s proof: %d %s compared, %s equal\n", r.Source, r.Proof.Compared, map[string]string{config.SourcePostgres: "tables", config.SourceBlobs: "blobs"}[r.Source], r.Proof.What)
	}
}

// Write prints a run: each source's pass, and a cutover's downtime.
func (r *MoveReport) Write(w io.Writer) {
	if r.Postgres != nil {
		r.Postgres.Write(w)
	}
	if r.PassReport != nil {
		r.PassReport.Write(w)
	}
	if r.Blobs != nil {
		r.Blobs.Write(w)
	}
	if (r.Postgres != nil && r.Postgres.Cutover) || (r.Blobs != nil && r.Blobs.Cutover) {
		fmt.Fprintf(w, "downtime: %s (the whole cutover run)\n", r.Took)
	}
}
