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
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/snapshot/store"
)

// RestoreOptions choose what to restore and where.
type RestoreOptions struct {
	DSN      string   // a superuser or database owner on the target server ([postgres] dsn)
	Database string   // target database; default the snapshot's
	Tables   []string // schema.table globs (or table globs): per-table restore into the existing schema
	Parallel int      // connections loading tables and building indexes; default 2
	// MaintenanceWorkMem is maintenance_work_mem for the restore's sessions, in bytes: each
	// index build may use that much ([postgres] restore_maintenance_work_mem); default
	// DefaultMaintenanceWorkMem.
	MaintenanceWorkMem int64
	// MaintenanceWorkers, when above 0, sets max_parallel_maintenance_workers for the
	// restore's sessions; 0 leaves the server's.
	MaintenanceWorkers int
	Replace            bool // replace a non-empty target database, or tables that hold rows
	// SplitBytes: a table of this many bytes of COPY text or more loads over every
	// connection at once (copySplit; [postgres] restore_split_table_size); 0 takes
	// DefaultSplitBytes, a negative value never splits.
	SplitBytes int64
	Log        *slog.Logger
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

// DefaultMaintenanceWorkMem is a restore's maintenance_work_mem unless configured: four times
// the server's default, so the index of a table of a few million rows sorts in memory, while
// Parallel builds at once stay far below a server's memory.
const DefaultMaintenanceWorkMem = 256 << 20

// DefaultSplitBytes is the size from which a table loads over every connection: where one
// COPY takes seconds, the transactions and chunking it adds cost nothing.
const DefaultSplitBytes = 64 << 20

// Restorer plans and executes restores of a snapshot's postgres section.
type Restorer struct{ opts RestoreOptions }

// NewRestorer applies defaults; it connects only when planning.
func NewRestorer(o RestoreOptions) *Restorer {
	if o.Parallel < 1 {
		o.Parallel = 2
	}
	if o.SplitBytes == 0 {
		o.SplitBytes = DefaultSplitBytes
	}
	if o.MaintenanceWorkMem < 1<<20 {
		o.MaintenanceWorkMem = DefaultMaintenanceWorkMem
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

// sha256Hex is the form the store writes a checksum in.
var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

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
