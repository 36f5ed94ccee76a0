package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/snapshot/postgres/pgdsn"
)

// connect opens one connection and turns the usual failures into a cause and a fix.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, pgdsn.ErrInvalid
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, explain(fmt.Sprintf("connect to PostgreSQL %s:%d as %s, database %s", cfg.Host, cfg.Port, cfg.User, cfg.Database), err)
	}
	return conn, nil
}

// explain wraps err (nil stays nil) with what was being done and, for the failures an operator meets, the fix.
func explain(doing string, err error) error {
	if err == nil {
		return nil
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "28P01", "28000":
			return fmt.Errorf("%s: authentication failed (%s): %w; fix the user or password in [postgres] dsn (or PGPASSWORD, ~/.pgpass)", doing, pg.Code, err)
		case "3D000":
			return fmt.Errorf("%s: the database does not exist: %w; fix the database name in [postgres] dsn", doing, err)
		case "57P01", "57P02", "57P03":
			return fmt.Errorf("%s: the server shut down or restarted (%s): %w; the exported snapshot died with it, so take the backup again once the server is up", doing, pg.Code, err)
		case "55P03":
			return fmt.Errorf("%s: %w; %s", doing, err, givingWay)
		case "42501":
			return fmt.Errorf("%s: permission denied: %w; back up as the database owner or a superuser (or a role with pg_read_all_data)", doing, err)
		}
		return fmt.Errorf("%s: %w", doing, err)
	}
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s: connection refused: %w; check host and port in [postgres] dsn and that the server is running", doing, err)
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%s: timed out: %w; check that the host in [postgres] dsn is reachable (firewall, DNS)", doing, err)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), strings.Contains(err.Error(), "unexpected EOF"), strings.Contains(err.Error(), "conn closed"):
		return fmt.Errorf("%s: the connection was lost (server restart or network failure): %w; take the backup again once the server is up", doing, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// snapshotGone explains an exported snapshot that can no longer be imported.
const snapshotGone = "the transaction that exported it is gone (server restart or lost connection), so take the backup again"

// givingWay explains a lock timeout: a backup must not hold up a migration indefinitely.
const givingWay = "a schema change (ALTER, DROP, TRUNCATE...) is waiting for a table this backup holds, so the backup gave way instead of blocking it: take the backup again once the change is done"

// withDatabase returns dsn pointing at another database of the same server.
func withDatabase(dsn, db string) (string, error) {
	if db == "" {
		return "", errors.New("no database name to point [postgres] dsn at")
	}
	return pgdsn.WithDatabase(dsn, db)
}

// Ident quotes a PostgreSQL identifier.
func Ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// literal quotes a string constant for statements that cannot take parameters.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
