// Executing a restore plan: loading each partition through a staging table (Native insert or
// parts-tar attach) and REPLACE PARTITION, then verifying row counts.

package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Progress is told about each step as it finishes.
type Progress func(done, total int, s Step)

// Execute runs a plan: DDL on the cluster, each partition through a staging table and an atomic
// REPLACE PARTITION, views last, then waits for replication and checks row counts everywhere.
// Every step is idempotent, so rerunning after an interruption is safe.
//
// Partitions load several at once (Options.Parallel), across tables, while the next tables are
// created (see scheduler): each load waits on its server for a staging table, an insert or
// attach and a REPLACE PARTITION, so one at a time leaves tracevault and the servers mostly
// idle. The other replicas fetch each partition as its REPLACE PARTITION lands, while the next
// ones load; the check at the end only waits for the last fetches.
func (r *Restorer) Execute(ctx context.Context, repo *store.Repository, plan *Plan, progress Progress) error {
	// A Replacing or Aggregating table may legitimately lose rows to a merge right after the
	// load, which would make the row-count check below fail on a correct restore.
	defer r.setMerges(context.WithoutCancel(ctx), plan, "START")
	c := &counter{total: len(plan.Steps), progress: progress}
	staging := newStagingTables()
	sc := &scheduler{
		workers: clickhouse.Workers(r.opts.Parallel),
		create:  r.create,
		load:    func(ctx context.Context, s Step) error { return r.loadPartition(ctx, repo, staging, s) },
		other:   r.runStep,
		done:    c.finished,
	}
	if err := sc.run(ctx, plan.Steps); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.dropStaging(ctx, plan)
	return r.verify(ctx, plan)
}

// create runs a create-database or create-table step (waiting for replicas whose distributed
// DDL queue is behind: execCreate); a table's merges are stopped on every replica before any of
// its partitions loads.
func (r *Restorer) create(ctx context.Context, s Step) error {
	if err := r.execCreate(ctx, s); err != nil {
		return err
	}
	if s.Action == ActionCreateTable {
		r.setMerges(ctx, &Plan{Steps: []Step{s}}, "STOP")
		if s.table != nil && s.table.RowsNotKept != "" {
			r.opts.Log.Warn("a table is restored empty: the snapshot holds its definition only", "table", s.Target, "why", s.table.RowsNotKept)
		}
	}
	return nil
}

// runStep runs a step that is neither a create nor a load.
func (r *Restorer) runStep(ctx context.Context, s Step) error {
	switch s.Action {
	case ActionCreateView:
		return r.execCreate(ctx, s) // a view is created ON CLUSTER too, through the same queue
	case ActionRestoreMetadata:
		return r.restoreMetadata(ctx, s)
	case ActionDropRegistration:
		return clickhouse.DropRegistration(ctx, r.opts.ZooKeeper, s.ZooKeeperPath)
	case ActionDropGroup:
		return clickhouse.DropGroup(ctx, r.opts.ZooKeeper, s.ZooKeeperPath)
	}
	return fmt.Errorf("a restore plan has no step %q", s.Action)
}

// setMerges stops or starts background merges of the plan's tables on every reachable replica,
// the replicas side by side: a statement each, which is waiting, not work.
func (r *Restorer) setMerges(ctx context.Context, plan *Plan, verb string) {
	var wg sync.WaitGroup
	for _, srv := range r.servers {
		wg.Go(func() {
			for _, s := range plan.Steps {
				if s.Action != ActionCreateTable || !s.table.HasData() {
					continue
				}
				db, table, _ := strings.Cut(s.Target, ".")
				if err := srv.Conn.Exec(ctx, fmt.Sprintf("SYSTEM %s MERGES %s.%s", verb, clickhouse.QuoteIdent(db), clickhouse.QuoteIdent(table))); err != nil {
					r.opts.Log.Debug("could not change merges", "verb", verb, "table", s.Target, "replica", srv.Addr, "err", err)
				}
			}
		})
	}
	wg.Wait()
}

func stagingName(table string) string { return "__tracevault_staging_" + table }

