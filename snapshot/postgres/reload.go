package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/snapshot/store"
)

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
