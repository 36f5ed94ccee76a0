package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/snapshot/store"
)

// RestoreOptions choose what to restore and where.
type RestoreOptions struct {
	DSN      string   // a superuser or database owner on the target server ([postgres] dsn)
	Database string   // target database; default the snapshot's
	Tables   []string // schema.table globs (or table globs): per-table restore into the existing schema
	Parallel int      // COPY workers; default 2
	Replace  bool     // replace a non-empty target database, or tables that hold rows
	Log      *slog.Logger
}

// Restore modes.
const (
	ModeNew     = "new"     // the target does not exist: created, dropped again on failure
	ModeEmpty   = "empty"   // the target exists and holds nothing
	ModeReplace = "replace" // --replace: loaded into a staging database, swapped in at the end
	ModeTables  = "tables"  // --tables: rows reloaded into the existing schema
)

// Plan is an ordered restore; --dry-run prints it.
type Plan struct {
	Snapshot string `json:"snapshot"`
	Database string `json:"database"`
	Mode     string `json:"mode"`
	// LoadInto is the database the steps load: the target, or for ModeReplace a staging
	// database renamed to the target only once everything is loaded and verified.
	LoadInto string `json:"load_into"`
	Steps    []Step `json:"steps"`

	sec *Section
}

// Step is one action: create-database, pre-data, load, large-objects, post-data, sequences,
// verify, swap; or reload (a per-table restore of one group of tables tied by foreign keys).
type Step struct {
	Action string   `json:"action"`
	Target string   `json:"target,omitempty"`
	Tables []string `json:"tables,omitempty"`
	Rows   int64    `json:"rows,omitempty"`
	Bytes  int64    `json:"bytes,omitempty"`
	Object string   `json:"object,omitempty"`

	ref   store.ObjectRef
	loads []load
}

type load struct {
	table *TableRecord
	ref   store.ObjectRef
}

// Restorer plans and executes restores of a snapshot's postgres section.
type Restorer struct{ opts RestoreOptions }

