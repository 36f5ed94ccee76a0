package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// ReadSequences reads the current value of every sequence of the schemas, as a snapshot
// records them: point-in-time recovery records them with each change segment, since logical
// decoding does not carry sequence advances.
func ReadSequences(ctx context.Context, conn *pgx.Conn, schemas []string) ([]Sequence, error) {
	return catalogReader{q: conn, schemas: schemas}.sequences(ctx)
}

// Connect opens one connection, explaining the usual failures as every PostgreSQL step does.
func Connect(ctx context.Context, dsn string) (*pgx.Conn, error) { return connect(ctx, dsn) }

// Explain wraps err with what was being done and, for the failures an operator meets, the fix.
func Explain(doing string, err error) error { return explain(doing, err) }
