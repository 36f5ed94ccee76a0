package pitr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/internal/tempfile"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/postgres/pgdsn"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Target is where a restore stops: the last transaction that committed at or before Time, or
// whose commit record is at or before LSN. Exactly one is set.
//
// One boundary rule holds everywhere: a target includes what committed at it; a recovery point
// (a segment's Until and EndLSN, a head's, the status page's) covers what committed before it.
// So a chain restores a target when its base's position is inside the target, and reaches it
// once its coverage is not: Target.before decides both.
type Target struct {
	Time time.Time
	LSN  LSN
	// Which chain's history: Chain by id, or the chains of Database and Slot (empty: any).
	// Chains of more than one database or slot that reach the target are refused by name.
	Chain, Database, Slot string
}

func (t Target) String() string {
	if t.LSN != 0 {
		return "LSN " + t.LSN.String()
	}
	return t.Time.UTC().Format(time.RFC3339Nano)
}

// Within names in t the chains a restore may follow, unless t names a chain: those streamed from
// dsn's database (a configured [postgres] dsn) into slot (empty: any slot). A restore then never
// follows another database's chain that happens to share the repository.
func (t Target) Within(dsn, slot string) (Target, error) {
	if t.Chain != "" {
		return t, nil
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return t, fmt.Errorf("read the database name from [postgres] dsn: %w", pgdsn.ErrInvalid)
	}
	db := cfg.Database
	if db == "" {
		db = cfg.User // the server's default, as libpq's
	}
	if t.Database == "" {
		t.Database = db
	}
	if t.Slot == "" {
		t.Slot = slot
	}
	return t, nil
}

// before reports whether a transaction committing at (lsn, at) is inside the target; of a
// recovery point, whether it falls short of the target.
func (t Target) before(lsn LSN, at time.Time) bool {
	if t.LSN != 0 {
		return lsn <= t.LSN
	}
	return !at.After(t.Time)
}

// RestoreOptions say where a point-in-time restore goes.
type RestoreOptions struct {
	DSN      string // [postgres] dsn: a superuser or database owner on the target server
	Database string // the new (or empty) database; default the base snapshot's
	Parallel int
	// MaintenanceWorkMem, MaintenanceWorkers and SplitBytes are the base restore's load and
	// index-build settings (postgres.RestoreOptions).
	MaintenanceWorkMem int64
	MaintenanceWorkers int
	SplitBytes         int64
	// Slot is [postgres] pitr_slot: with DSN's database, which chains the restore may follow
	// (Target.Within); empty, any slot's.
	Slot string
	Log  *slog.Logger
}

// Reached is the commit a restore stopped at.
type Reached struct {
	Chain        string    `json:"chain"`
	Base         string    `json:"base"`
	Database     string    `json:"database"`
	LSN          LSN       `json:"lsn"`  // the last replayed commit, or the base's LSN
	Time         time.Time `json:"time"` // its commit time, or the base's time
	Xid          uint32    `json:"xid,omitempty"`
	Transactions int64     `json:"transactions"`
	Changes      int64     `json:"changes"`
}

// Plan is which chain, base and segments reach the target.
type Plan struct {
	Chain    Chain
	Segments []Segment // in order; the last one covers the target
}