// NewRestorer applies defaults; it connects only when planning.
func NewRestorer(o RestoreOptions) *Restorer {
	if o.Parallel < 1 {
		o.Parallel = 2
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Restorer{opts: o}
}

// ReadSection decodes a manifest's postgres section.
func ReadSection(m *store.Manifest) (*Section, error) {
	raw, ok := m.Sections["postgres"]
	if !ok {
		return nil, fmt.Errorf("snapshot %s has no postgres section; 'tracevault show %s' lists its sources", m.ID, m.ID)
	}
	var sec Section
	if err := json.Unmarshal(raw, &sec); err != nil {
		return nil, fmt.Errorf("read postgres section of snapshot %s: %w", m.ID, err)
	}
	if sec.Format > FormatVersion {
		return nil, fmt.Errorf("snapshot %s has postgres format %d; this tracevault reads up to %d: upgrade tracevault", m.ID, sec.Format, FormatVersion)
	}
	return &sec, nil
}

// Plan checks the target and orders the restore. It refuses a non-empty target database, or
// tables that hold rows, unless Replace is set.
func (r *Restorer) Plan(ctx context.Context, m *store.Manifest) (*Plan, error) {
	sec, err := ReadSection(m)
	if err != nil {
		return nil, err
	}
	objs := objectsOf(m)
	plan := &Plan{Snapshot: m.ID, Database: r.opts.Database, sec: sec}
	if plan.Database == "" {
		plan.Database = sec.Database.Name
	}
	var content []Step
	if len(r.opts.Tables) == 0 {
		// From the manifest alone: a snapshot that cannot restore whole is refused before
		// anything is connected to or created.
		if content, err = contentSteps(m, sec, objs); err != nil {
			return nil, err
		}
	}
	admin, err := r.admin(ctx)
	if err != nil {
		return nil, err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if len(r.opts.Tables) > 0 {
		plan.Mode, plan.LoadInto = ModeTables, plan.Database
		return plan, r.planTables(ctx, plan, objs.ref)
	}
	if err := r.checkRoles(ctx, admin, sec.Roles); err != nil {
		return nil, err
	}
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", plan.Database).Scan(&exists); err != nil {
		return nil, explain("check target database "+plan.Database, err)
	}
	plan.Mode, plan.LoadInto = ModeNew, plan.Database
	if exists {
		n, err := r.userObjects(ctx, plan.Database)
		if err != nil {
			return nil, err
		}
		switch {
		case n == 0:
			plan.Mode = ModeEmpty
		case !r.opts.Replace:
			return nil, fmt.Errorf("target database %s is not empty (%d objects): pass --replace to replace it (it is dropped only after the restored copy is loaded and verified), or --pg-database NAME to restore next to it", plan.Database, n)
		default:
			plan.Mode, plan.LoadInto = ModeReplace, stagingName(plan.Database)
		}
	}
	if plan.Mode != ModeEmpty {
		plan.Steps = append(plan.Steps, Step{Action: "create-database", Target: plan.LoadInto})
	}
	plan.Steps = append(plan.Steps, content...)
	plan.Steps = append(plan.Steps, Step{Action: "verify", Target: plan.LoadInto})
	if plan.Mode == ModeReplace {
		plan.Steps = append(plan.Steps, Step{Action: "swap", Target: plan.Database})
	}
	return plan, nil
}

// objects resolves a section's records to the objects its manifest lists.
type objects struct {
	id   string
	refs map[string]store.ObjectRef
}

func objectsOf(m *store.Manifest) objects {
	o := objects{id: m.ID, refs: map[string]store.ObjectRef{}}
	for _, obj := range m.Objects {
		o.refs[obj.ID] = obj.ObjectRef
	}
	return o
}

func (o objects) ref(rec *ObjectRecord, what string) (store.ObjectRef, error) {
	if rec == nil || rec.Object == "" {
		return store.ObjectRef{}, fmt.Errorf("snapshot %s has no %s object (a partial snapshot, or a damaged manifest): it cannot restore a whole database; pick a complete snapshot ('tracevault list'), or restore tables into an existing schema with --tables", o.id, what)
	}
	ref, ok := o.refs[rec.Object]
	if !ok {
		return ref, fmt.Errorf("snapshot %s lists %s but not its object %s; run 'tracevault verify %s'", o.id, what, rec.Object, o.id)
	}
	return ref, nil
}

// script resolves a schema script. Scripts are executed, so they run only from an object whose
// checksum the manifest records (the reader compares it before a statement runs): without
// one, anyone who can write to the repository could make a restore run any SQL.
func (o objects) script(rec *ObjectRecord, what string) (store.ObjectRef, error) {
	ref, err := o.ref(rec, what)
	if err != nil {
		return ref, err
	}
	if !sha256Hex.MatchString(ref.SHA256) || ref.SHA256 != rec.SHA256 {
		return ref, fmt.Errorf("snapshot %s records no valid checksum for its %s object %s (sha256 %q, the section says %q), so its SQL will not be run; run 'tracevault verify %s' and restore from another snapshot", o.id, what, ref.ID, ref.SHA256, rec.SHA256, o.id)
	}
	return ref, nil
}

// contentSteps orders what a whole-database restore replays and loads: pre-data, the tables,
// large objects, post-data, sequences.
func contentSteps(m *store.Manifest, sec *Section, objs objects) ([]Step, error) {
	if sec.DataOnly {
		return nil, fmt.Errorf("snapshot %s is data-only (taken without pg_dump): it restores only into an existing schema; pass --tables", m.ID)
	}
	pre, err := objs.script(sec.PreData, "pre-data")
	if err != nil {
		return nil, err
	}
	post, err := objs.script(sec.PostData, "post-data")
	if err != nil {
		return nil, err
	}
	steps := []Step{{Action: "pre-data", Object: pre.ID, Bytes: pre.RawSize, ref: pre}}
	for i := range sec.Tables {
		t := &sec.Tables[i]
		if t.ObjectRecord == nil {
			continue
		}
		o, err := objs.ref(t.ObjectRecord, "table "+t.FullName())
		if err != nil {
			return nil, err
		}
		steps = append(steps, Step{Action: "load", Target: t.FullName(), Rows: t.Rows, Bytes: o.RawSize, Object: o.ID, ref: o, loads: []load{{t, o}}})
	}
	if lo := sec.LargeObjects; lo != nil {
		o, err := objs.ref(&lo.ObjectRecord, "large objects")
		if err != nil {
			return nil, err
		}
		steps = append(steps, Step{Action: "large-objects", Rows: lo.Count, Bytes: o.RawSize, Object: o.ID, ref: o})
	}
	return append(steps,
		Step{Action: "post-data", Object: post.ID, Bytes: post.RawSize, ref: post},
		Step{Action: "sequences", Rows: int64(len(sec.Sequences))}), nil
}

func stagingName(db string) string {
	if len(db) > 40 {
		// Names are UTF-8: a cut inside a character would make one the server refuses.
		db = strings.ToValidUTF8(db[:40], "")
	}
	return fmt.Sprintf("%s__tvrestore_%d", db, time.Now().Unix()%1e6)
}

// admin connects to the server's maintenance database, from which databases are created,
// dropped and renamed (never from inside the target).
func (r *Restorer) admin(ctx context.Context) (*pgx.Conn, error) {
	var firstErr error
	for _, db := range []string{"postgres", "template1"} {
		dsn, err := withDatabase(r.opts.DSN, db)
		if err != nil {
			return nil, err
		}
		conn, err := connect(ctx, dsn)
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

func (r *Restorer) connectTo(ctx context.Context, db string) (*pgx.Conn, error) {
	dsn, err := withDatabase(r.opts.DSN, db)
	if err != nil {
		return nil, err
	}
	return connect(ctx, dsn)
}

func (r *Restorer) checkRoles(ctx context.Context, admin *pgx.Conn, roles []string) error {
	rows, err := admin.Query(ctx, "SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", roles)
	if err != nil {
		return explain("check roles", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return explain("check roles", err)
	}
	var missing []string
	for _, role := range roles {
		if !slices.Contains(have, role) {
			missing = append(missing, role)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("roles %s own or are granted objects in the snapshot but do not exist on the target server: create them first (pg_dumpall --roles-only on the source prints their definitions)", strings.Join(missing, ", "))
	}
	return nil
}

// userObjects counts what a database holds beyond what CREATE DATABASE puts there.
func (r *Restorer) userObjects(ctx context.Context, db string) (int64, error) {
	conn, err := r.connectTo(ctx, db)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	err = conn.QueryRow(ctx, `
		WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema')
		            AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp\_%')
		SELECT (SELECT count(*) FROM pg_class WHERE relnamespace IN (SELECT oid FROM ns))
		     + (SELECT count(*) FROM pg_type WHERE typnamespace IN (SELECT oid FROM ns) AND typtype IN ('e', 'd', 'r', 'm', 'c') AND typrelid = 0)`).Scan(&n)
	if err != nil {
		return 0, explain("inspect target database "+db, err)
	}
	return n, nil
}

// matches reports whether a --tables glob names t: schema.table globs, or a bare table glob
// in any schema; a partitioned table's glob takes its partitions along.
func matches(globs []string, t *TableRecord) bool {
	for _, g := range globs {
		for _, name := range []string{t.FullName(), t.Parent} {
			if name == "" {
				continue
			}
			if !strings.Contains(g, ".") {
				_, name, _ = strings.Cut(name, ".")
			}
			if ok, _ := path.Match(g, name); ok {
				return true
			}
		}
	}
	return false
}

// planTables groups the selected tables by the foreign keys among them: each group is
// reloaded in one transaction, so rows that reference each other arrive together.
func (r *Restorer) planTables(ctx context.Context, plan *Plan, ref func(*ObjectRecord, string) (store.ObjectRef, error)) error {
	for _, g := range r.opts.Tables {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("--tables %q: bad glob: %w", g, err)
		}
	}
	conn, err := r.connectTo(ctx, plan.Database)
	if err != nil {
		return fmt.Errorf("%w; a per-table restore loads into an existing schema: omit --tables to restore the whole database", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var selected []*TableRecord
	for i := range plan.sec.Tables {
		t := &plan.sec.Tables[i]
		if t.ObjectRecord != nil && matches(r.opts.Tables, t) {
			selected = append(selected, t)
		}
	}
	if len(selected) == 0 {
		return fmt.Errorf("--tables %s matches no table of snapshot %s; 'tracevault show %s' lists them", strings.Join(r.opts.Tables, ","), plan.Snapshot, plan.Snapshot)
	}
	var busy []string
	for _, t := range selected {
		var hasRows bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM ONLY "+Ident(t.Schema, t.Name)+")").Scan(&hasRows); err != nil {
			return explain("check target table "+t.FullName()+" (a per-table restore needs the table to exist)", err)
		}
		if hasRows {
			busy = append(busy, t.FullName())
		}
	}
	if len(busy) > 0 && !r.opts.Replace {
		return fmt.Errorf("tables %s in database %s hold rows: pass --replace to replace them (each group in one transaction)", strings.Join(busy, ", "), plan.Database)
	}
	fks, err := catalogReader{q: conn, schemas: plan.sec.Schemas}.foreignKeys(ctx)
	if err != nil {
		return explain("read foreign keys of "+plan.Database, err)
	}
	parent := map[string]string{}
	for _, t := range selected {
		parent[t.FullName()] = t.FullName()
	}
	var root func(string) string
	root = func(n string) string {
		if parent[n] != n {
			parent[n] = root(parent[n])
		}
		return parent[n]
	}
	for _, fk := range fks {
		c, p := fk.Child.FullName(), fk.Parent.FullName()
		if _, ok := parent[c]; !ok {
			continue
		}
		if _, ok := parent[p]; !ok {
			continue
		}
		parent[root(c)] = root(p)
	}
	steps := map[string]*Step{}
	var order []string
	for _, t := range selected {
		g := root(t.FullName())
		s, ok := steps[g]
		if !ok {
			s = &Step{Action: "reload"}
			steps[g] = s
			order = append(order, g)
		}
		o, err := ref(t.ObjectRecord, "table "+t.FullName())
		if err != nil {
			return err
		}
		s.Tables = append(s.Tables, t.FullName())
		s.Rows += t.Rows
		s.Bytes += o.RawSize
		s.loads = append(s.loads, load{t, o})
	}
	for _, g := range order {
		plan.Steps = append(plan.Steps, *steps[g])
	}
	return nil
}

// Progress is told about each step as it finishes.
type Progress func(done, total int, s Step)

// Execute runs a plan. A failure rolls back what it can and says what state the target is in.
func (r *Restorer) Execute(ctx context.Context, repo *store.Repository, plan *Plan, progress Progress) error {
	if progress == nil {
		progress = func(int, int, Step) {}
	}
	if plan.Mode == ModeTables {
		return r.executeTables(ctx, repo, plan, progress)
	}
	done, err := r.executeFull(ctx, repo, plan, progress)
	if err == nil {
		return nil
	}
	return r.rollbackFull(context.WithoutCancel(ctx), plan, done, err)
}

// executeFull returns how many steps finished.
func (r *Restorer) executeFull(ctx context.Context, repo *store.Repository, plan *Plan, progress Progress) (int, error) {
	var loads []Step
	done := 0
	finish := func(s Step) {
		done++
		progress(done, len(plan.Steps), s)
	}
	for _, s := range plan.Steps {
		var err error
		switch s.Action {
		case "create-database":
			err = r.createDatabase(ctx, plan)
		case "pre-data":
			err = r.runScript(ctx, repo, plan.LoadInto, s)
		case "post-data":
			if err = r.loadAll(ctx, repo, plan, loads, finish); err != nil {
				return done, err
			}
			err = r.runPostData(ctx, repo, plan.LoadInto, s)
		case "load", "large-objects":
			loads = append(loads, s)
			continue
		case "sequences":
			err = r.setSequences(ctx, plan)
		case "verify":
			start := time.Now()
			err = r.verify(ctx, plan)
			r.opts.Log.Info("verified row counts", "database", plan.LoadInto, "seconds", time.Since(start).Seconds())
		case "swap":
			err = r.swap(ctx, plan)
		}
		if err != nil {
			return done, fmt.Errorf("restore step %s: %w", s.Action, err)
		}
		finish(s)
	}
	return done, nil
}

func (r *Restorer) rollbackFull(ctx context.Context, plan *Plan, done int, cause error) error {
	if done == 0 {
		// The first step is creating the database or pre-data, which is one transaction.
		return fmt.Errorf("%w; nothing was changed", cause)
	}
	state := fmt.Sprintf("%d of %d steps done", done, len(plan.Steps))
	switch plan.Mode {
	case ModeEmpty:
		return fmt.Errorf("%w; database %s now holds a partial restore (%s): drop and recreate it empty, then restore again", cause, plan.Database, state)
	case ModeNew, ModeReplace:
		if plan.Mode == ModeReplace && done == len(plan.Steps)-1 {
			return fmt.Errorf("%w; the restored copy is loaded and verified in database %s: once %s is gone, rename the copy with ALTER DATABASE %s RENAME TO %s", cause, plan.LoadInto, plan.Database, Ident(plan.LoadInto), Ident(plan.Database))
		}
		if err := r.dropDatabase(ctx, plan.LoadInto); err != nil {
			return fmt.Errorf("%w; database %s holds a partial restore (%s) and could not be dropped (%v): drop it by hand", cause, plan.LoadInto, state, err)
		}
	}
	if plan.Mode == ModeReplace {
		return fmt.Errorf("%w; the partial copy was dropped and database %s is unchanged", cause, plan.Database)
	}
	return fmt.Errorf("%w; database %s, created by this restore, was dropped again: nothing changed", cause, plan.Database)
}

func (r *Restorer) createDatabase(ctx context.Context, plan *Plan) error {
	admin, err := r.admin(ctx)
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	d := plan.sec.Database
	sql := fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s",
		Ident(plan.LoadInto), literal(d.Encoding), literal(d.Collate), literal(d.Ctype))
	if _, err := admin.Exec(ctx, sql); err != nil {
		return explain("create database "+plan.LoadInto+" (encoding "+d.Encoding+", locale "+d.Collate+" as the source)", err)
	}
	return nil
}

func (r *Restorer) dropDatabase(ctx context.Context, db string) error {
	admin, err := r.admin(ctx)
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+Ident(db)+" WITH (FORCE)"); err != nil {
		return explain("drop database "+db, err)
	}
	return nil
}

// swap replaces the target with the loaded staging copy.
func (r *Restorer) swap(ctx context.Context, plan *Plan) error {
	admin, err := r.admin(ctx)
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+Ident(plan.Database)+" WITH (FORCE)"); err != nil {
		return explain("drop the old "+plan.Database, err)
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+Ident(plan.LoadInto)+" RENAME TO "+Ident(plan.Database)); err != nil {
		return explain("rename "+plan.LoadInto+" to "+plan.Database, err)
	}
	return nil
}

// runScript replays a pg_dump section as one simple-protocol message: the server runs it as
// one implicit transaction, so a failing statement leaves none of the section behind.
func (r *Restorer) runScript(ctx context.Context, repo *store.Repository, db string, s Step) error {
	sql, err := readScript(ctx, repo, s)
	if err != nil {
		return err
	}
	conn, err := r.connectTo(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	start := time.Now()
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		return explain("run "+s.Action+" in "+db, err)
	}
	r.opts.Log.Info("replayed schema", "section", s.Action, "database", db, "seconds", time.Since(start).Seconds())
	return nil
}

// sha256Hex is the form the store writes a checksum in.
var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// readScript reads a whole schema object into memory before any of it runs: the store checks
// the checksum only at the end of the object, and a statement executed before that check
// could come from a swapped object.
func readScript(ctx context.Context, repo *store.Repository, s Step) (string, error) {
	obj, err := repo.OpenObject(ctx, s.ref)
	if err != nil {
		return "", err
	}
	defer obj.Close()
	sql, err := scriptSQL(obj)
	if err != nil {
		return "", fmt.Errorf("read %s object %s: %w", s.Action, s.ref.ID, err)
	}
	return sql, nil
}

// parallelSafe are post-data entries that lock only their own table, so any number run at
// once without deadlock; pg_dump writes them first, together. Foreign keys lock two tables
// and wait for the indexes they reference, so they and everything after run in order.
func parallelSafe(typ string) bool { return typ == "INDEX" || typ == "CONSTRAINT" }

// runPostData builds indexes and constraints on Parallel connections, as pg_restore -j does,
// then the rest of post-data in pg_dump's order. Each entry commits on its own: a failed
// restore of a new database drops it whole, so one transaction would buy nothing.
func (r *Restorer) runPostData(ctx context.Context, repo *store.Repository, db string, s Step) error {
	sql, err := readScript(ctx, repo, s)
	if err != nil {
		return err
	}
	entries := splitScript(sql)
	conns := make([]*pgx.Conn, r.opts.Parallel)
	for i := range conns {
		if conns[i], err = r.connectTo(ctx, db); err != nil {
			return err
		}
		defer conns[i].Close(context.WithoutCancel(ctx))
	}
	start := time.Now()
	for i := 0; i < len(entries); {
		j := i
		for j < len(entries) && parallelSafe(entries[j].Type) {
			j++
		}
		if j == i {
			if err := r.runEntry(ctx, conns[0], entries[i]); err != nil {
				return err
			}
			i++
			continue
		}
		if err := onEach(ctx, conns, entries[i:j], r.runEntry); err != nil {
			return err
		}
		i = j
	}
	r.opts.Log.Info("replayed schema", "section", s.Action, "database", db, "entries", len(entries), "seconds", time.Since(start).Seconds())
	return nil
}

func (r *Restorer) runEntry(ctx context.Context, conn *pgx.Conn, e entry) error {
	start := time.Now()
	if _, err := conn.PgConn().Exec(ctx, e.SQL).ReadAll(); err != nil {
		return explain(fmt.Sprintf("post-data %s %.120s", e.Type, statementOf(e.SQL)), err)
	}
	r.opts.Log.Debug("post-data entry", "type", e.Type, "statement", statementOf(e.SQL), "seconds", time.Since(start).Seconds())
	return nil
}

// onEach hands items out to one worker per connection, in order, and stops them all at the
// first error, which it returns.
func onEach[T any](ctx context.Context, conns []*pgx.Conn, items []T, do func(context.Context, *pgx.Conn, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan T, len(items))
	for _, it := range items {
		work <- it
	}
	close(work)
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Go(func() {
			for it := range work {
				if ctx.Err() != nil {
					return
				}
				if err := do(ctx, conn, it); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// loadAll runs the load steps on Parallel connections, largest first (the manifest's order).
func (r *Restorer) loadAll(ctx context.Context, repo *store.Repository, plan *Plan, steps []Step, finish func(Step)) error {
	var conns []*pgx.Conn
	defer func() {
		for _, c := range conns {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	for range min(r.opts.Parallel, len(steps)) {
		conn, err := r.connectTo(ctx, plan.LoadInto)
		if err != nil {
			return err
		}
		conns = append(conns, conn)
		// A failed restore is dropped, not recovered, so commits need not wait for the WAL flush.
		if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
			return explain("prepare a load connection", err)
		}
	}
	var mu sync.Mutex
	return onEach(ctx, conns, steps, func(ctx context.Context, conn *pgx.Conn, s Step) error {
		start := time.Now()
		var err error
		if s.Action == "large-objects" {
			err = loadLargeObjects(ctx, conn, repo, s)
		} else {
			err = copyFrozen(ctx, conn, repo, s.loads[0])
		}
		if err != nil {
			return fmt.Errorf("restore step %s %s: %w", s.Action, s.Target, err)
		}
		r.opts.Log.Info("loaded", "table", s.Target, "rows", s.Rows, "seconds", time.Since(start).Seconds())
		mu.Lock()
		finish(s)
		mu.Unlock()
		return nil
	})
}

// copyFrozen loads a table of a new database with COPY FREEZE: rows arrive frozen and
// all-visible, so the index builds, foreign-key checks and row counts that follow, and the
// first queries after the restore, do not rewrite every page to set hint bits. FREEZE needs
// the table emptied in the same transaction, hence the TRUNCATE of a table known to be empty.
func copyFrozen(ctx context.Context, conn *pgx.Conn, repo *store.Repository, l load) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return explain("begin loading "+l.table.FullName(), err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "TRUNCATE ONLY "+Ident(l.table.Schema, l.table.Name)); err != nil {
		return explain("prepare "+l.table.FullName(), err)
	}
	if err := copyIn(ctx, conn, repo, l, " WITH (FREEZE)"); err != nil {
		return err
	}
	return explain("commit "+l.table.FullName(), tx.Commit(ctx))
}

// copyIn streams one table's object into COPY FROM STDIN; the object's checksum is checked as
// it is read, so a damaged object aborts the COPY.
func copyIn(ctx context.Context, conn *pgx.Conn, repo *store.Repository, l load, options string) error {
	obj, err := openGuarded(ctx, repo, l.ref)
	if err != nil {
		return err
	}
	defer obj.Close()
	sql := "COPY " + Ident(l.table.Schema, l.table.Name) + columnList(l.table.Columns) + " FROM STDIN" + options
	tag, err := conn.PgConn().CopyFrom(ctx, obj, sql)
	if err != nil {
		return obj.cause("load "+l.table.FullName(), err)
	}
	if tag.RowsAffected() != l.table.Rows {
		return fmt.Errorf("load %s: %d rows loaded, the snapshot has %d", l.table.FullName(), tag.RowsAffected(), l.table.Rows)
	}
	return nil
}

// guarded serialises Read and Close: pgconn's CopyFrom can return on a server error while
// its reading goroutine is still inside Read, and closing the decoder under it crashes.
type guarded struct {
	mu      sync.Mutex
	r       io.ReadCloser
	closed  bool
	readErr error // the object's own failure (a checksum mismatch), which aborted the COPY
}

func openGuarded(ctx context.Context, repo *store.Repository, ref store.ObjectRef) (*guarded, error) {
	r, err := repo.OpenObject(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &guarded{r: r}, nil
}

func (g *guarded) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, io.ErrClosedPipe
	}
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		g.readErr = err
	}
	return n, err
}

// cause explains a failed COPY: pgconn turns a read error into CopyFail, so the server's
// answer only quotes it; the object's own error is returned instead, where there is one, so
// that a damaged object stays recognisable (store.ErrCorrupt).
func (g *guarded) cause(doing string, err error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.readErr != nil {
		return fmt.Errorf("%s: %w", doing, g.readErr)
	}
	return explain(doing, err)
}

func (g *guarded) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return g.r.Close()
}

func loadLargeObjects(ctx context.Context, conn *pgx.Conn, repo *store.Repository, s Step) error {
	obj, err := openGuarded(ctx, repo, s.ref)
	if err != nil {
		return err
	}
	defer obj.Close()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return explain("begin loading large objects", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE tracevault_lo (oid oid, data bytea) ON COMMIT DROP"); err != nil {
		return explain("load large objects", err)
	}
	if _, err := conn.PgConn().CopyFrom(ctx, obj, "COPY tracevault_lo FROM STDIN"); err != nil {
		return obj.cause("load large objects", err)
	}
	if _, err := tx.Exec(ctx, "SELECT lo_from_bytea(oid, data) FROM tracevault_lo"); err != nil {
		return explain("create large objects", err)
	}
	return explain("commit large objects", tx.Commit(ctx))
}

func (r *Restorer) setSequences(ctx context.Context, plan *Plan) error {
	conn, err := r.connectTo(ctx, plan.LoadInto)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range plan.sec.Sequences {
		if _, err := conn.Exec(ctx, "SELECT setval($1::regclass, $2, $3)", Ident(s.Schema, s.Name), s.LastValue, s.IsCalled); err != nil {
			return explain("set sequence "+s.Schema+"."+s.Name, err)
		}
	}
	return nil
}

// verify counts every table's rows in the loaded database against the manifest.
func (r *Restorer) verify(ctx context.Context, plan *Plan) error {
	conn, err := r.connectTo(ctx, plan.LoadInto)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var bad []string
	for _, t := range plan.sec.Tables {
		if t.ObjectRecord == nil {
			continue
		}
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM ONLY "+Ident(t.Schema, t.Name)).Scan(&n); err != nil {
			return explain("count "+t.FullName(), err)
		}
		if n != t.Rows {
			bad = append(bad, fmt.Sprintf("%s has %d rows, the snapshot %d", t.FullName(), n, t.Rows))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("row counts differ from the snapshot: %s", strings.Join(bad, "; "))
	}
	return nil
}

// executeTables reloads each group in one transaction. Triggers, foreign-key actions included,
// are off for the reload (session_replication_role = replica, as pg_restore
// --disable-triggers does), so deleting the old rows cascades nowhere; every foreign key
// touching the group is then checked before commit.
func (r *Restorer) executeTables(ctx context.Context, repo *store.Repository, plan *Plan, progress Progress) error {
	conn, err := r.connectTo(ctx, plan.Database)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	fks, err := catalogReader{q: conn, schemas: plan.sec.Schemas}.foreignKeys(ctx)
	if err != nil {
		return explain("read foreign keys of "+plan.Database, err)
	}
	for i, s := range plan.Steps {
		if err := reloadGroup(ctx, conn, repo, s, fks); err != nil {
			restored := "no group was restored"
			if i > 0 {
				restored = fmt.Sprintf("the %d groups before it were restored and committed", i)
			}
			return fmt.Errorf("reload %s: %w; its transaction was rolled back, so those tables are as they were; %s", strings.Join(s.Tables, ", "), err, restored)
		}
		r.opts.Log.Info("reloaded tables", "tables", s.Tables, "rows", s.Rows)
		progress(i+1, len(plan.Steps), s)
	}
	return nil
}

func reloadGroup(ctx context.Context, conn *pgx.Conn, repo *store.Repository, s Step, fks []ForeignKey) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return explain("begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		return explain("turn triggers off for the reload (needs a superuser, or GRANT SET ON PARAMETER session_replication_role)", err)
	}
	for _, l := range s.loads {
		if _, err := tx.Exec(ctx, "DELETE FROM ONLY "+Ident(l.table.Schema, l.table.Name)); err != nil {
			return explain("empty "+l.table.FullName(), err)
		}
	}
	for _, l := range s.loads {
		if err := copyIn(ctx, conn, repo, l, ""); err != nil {
			return err
		}
	}
	for _, fk := range fks {
		if !slices.Contains(s.Tables, fk.Child.FullName()) && !slices.Contains(s.Tables, fk.Parent.FullName()) {
			continue
		}
		if err := checkForeignKey(ctx, tx, fk); err != nil {
			return err
		}
	}
	return explain("commit", tx.Commit(ctx))
}

// checkForeignKey finds child rows whose key (all columns set, MATCH SIMPLE) has no parent.
func checkForeignKey(ctx context.Context, tx pgx.Tx, fk ForeignKey) error {
	var set, join []string
	for i, c := range fk.ChildColumns {
		set = append(set, "c."+Ident(c)+" IS NOT NULL")
		join = append(join, "p."+Ident(fk.ParentColumns[i])+" = c."+Ident(c))
	}
	sql := fmt.Sprintf("SELECT count(*) FROM %s c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)",
		Ident(fk.Child.Schema, fk.Child.Name), strings.Join(set, " AND "), Ident(fk.Parent.Schema, fk.Parent.Name), strings.Join(join, " AND "))
	var orphans int64
	if err := tx.QueryRow(ctx, sql).Scan(&orphans); err != nil {
		return explain("check foreign key "+fk.Name, err)
	}
	if orphans > 0 {
		return fmt.Errorf("foreign key %s: %d rows of %s would reference missing rows of %s; add both tables to --tables to restore them together, or restore the whole database", fk.Name, orphans, fk.Child.FullName(), fk.Parent.FullName())
	}
	return nil
}

// WritePlan prints a plan for --dry-run.
func WritePlan(w io.Writer, p *Plan) {
	var rows, bytes int64
	for _, s := range p.Steps {
		bytes += s.Bytes
		if s.Action == "load" || s.Action == "reload" {
			rows += s.Rows
		}
		switch s.Action {
		case "load":
			fmt.Fprintf(w, "load           %s: %d rows, %s from object %.12s\n", s.Target, s.Rows, store.HumanBytes(s.Bytes), s.Object)
		case "reload":
			fmt.Fprintf(w, "reload         %s in one transaction: %d rows, %s\n", strings.Join(s.Tables, ", "), s.Rows, store.HumanBytes(s.Bytes))
		case "large-objects":
			fmt.Fprintf(w, "large-objects  %d, %s\n", s.Rows, store.HumanBytes(s.Bytes))
		case "sequences":
			fmt.Fprintf(w, "sequences      %d set to their recorded values\n", s.Rows)
		case "pre-data", "post-data":
			fmt.Fprintf(w, "%-14s %s of DDL from object %.12s\n", s.Action, store.HumanBytes(s.Bytes), s.Object)
		default:
			fmt.Fprintf(w, "%-14s %s\n", s.Action, s.Target)
		}
	}
	fmt.Fprintf(w, "plan: %s restore of snapshot %s into database %s: %d steps, %d rows, %s\n", p.Mode, p.Snapshot, p.Database, len(p.Steps), rows, store.HumanBytes(bytes))
}
