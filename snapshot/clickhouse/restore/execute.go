// Executing a restore plan: loading each partition through a staging table (Native insert or
// parts-tar attach) and REPLACE PARTITION, then verifying row counts.

package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

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
// Partitions load several at once (Options.Parallel), across tables: each load waits on its
// server for a staging table, an insert or attach and a REPLACE PARTITION, so one at a time
// leaves tracevault and the servers mostly idle. A table's loads start once its create-table
// step has run; any other step (views, ZooKeeper repairs) waits for every load queued before it.
func (r *Restorer) Execute(ctx context.Context, repo *store.Repository, plan *Plan, progress Progress) error {
	// A Replacing or Aggregating table may legitimately lose rows to a merge right after the
	// load, which would make the row-count check below fail on a correct restore.
	defer r.setMerges(context.WithoutCancel(ctx), plan, "START")
	var mu sync.Mutex
	done := 0
	finished := func(s Step) {
		mu.Lock()
		defer mu.Unlock()
		done++
		if progress != nil {
			progress(done, len(plan.Steps), s)
		}
	}
	stepErr := func(i int, s Step, err error) error {
		return fmt.Errorf("restore step %d/%d (%s %s %s): %w", i+1, len(plan.Steps), s.Action, s.Target, s.Partition, err)
	}
	var loads *errgroup.Group
	var loadCtx context.Context
	wait := func() error {
		if loads == nil {
			return nil
		}
		err := loads.Wait()
		loads = nil
		return err
	}
	staging := newStagingTables()
	for i, s := range plan.Steps {
		if s.Action == ActionLoadPartition {
			if loads == nil {
				loads, loadCtx = errgroup.WithContext(ctx)
				loads.SetLimit(clickhouse.Workers(r.opts.Parallel))
			}
			if loadCtx.Err() != nil {
				break // a load failed or ctx ended: wait below returns why
			}
			loads.Go(func() error {
				if err := r.loadPartition(loadCtx, repo, staging, s); err != nil {
					return stepErr(i, s, err)
				}
				finished(s)
				return nil
			})
			continue
		}
		if s.Action != ActionCreateDatabase && s.Action != ActionCreateTable {
			if err := wait(); err != nil {
				return err
			}
		}
		var err error
		switch s.Action {
		case ActionCreateDatabase, ActionCreateTable, ActionCreateView:
			err = r.first.Conn.Exec(ctx, s.SQL)
		case ActionRestoreMetadata:
			err = r.restoreMetadata(ctx, s)
		case ActionDropRegistration:
			err = clickhouse.DropRegistration(ctx, r.opts.ZooKeeper, s.ZooKeeperPath)
		case ActionDropGroup:
			err = clickhouse.DropGroup(ctx, r.opts.ZooKeeper, s.ZooKeeperPath)
		}
		if err != nil {
			return errors.Join(stepErr(i, s, err), wait())
		}
		if s.Action == ActionCreateTable {
			r.setMerges(ctx, &Plan{Steps: []Step{s}}, "STOP")
			if s.table != nil && s.table.RowsNotKept != "" {
				r.opts.Log.Warn("a table is restored empty: the snapshot holds its definition only", "table", s.Target, "why", s.table.RowsNotKept)
			}
		}
		finished(s)
	}
	if err := wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.dropStaging(ctx, plan)
	return r.verify(ctx, plan)
}

// setMerges stops or starts background merges of the plan's tables on every reachable replica.
func (r *Restorer) setMerges(ctx context.Context, plan *Plan, verb string) {
	for _, s := range plan.Steps {
		if s.Action != ActionCreateTable || !s.table.HasData() {
			continue
		}
		db, table, _ := strings.Cut(s.Target, ".")
		for _, srv := range r.servers {
			if err := srv.Conn.Exec(ctx, fmt.Sprintf("SYSTEM %s MERGES %s.%s", verb, clickhouse.QuoteIdent(db), clickhouse.QuoteIdent(table))); err != nil {
				r.opts.Log.Debug("could not change merges", "verb", verb, "table", s.Target, "replica", srv.Addr, "err", err)
			}
		}
	}
}

func stagingName(table string) string { return "__tracevault_staging_" + table }

// stagingTables creates each staging table once per replica, however many of its partitions
// load at once: concurrent CREATE TABLE IF NOT EXISTS of one name can fail on 18.16 ("is
// creating or attaching right now").
type stagingTables struct {
	mu     sync.Mutex
	tables map[string]*stagingTable // by replica and staging table
}

type stagingTable struct {
	once sync.Once
	err  error
}

func newStagingTables() *stagingTables { return &stagingTables{tables: map[string]*stagingTable{}} }

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
	replace := fmt.Sprintf("ALTER TABLE %s.%s REPLACE PARTITION ID %s FROM %s", clickhouse.QuoteIdent(db), clickhouse.QuoteIdent(table), clickhouse.QuoteString(s.Partition), stagingFull)
	if err := srv.Conn.Exec(ctx, replace); err != nil {
		return fmt.Errorf("replace partition on %s: %w", srv.Addr, err)
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

func (r *Restorer) dropStaging(ctx context.Context, plan *Plan) {
	seen := map[string]bool{}
	for _, s := range plan.Steps {
		if s.Action != ActionLoadPartition || seen[s.Replica+s.Target] {
			continue
		}
		seen[s.Replica+s.Target] = true
		db, table, _ := strings.Cut(s.Target, ".")
		if err := r.servers[s.Replica].Conn.Exec(ctx, "DROP TABLE IF EXISTS "+clickhouse.QuoteIdent(db)+"."+clickhouse.QuoteIdent(stagingName(table))); err != nil {
			r.opts.Log.Warn("could not drop staging table", "table", s.Target, "replica", s.Replica, "err", err)
		}
	}
}

// verify waits until every reachable replica has replicated the loaded partitions and checks
// each partition's row count against the snapshot. Each table is synced and its partitions
// counted once per replica, in one query, not once per partition: every load has finished, so
// one sync covers them all.
func (r *Restorer) verify(ctx context.Context, plan *Plan) error {
	type tableOn struct{ target, addr string }
	counted := map[tableOn]map[string]uint64{}
	for _, s := range plan.Steps {
		if s.Action != ActionLoadPartition {
			continue
		}
		db, table, _ := strings.Cut(s.Target, ".")
		replicas := []string{s.Replica}
		if r.replicated(s.table) {
			replicas = nil
			for addr := range r.servers {
				replicas = append(replicas, addr)
			}
		}
		for _, addr := range replicas {
			srv := r.servers[addr]
			rows, ok := counted[tableOn{s.Target, addr}]
			if !ok {
				if r.replicated(s.table) {
					syncCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
					err := srv.Conn.Exec(syncCtx, "SYSTEM SYNC REPLICA "+clickhouse.QuoteIdent(db)+"."+clickhouse.QuoteIdent(table))
					cancel()
					if err != nil {
						return fmt.Errorf("wait for %s to replicate %s: %w", addr, s.Target, err)
					}
				}
				var err error
				if rows, err = clickhouse.PartitionRows(ctx, srv, db, table); err != nil {
					return fmt.Errorf("count the restored rows of %s on %s: %w", s.Target, addr, err)
				}
				counted[tableOn{s.Target, addr}] = rows
			}
			if rows[s.Partition] != s.Rows {
				return fmt.Errorf("after restore %s partition %s has %d rows on %s, the snapshot has %d", s.Target, s.Partition, rows[s.Partition], addr, s.Rows)
			}
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