// PlanRestore picks the chain whose base precedes the target, among the chains of the target's
// database and slot (or its Chain), and the segments that reach it, or says why the target
// cannot be reached exactly. A chain broken by a missing segment record still restores a target
// before the break.
func PlanRestore(ctx context.Context, repo *store.Repository, t Target) (*Plan, error) {
	chains, err := Chains(ctx, repo)
	if err != nil {
		return nil, err
	}
	if len(chains) == 0 {
		return nil, fmt.Errorf("%w: set [postgres] pitr = true and let the daemon stream changes", errNoChain)
	}
	pick, err := pickChain(chains, t)
	if err != nil {
		return nil, err
	}
	segs, broken, err := chainSegments(ctx, repo, *pick, nil)
	if err != nil {
		return nil, err
	}
	plan := &Plan{Chain: *pick}
	coveredTime, coveredLSN := pick.BaseTime, pick.StartLSN
	for _, s := range segs {
		if !t.before(coveredLSN, coveredTime) {
			break
		}
		plan.Segments = append(plan.Segments, s)
		coveredLSN = s.EndLSN
		if s.Until.After(coveredTime) {
			coveredTime = s.Until
		}
	}
	if len(plan.Segments) == len(segs) && broken == nil {
		if coveredTime, coveredLSN, err = coverage(ctx, repo, *pick, segs); err != nil {
			return nil, err
		}
	}
	if t.before(coveredLSN, coveredTime) {
		why := "its latest durable segment"
		switch {
		case broken != nil:
			why = "it breaks: " + broken.Error()
		case !pick.Ended.IsZero():
			why = "it ended (" + pick.EndReason + ")"
		}
		return nil, fmt.Errorf("no point-in-time recovery reaches %s: chain %s covers what committed before %s (LSN %s), where %s; restore to an earlier point, or to a later one once a newer chain covers it", t, pick.ID, coveredTime.Format(time.RFC3339Nano), coveredLSN, why)
	}
	return plan, nil
}

// pickChain is the chain a restore to t replays: t.Chain, or the newest chain of t's database
// and slot whose base is inside the target. Chains of several databases or slots are never
// mixed up: more than one candidate is refused, naming each.
func pickChain(chains []Chain, t Target) (*Chain, error) {
	var of []string // what the chains are of, for a refusal
	seen := map[string]bool{}
	picks := map[string]*Chain{} // per database and slot
	var order []string
	matched := 0
	for i := range chains {
		c := &chains[i]
		key := fmt.Sprintf("database %s, slot %s", c.Database, c.Slot)
		if !seen[key] {
			seen[key] = true
			of = append(of, key)
		}
		if (t.Chain != "" && c.ID != t.Chain) || (t.Database != "" && c.Database != t.Database) || (t.Slot != "" && c.Slot != t.Slot) {
			continue
		}
		matched++
		if !t.before(c.StartLSN, c.BaseTime) {
			continue
		}
		if picks[key] == nil {
			order = append(order, key)
		}
		picks[key] = c // chains are oldest first: the newest wins
	}
	switch {
	case matched == 0 && t.Chain != "":
		return nil, fmt.Errorf("no point-in-time chain %s in the repository ('tracevault verify --all' lists them; its chains are of %s)", t.Chain, strings.Join(of, "; "))
	case matched == 0:
		return nil, fmt.Errorf("%w of database %q, slot %q: the repository's chains are of %s; set [postgres] dsn and pitr_slot to the database and slot to restore, or pass --chain ID",
			errNoChain, t.Database, t.Slot, strings.Join(of, "; "))
	case len(order) == 0:
		oldest := chains[0]
		for _, c := range chains {
			if (t.Database == "" || c.Database == t.Database) && (t.Slot == "" || c.Slot == t.Slot) && (t.Chain == "" || c.ID == t.Chain) {
				oldest = c
				break
			}
		}
		return nil, fmt.Errorf("no point-in-time recovery reaches %s: the oldest base (chain %s) is from %s, LSN %s", t, oldest.ID, oldest.BaseTime.Format(time.RFC3339Nano), oldest.StartLSN)
	case len(order) > 1:
		var names []string
		for _, k := range order {
			names = append(names, fmt.Sprintf("chain %s (%s)", picks[k].ID, k))
		}
		return nil, fmt.Errorf("chains of more than one database or slot reach %s: %s; pass --chain ID to choose, or set [postgres] dsn and pitr_slot to the database and slot to restore", t, strings.Join(names, ", "))
	}
	return picks[order[0]], nil
}

