package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/snapshot/store"
)

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
			if err = r.loadAndBuild(ctx, repo, plan, loads, s, finish); err != nil {
				return done, err
			}
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

// runEntries runs post-data entries in pg_dump's order, each run of parallelSafe ones on
// every connection at once, as pg_restore -j does. Each entry commits on its own: a failed
// restore of a new database drops it whole, so one transaction would buy nothing.
func (r *Restorer) runEntries(ctx context.Context, conns []*pgx.Conn, entries []entry) error {
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