// stagingTables creates each staging table once per replica, however many of its partitions
// load at once: concurrent CREATE TABLE IF NOT EXISTS of one name can fail on 18.16 ("is
// creating or attaching right now").
//
// A table has one staging twin per replica, shared by the loads of all its partitions, rather
// than one per partition (a CREATE and a DROP each, DDL that is slow on a busy 18.16). Sharing is
// safe because each load touches only its own partition of the twin: it empties it with DROP
// PARTITION ID, inserts an object holding that partition's rows only (or attaches its own
// detached parts, see clickhouse.LocalFS.UnpackDetached), counts it and moves it with REPLACE
// PARTITION ID. Two loads of the same partition into one replica, which a plan has only when a
// migration folds several replicas' local tables into one server, would empty each other's rows:
// those wait for each other (lock).
type stagingTables struct {
	mu     sync.Mutex
	tables map[string]*stagingTable // by replica and staging table
	busy   map[string]*sync.Mutex   // by replica, staging table and partition
}

type stagingTable struct {
	once sync.Once
	err  error
}

func newStagingTables() *stagingTables {
	return &stagingTables{tables: map[string]*stagingTable{}, busy: map[string]*sync.Mutex{}}
}

// lock holds a partition of a staging table on a replica for one load, until unlock is called.
func (st *stagingTables) lock(addr, db, staging, partition string) (unlock func()) {
	key := addr + " " + db + "." + staging + " " + partition
	st.mu.Lock()
	m, ok := st.busy[key]
	if !ok {
		m = &sync.Mutex{}
		st.busy[key] = m
	}
	st.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// prepare creates the staging twin of s's table on srv, with merges stopped: a Replacing merge
// there would drop duplicates before the row check.
func (st *stagingTables) prepare(ctx context.Context, r *Restorer, srv *clickhouse.Server, s Step, db, staging string) error {
	st.mu.Lock()
	t, ok := st.tables[srv.Addr+" "+db+"."+staging]
	if !ok {
		t = &stagingTable{}
		st.tables[srv.Addr+" "+db+"."+staging] = t
	}
	st.mu.Unlock()
	t.once.Do(func() {
		create, err := clickhouse.RewriteCreate(s.table.Create, clickhouse.Rewrite{Database: db, Table: staging, DBMap: r.opts.DatabaseMap, Staging: true})
		if err != nil {
			t.err = err
			return
		}
		stagingFull := clickhouse.QuoteIdent(db) + "." + clickhouse.QuoteIdent(staging)
		for _, sql := range []string{create, "SYSTEM STOP MERGES " + stagingFull} {
			if err := srv.Conn.Exec(ctx, sql); err != nil {
				t.err = fmt.Errorf("prepare staging table %s on %s: %w", stagingFull, srv.Addr, err)
				return
			}
		}
	})
	return t.err
}

func (r *Restorer) loadPartition(ctx context.Context, repo *store.Repository, st *stagingTables, s Step) error {
	srv := r.servers[s.Replica]
	db, table, _ := strings.Cut(s.Target, ".")
	staging := stagingName(table)
	if err := st.prepare(ctx, r, srv, s, db, staging); err != nil {
		return err
	}
	defer st.lock(srv.Addr, db, staging, s.Partition)()
	stagingFull := clickhouse.QuoteIdent(db) + "." + clickhouse.QuoteIdent(staging)
	// A load whose connection broke is done again from the start: see stage.
	err := clickhouse.Retry(ctx, r.opts.Log, "a partition's load broke off; loading it again from its object",
		[]any{"table", s.Target, "partition", s.Partition, "replica", srv.Addr}, func() error {
			return r.stage(ctx, repo, srv, s, db, staging)
		})
	if err != nil {
		return fmt.Errorf("load object %s into %s: %w", s.ref.Name(), stagingFull, err)
	}
	// The check comes before the swap: a partition whose object does not hold the recorded
	// rows must leave the target as it was.
	staged, err := partitionRowCount(ctx, srv, db, staging, s.Partition)
	if err != nil {
		return err
	}
	if staged != s.Rows {
		return fmt.Errorf("object %s loaded %d rows into %s partition %s, the snapshot records %d; the target was not changed: run 'tracevault verify --read-data' on the snapshot", s.ref.Name(), staged, stagingFull, s.Partition, s.Rows)
	}
	target := clickhouse.QuoteIdent(db) + "." + clickhouse.QuoteIdent(table)
	swap := fmt.Sprintf("ALTER TABLE %s REPLACE PARTITION ID %s FROM %s", target, clickhouse.QuoteString(s.Partition), stagingFull)
	if staged == 0 {
		// The snapshot holds the partition empty: every row of it was deleted in place before
		// the cut (Langfuse v4's lightweight deletes). Newer servers refuse REPLACE PARTITION
		// from an empty source (code 36, allow_replace_partition_from_empty_source, which 18.16
		// does not know); dropping the target's partition is the same swap.
		swap = fmt.Sprintf("ALTER TABLE %s DROP PARTITION ID %s", target, clickhouse.QuoteString(s.Partition))
	}
	if err := srv.Conn.Exec(ctx, swap); err != nil {
		return fmt.Errorf("replace partition %s of %s on %s: %w", s.Partition, s.Target, srv.Addr, err)
	}
	return nil
}

// attachParts unpacks an object of frozen parts into the staging table's detached/ directory
// and attaches the partition. The staging table was created from the recorded CREATE, so the
// parts' columns match it.
func (r *Restorer) attachParts(ctx context.Context, srv *clickhouse.Server, db, staging, partition string, obj io.Reader) error {
	if err := r.local.UnpackDetached(ctx, srv, db, staging, partition, obj); err != nil {
		return err
	}
	attach := fmt.Sprintf("ALTER TABLE %s.%s ATTACH PARTITION ID %s", clickhouse.QuoteIdent(db), clickhouse.QuoteIdent(staging), clickhouse.QuoteString(partition))
	if err := srv.Conn.Exec(ctx, attach); err != nil {
		return fmt.Errorf("attach partition %s of %s.%s on %s: %w", partition, db, staging, srv.Addr, err)
	}
	return nil
}

// dropStaging drops the staging tables the plan's loads used, several at once.
func (r *Restorer) dropStaging(ctx context.Context, plan *Plan) {
	var g errgroup.Group
	g.SetLimit(clickhouse.Workers(r.opts.Parallel))
	seen := map[string]bool{}
	for _, s := range plan.Steps {
		if s.Action != ActionLoadPartition || seen[s.Replica+s.Target] {
			continue
		}
		seen[s.Replica+s.Target] = true
		g.Go(func() error {
			db, table, _ := strings.Cut(s.Target, ".")
			if err := r.servers[s.Replica].Conn.Exec(ctx, "DROP TABLE IF EXISTS "+clickhouse.QuoteIdent(db)+"."+clickhouse.QuoteIdent(stagingName(table))); err != nil {
				r.opts.Log.Warn("could not drop staging table", "table", s.Target, "replica", s.Replica, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// verify waits until every reachable replica has replicated the loaded partitions and checks
// each partition's row count against the snapshot. Each table is waited for and its partitions
// counted once per replica, in one query, not once per partition: every load has finished, so
// one wait covers them all. The tables and replicas are checked several at once: a wait is for
// a replica's last fetches, and the fetches of different replicas and tables go on side by
// side. The first mismatch or failure is reported, in plan order.
func (r *Restorer) verify(ctx context.Context, plan *Plan) error {
	type tableOn struct {
		s    Step
		addr string
	}
	var checks []tableOn
	seen := map[tableOn]bool{}
	for _, s := range plan.Steps {
		if s.Action != ActionLoadPartition {
			continue
		}
		replicas := []string{s.Replica}
		if r.replicated(s.table) {
			replicas = slices.Sorted(maps.Keys(r.servers))
		}
		for _, addr := range replicas {
			key := tableOn{Step{Target: s.Target}, addr}
			if !seen[key] {
				seen[key] = true
				checks = append(checks, tableOn{s, addr})
			}
		}
	}
	errs := make([]error, len(checks))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * clickhouse.Workers(r.opts.Parallel))
	for i, c := range checks {
		g.Go(func() error {
			errs[i] = r.verifyTable(gctx, plan, c.s, c.addr)
			return errs[i]
		})
	}
	if err := g.Wait(); err != nil {
		for _, e := range errs {
			if e != nil && !errors.Is(e, context.Canceled) {
				return e
			}
		}
		return err
	}
	return nil
}

// verifyTable waits until the replica at addr has fetched what was loaded into s's table, if
// it replicates (not for its merges: see clickhouse.WaitFetched), and compares the rows of every partition the plan loaded into it there with
// the snapshot's.
func (r *Restorer) verifyTable(ctx context.Context, plan *Plan, s Step, addr string) error {
	srv := r.servers[addr]
	db, table, _ := strings.Cut(s.Target, ".")
	if r.replicated(s.table) {
		if err := clickhouse.WaitFetched(ctx, srv, db, table, clickhouse.FetchStall, nil); err != nil {
			return err
		}
	}
	rows, err := clickhouse.PartitionRows(ctx, srv, db, table)
	if err != nil {
		return fmt.Errorf("count the restored rows of %s on %s: %w", s.Target, addr, err)
	}
	for _, p := range plan.Steps {
		if p.Action != ActionLoadPartition || p.Target != s.Target || (!r.replicated(s.table) && p.Replica != addr) {
			continue
		}
		if rows[p.Partition] != p.Rows {
			return fmt.Errorf("after restore %s partition %s has %d rows on %s, the snapshot has %d", p.Target, p.Partition, rows[p.Partition], addr, p.Rows)
		}
	}
	return nil
}

// partitionRowCount is the rows of a partition's active parts on one replica.
func partitionRowCount(ctx context.Context, srv *clickhouse.Server, db, table, partition string) (uint64, error) {
	var rows uint64
	if err := srv.Conn.QueryRow(ctx, "SELECT sum(rows) FROM system.parts WHERE database = ? AND table = ? AND partition_id = ? AND active", db, table, partition).Scan(&rows); err != nil {
		return 0, fmt.Errorf("count %s.%s partition %s on %s: %w", db, table, partition, srv.Addr, err)
	}
	return rows, nil
}

// partitionRowCounts is the rows of every partition of a table's active parts on one replica,
// by partition ID; a partition without rows, or a table that does not exist, has none.
func partitionRowCounts(ctx context.Context, srv *clickhouse.Server, db, table string) (map[string]uint64, error) {
	rows, err := srv.Conn.Query(ctx, "SELECT partition_id, sum(rows) FROM system.parts WHERE database = ? AND table = ? AND active GROUP BY partition_id", db, table)
	if err != nil {
		return nil, fmt.Errorf("count the rows of %s.%s on %s: %w", db, table, srv.Addr, err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count the rows of %s.%s on %s: %w", db, table, srv.Addr, err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count the rows of %s.%s on %s: %w", db, table, srv.Addr, err)
	}
	return out, nil
}

// LoadPartition loads one snapshot partition into table on target alone, through the restore's
// staging table and REPLACE PARTITION, so a rerun never duplicates rows. A replica rebuild uses
// it for local tables, which replication cannot refill.
func LoadPartition(ctx context.Context, repo *store.Repository, target *clickhouse.Server, o Options, httpOf map[string]string,
	table string, rec *clickhouse.TableRecord, partition, object string, rows uint64, ref store.ObjectRef) error {
	rs := &Restorer{opts: o, servers: map[string]*clickhouse.Server{target.Addr: target}, httpOf: httpOf, first: target, local: clickhouse.NewLocalFS(o.DataPath, []*clickhouse.Server{target})}
	step := Step{Action: ActionLoadPartition, Target: table, Replica: target.Addr, Partition: partition, Object: object, Rows: rows, ref: ref, table: rec}
	if err := rs.loadPartition(ctx, repo, newStagingTables(), step); err != nil {
		return err
	}
	rs.dropStaging(ctx, &Plan{Steps: []Step{step}})
	return nil
}