// Restore restores the plan's base into a new database and replays its segments up to the
// target, one transaction at a time in commit order.
func Restore(ctx context.Context, repo *store.Repository, opts RestoreOptions, t Target) (*Reached, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	t, err := t.Within(opts.DSN, opts.Slot)
	if err != nil {
		return nil, err
	}
	plan, err := PlanRestore(ctx, repo, t)
	if err != nil {
		return nil, err
	}
	m, err := repo.Snapshot(ctx, plan.Chain.Base)
	if err != nil {
		return nil, fmt.Errorf("read base snapshot %s of chain %s: %w (was it pruned? the chain cannot restore without it)", plan.Chain.Base, plan.Chain.ID, err)
	}
	r := postgres.NewRestorer(postgres.RestoreOptions{DSN: opts.DSN, Database: opts.Database, Parallel: opts.Parallel,
		MaintenanceWorkMem: opts.MaintenanceWorkMem, MaintenanceWorkers: opts.MaintenanceWorkers, SplitBytes: opts.SplitBytes, Log: opts.Log})
	bp, err := r.Plan(ctx, m)
	if err != nil {
		return nil, err
	}
	if bp.Mode != postgres.ModeNew && bp.Mode != postgres.ModeEmpty {
		return nil, fmt.Errorf("point-in-time restore goes into a new or empty database; %s is neither: pass --pg-database NAME", bp.Database)
	}
	opts.Log.Info("point-in-time restore: base", "chain", plan.Chain.ID, "base", m.ID, "database", bp.Database, "segments", len(plan.Segments), "target", t.String())
	if err := r.Execute(ctx, repo, bp, nil); err != nil {
		return nil, err
	}
	reached := &Reached{Chain: plan.Chain.ID, Base: m.ID, Database: bp.Database, LSN: plan.Chain.StartLSN, Time: plan.Chain.BaseTime}
	dsn, err := pgdsn.WithDatabase(opts.DSN, bp.Database)
	if err != nil {
		return nil, err
	}
	if err := replay(ctx, repo, dsn, plan, t, 0, reached, opts.Log); err != nil {
		return reached, fmt.Errorf("replay into %s stopped after commit %s (%d transactions): %w; the database is incomplete: drop it and restore again", bp.Database, reached.LSN, reached.Transactions, err)
	}
	return reached, nil
}

// replay applies the plan's transactions up to t, but for those committed at or before
// skipThrough, which the database holds already (CatchUp; 0 for none).
func replay(ctx context.Context, repo *store.Repository, dsn string, plan *Plan, t Target, skipThrough LSN, reached *Reached, log *slog.Logger) error {
	conn, err := postgres.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// As logical replication applies changes: no user triggers, no foreign-key checks (the
	// source already enforced them, in this order). Superusers only; an owner replays with them.
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		log.Warn("point-in-time restore: replaying with triggers enabled (session_replication_role needs a superuser)", "err", err)
	}
	a := &applier{conn: conn, rels: map[uint32]Relation{}, skipThrough: skipThrough}
	var last *Segment
	for i := range plan.Segments {
		seg := &plan.Segments[i]
		stop, err := a.segment(ctx, repo, seg, t, reached)
		if err != nil {
			return fmt.Errorf("segment %s..%s: %w", seg.StartLSN, seg.EndLSN, err)
		}
		last = seg
		if stop {
			break
		}
	}
	if last == nil || reached.Transactions == 0 {
		return nil
	}
	// Sequences are not decoded: the segment's record holds their values at its end, which is
	// never below what the replayed rows used.
	for _, s := range last.Sequences {
		if _, err := conn.Exec(ctx, "SELECT setval($1::regclass, $2, $3)", postgres.Ident(s.Schema, s.Name), s.LastValue, s.IsCalled); err != nil {
			return postgres.Explain("set sequence "+s.Schema+"."+s.Name, err)
		}
	}
	return nil
}

// applier replays records on one connection.
type applier struct {
	conn  *pgx.Conn
	rels  map[uint32]Relation
	batch pgconn.Batch
	n     int     // statements queued
	want  []int64 // rows each queued statement must touch (-1: any)
	what  []string
	// skipThrough: transactions committed at or before it are in the database already;
	// skipping is true inside one of them.
	skipThrough LSN
	skipping    bool
}

