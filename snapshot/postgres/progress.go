package postgres

import (
	"context"

	"github.com/tracevault/tracevault/snapshot/progress"
)

// Plan tells rep what a backup will move, from the catalog's statistics: the heap size of the
// tables in the schemas (COPY's text is about as large) and their estimated rows.
func (s *Source) Plan(ctx context.Context, rep progress.Reporter) error {
	s.defaults()
	conn, err := connect(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT n.nspname || '.' || c.relname, pg_relation_size(c.oid), greatest(c.reltuples, 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname = ANY($1)`, s.Schemas)
	if err != nil {
		return explain("size the tables", err)
	}
	defer rows.Close()
	for rows.Next() {
		u := progress.Unit{Source: s.Name()}
		if err := rows.Scan(&u.Table, &u.Bytes, &u.Rows); err != nil {
			return explain("size the tables", err)
		}
		rep.Plan(u)
	}
	return explain("size the tables", rows.Err())
}
