package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// TableContent is a table's row count and a checksum of its rows that does not depend on their
// order: the sum of the first 64 bits of each row's MD5 over its text form. Two copies of a
// table, loaded or replayed in any order, compare equal exactly when they hold the same rows
// (up to hash collisions).
type TableContent struct {
	Rows int64  `json:"rows"`
	Sum  string `json:"sum"` // a numeric, as text: the sum outgrows 64 bits
}

// ContentOf reads the TableContent of schema.name (its own rows, not its partitions').
func ContentOf(ctx context.Context, conn *pgx.Conn, schema, name string) (TableContent, error) {
	var c TableContent
	q := "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric), 0)::text FROM ONLY " + Ident(schema, name) + " t"
	if err := conn.QueryRow(ctx, q).Scan(&c.Rows, &c.Sum); err != nil {
		return c, explain("checksum the rows of "+schema+"."+name, err)
	}
	return c, nil
}