// segment replays one segment; stop is true once a transaction past the target was met.
func (a *applier) segment(ctx context.Context, repo *store.Repository, seg *Segment, t Target, reached *Reached) (stop bool, err error) {
	// The whole segment is fetched and checked before anything is applied: a damaged segment
	// must not half-apply.
	f, err := tempfile.Unlinked("the segment being replayed")
	if err != nil {
		return false, err
	}
	defer f.Close()
	body, err := repo.OpenNamed(ctx, seg.bodyName(), seg.Object)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(f, body)
	body.Close()
	if err != nil {
		return false, fmt.Errorf("fetch: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	rd, err := NewSegmentReader(f)
	if err != nil {
		return false, err
	}
	var tx pgx.Tx
	defer func() {
		if tx != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	var begin *Record
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			if tx != nil {
				return false, fmt.Errorf("%w: ends inside transaction %d", ErrBadSegment, begin.Xid)
			}
			return false, nil
		}
		if err != nil {
			return false, err
		}
		switch rec.Op {
		case OpRelation:
			a.rels[rec.Relation.OID] = rec.Relation
			continue
		case OpBegin:
			if !t.before(LSN(rec.LSN), rec.Time) {
				return true, nil
			}
			if a.skipping = LSN(rec.LSN) <= a.skipThrough; a.skipping {
				continue
			}
			begin = rec
			if tx, err = a.conn.Begin(ctx); err != nil {
				return false, postgres.Explain("begin replaying a transaction", err)
			}
			continue
		case OpCommit:
			if a.skipping {
				a.skipping = false
				continue
			}
			if tx == nil {
				return false, fmt.Errorf("%w: commit without begin", ErrBadSegment)
			}
			if err := a.flush(ctx); err != nil {
				return false, fmt.Errorf("transaction %d (commit %s): %w", begin.Xid, LSN(rec.LSN), err)
			}
			if err := tx.Commit(ctx); err != nil {
				return false, postgres.Explain("commit replayed transaction", err)
			}
			tx = nil
			reached.LSN, reached.Time, reached.Xid = LSN(rec.LSN), rec.Time, begin.Xid
			reached.Transactions++
			continue
		}
		if a.skipping {
			continue
		}
		if tx == nil {
			return false, fmt.Errorf("%w: change outside a transaction", ErrBadSegment)
		}
		if err := a.queue(rec); err != nil {
			return false, fmt.Errorf("transaction %d: %w", begin.Xid, err)
		}
		reached.Changes++
		if a.n >= 256 {
			if err := a.flush(ctx); err != nil {
				return false, fmt.Errorf("transaction %d: %w", begin.Xid, err)
			}
		}
	}
}

func (a *applier) add(sql string, args [][]byte, want int64, what string) {
	a.batch.ExecParams(sql, args, nil, nil, nil)
	a.n++
	a.want = append(a.want, want)
	a.what = append(a.what, what)
}

// flush runs the queued statements and checks each touched the rows it had to: a replay that
// misses a row has diverged from the source, and must say so rather than go on.
func (a *applier) flush(ctx context.Context) error {
	if a.n == 0 {
		return nil
	}
	results, err := a.conn.PgConn().ExecBatch(ctx, &a.batch).ReadAll()
	want, what := a.want, a.what
	a.batch, a.n, a.want, a.what = pgconn.Batch{}, 0, nil, nil
	if err != nil {
		// The results end at the statement that failed.
		if i := len(results) - 1; i >= 0 && results[i].Err != nil {
			return postgres.Explain(what[i], results[i].Err)
		}
		return postgres.Explain("apply changes", err)
	}
	for i, r := range results {
		if r.Err != nil {
			return postgres.Explain(what[i], r.Err)
		}
		if want[i] >= 0 && r.CommandTag.RowsAffected() != want[i] {
			return fmt.Errorf("%s touched %d rows, the source %d: the restored database diverged from the stream", what[i], r.CommandTag.RowsAffected(), want[i])
		}
	}
	return nil
}

func (a *applier) relation(oid uint32) (Relation, string, error) {
	rel, ok := a.rels[oid]
	if !ok {
		return rel, "", fmt.Errorf("%w: change for relation %d that the segment does not describe", ErrBadSegment, oid)
	}
	return rel, postgres.Ident(rel.Schema, rel.Name), nil
}

func (a *applier) queue(rec *Record) error {
	if rec.Op == OpTruncate {
		names := make([]string, len(rec.Rels))
		for i, oid := range rec.Rels {
			_, name, err := a.relation(oid)
			if err != nil {
				return err
			}
			names[i] = name
		}
		sql := "TRUNCATE ONLY " + strings.Join(names, ", ")
		if rec.Options&2 != 0 {
			sql += " RESTART IDENTITY"
		}
		if rec.Options&1 != 0 {
			sql += " CASCADE"
		}
		a.add(sql, nil, -1, "truncate "+strings.Join(names, ", "))
		return nil
	}
	rel, name, err := a.relation(rec.Rel)
	if err != nil {
		return err
	}
	for _, vals := range [][]Value{rec.Old, rec.New} {
		if vals != nil && len(vals) != len(rel.Columns) {
			return fmt.Errorf("%w: a row of %s has %d columns, its relation %d", ErrBadSegment, name, len(vals), len(rel.Columns))
		}
	}
	var sql strings.Builder
	var args [][]byte
	param := func(v Value) string {
		args = append(args, v.Data)
		return fmt.Sprintf("$%d", len(args))
	}
	switch rec.Op {
	case OpInsert:
		var cols, ps []string
		for i, c := range rel.Columns {
			if rec.New[i].Kind == ValueUnchanged {
				continue
			}
			cols = append(cols, postgres.Ident(c.Name))
			if rec.New[i].Kind == ValueNull {
				ps = append(ps, "NULL")
			} else {
				ps = append(ps, param(rec.New[i]))
			}
		}
		fmt.Fprintf(&sql, "INSERT INTO %s (%s) VALUES (%s)", name, strings.Join(cols, ", "), strings.Join(ps, ", "))
		a.add(sql.String(), args, 1, "insert into "+name)
		return nil
	case OpUpdate:
		var sets []string
		for i, c := range rel.Columns {
			switch rec.New[i].Kind {
			case ValueUnchanged:
			case ValueNull:
				sets = append(sets, postgres.Ident(c.Name)+" = NULL")
			default:
				sets = append(sets, postgres.Ident(c.Name)+" = "+param(rec.New[i]))
			}
		}
		if len(sets) == 0 {
			return nil
		}
		fmt.Fprintf(&sql, "UPDATE %s SET %s", name, strings.Join(sets, ", "))
	case OpDelete:
		fmt.Fprintf(&sql, "DELETE FROM %s", name)
	}
	// The row is found by its replica identity: the old key or row if sent, else the new
	// row's key columns (an update that did not change the key).
	old := rec.Old
	if old == nil {
		old = rec.New
	}
	full := rec.OldKind == 'O' || rel.ReplicaIdentity == 'f'
	var conds []string
	for i, c := range rel.Columns {
		if !full && !c.Key {
			continue
		}
		v := old[i]
		col := postgres.Ident(c.Name)
		switch {
		case v.Kind == ValueUnchanged:
			continue
		case v.Kind == ValueNull:
			conds = append(conds, col+" IS NULL")
		case c.Type == 114 || c.Type == 142: // json and xml have no equality operator
			conds = append(conds, col+"::text = "+param(v)+"::text")
		default:
			conds = append(conds, col+" = "+param(v))
		}
	}
	if len(conds) == 0 {
		return fmt.Errorf("%s has no replica identity to find the row by: give it a primary key or REPLICA IDENTITY FULL", name)
	}
	where := strings.Join(conds, " AND ")
	if full {
		// Identical rows are interchangeable: touch exactly one, as the source did.
		where = "ctid = (SELECT ctid FROM " + name + " WHERE " + where + " LIMIT 1)"
	}
	sql.WriteString(" WHERE " + where)
	a.add(sql.String(), args, 1, map[Op]string{OpUpdate: "update ", OpDelete: "delete from "}[rec.Op]+name)
	return nil
}
