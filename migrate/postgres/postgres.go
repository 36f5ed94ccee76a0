// Package postgres is the PostgreSQL migration driver: golang-migrate's schema_migrations
// (version bigint primary key, dirty boolean, one row) and its advisory lock, taken with the
// same key, so tracevault and golang-migrate exclude each other.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/migrate"
	"github.com/tracevault/tracevault/snapshot/postgres/pgdsn"
)

const (
	migrationsTable = "schema_migrations"
	checksumTable   = "tracevault_migrations"
	// golang-migrate's salt for advisory lock ids (database.GenerateAdvisoryLockId).
	advisoryLockSalt = 1486364155
)

// Driver holds one session: advisory locks belong to the session that took them.
type Driver struct {
	conn     *pgx.Conn
	database string
	schema   string
	lockID   int64
	log      *slog.Logger
}

var _ migrate.Driver = (*Driver)(nil)

// Open connects to dsn, or to database on the same server when not empty. The migrations table lives in the connection's current schema, as
// golang-migrate puts it there.
func Open(ctx context.Context, dsn, database string, log *slog.Logger) (*Driver, error) {
	if log == nil {
		log = slog.Default()
	}
	dsn, err := pgdsn.WithDatabase(dsn, database)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, pgdsn.ErrInvalid
	}
	if cfg.RuntimeParams["application_name"] == "" {
		// Shown to a second migrator waiting for the lock, as the holder.
		cfg.RuntimeParams["application_name"] = "tracevault migrate"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	d := &Driver{conn: conn, log: log}
	var schema *string
	if err := conn.QueryRow(ctx, "SELECT current_database(), current_schema()").Scan(&d.database, &schema); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("read current database and schema of postgres: %w", err)
	}
	if schema == nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("postgres database %s has no current schema: the search_path names no existing schema; fix search_path for this user", d.database)
	}
	d.schema = *schema
	d.lockID = AdvisoryLockID(d.database, d.schema, migrationsTable)
	return d, nil
}

// AdvisoryLockID is golang-migrate's lock key for a migrations table: CRC-32 of
// "schema\x00table\x00database" times its salt, in 32 bits.
func AdvisoryLockID(database, schema, table string) int64 {
	sum := crc32.ChecksumIEEE([]byte(schema + "\x00" + table + "\x00" + database))
	return int64(sum * uint32(advisoryLockSalt))
}

// Name says which database this is, for messages.
func (d *Driver) Name() string { return "postgres database " + d.database }

func (d *Driver) Dialect() migrate.Dialect { return migrate.PostgreSQL }

// Close ends the session, which also releases a lock still held.
func (d *Driver) Close() error { return d.conn.Close(context.Background()) }

func (d *Driver) table(name string) string { return pgx.Identifier{d.schema, name}.Sanitize() }

// Lock takes the advisory lock, polling so that waiting is bounded and the holder can be
// named, then creates the tables if missing (under the lock, as golang-migrate does).
func (d *Driver) Lock(ctx context.Context, wait time.Duration) error {
	start := time.Now()
	reported := false
	for {
		var ok bool
		if err := d.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", d.lockID).Scan(&ok); err != nil {
			return fmt.Errorf("try advisory lock %d: %w", d.lockID, err)
		}
		if ok {
			break
		}
		holder := d.holder(ctx)
		if time.Since(start) >= wait {
			return &migrate.LockedError{Holder: holder, Waited: time.Since(start)}
		}
		if !reported {
			d.log.Info("waiting for the migration lock", "database", d.database, "holder", holder, "max_wait", wait)
			reported = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err := d.ensureTables(ctx); err != nil {
		return errors.Join(err, d.Unlock(ctx))
	}
	return nil
}

// holder describes the session holding the lock; keys below 2^32 sit in objid, classid 0.
func (d *Driver) holder(ctx context.Context) string {
	var pid int32
	var app, client string
	var since time.Time
	err := d.conn.QueryRow(ctx, `SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'), a.backend_start
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid::bigint = $1 AND l.objsubid = 1`, d.lockID).Scan(&pid, &app, &client, &since)
	if err != nil {
		return fmt.Sprintf("another session (advisory lock %d)", d.lockID)
	}
	return fmt.Sprintf("postgres backend pid %d (%q from %s, connected %s)", pid, app, client, since.UTC().Format(time.RFC3339))
}

// Unlock releases the advisory lock.
func (d *Driver) Unlock(ctx context.Context) error {
	if _, err := d.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", d.lockID); err != nil {
		return fmt.Errorf("release advisory lock %d: %w", d.lockID, err)
	}
	return nil
}

func (d *Driver) ensureTables(ctx context.Context) error {
	for _, q := range []string{
		// golang-migrate's exact layout.
		`CREATE TABLE IF NOT EXISTS ` + d.table(migrationsTable) + ` (version bigint not null primary key, dirty boolean not null)`,
		`CREATE TABLE IF NOT EXISTS ` + d.table(checksumTable) + ` (version bigint not null primary key, title text not null, checksum text not null, applied_at timestamptz not null default now())`,
	} {
		if _, err := d.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("create migration tables in postgres %s.%s: %w", d.database, d.schema, err)
		}
	}
	return nil
}

// Statements that cannot run inside a transaction block, or that manage their own.
var noTransaction = regexp.MustCompile(`(?is)^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK)\b|\bCONCURRENTLY\b|^\s*(VACUUM|CREATE\s+DATABASE|DROP\s+DATABASE|ALTER\s+SYSTEM)\b`)

// Run executes the statements one by one, so the failing one can be named, inside one
// transaction unless a statement forbids it: a failed file then leaves nothing half-done,
// as golang-migrate's single multi-statement query does.
func (d *Driver) Run(ctx context.Context, file string, stmts []migrate.Statement) error {
	inTx := true
	for _, s := range stmts {
		if noTransaction.MatchString(s.SQL) {
			inTx = false
		}
	}
	if !inTx {
		for _, s := range stmts {
			if _, err := d.conn.Exec(ctx, s.SQL); err != nil {
				return &migrate.StatementError{File: file, Statement: s.SQL, Err: err}
			}
		}
		return nil
	}
	tx, err := d.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction for %s: %w", file, err)
	}
	defer tx.Rollback(context.Background())
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s.SQL); err != nil {
			return &migrate.StatementError{File: file, Statement: s.SQL, Err: err}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return &migrate.StatementError{File: file, Err: fmt.Errorf("commit: %w", err)}
	}
	return nil
}

func undefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}

// Version reads golang-migrate's single row; no table or no row means nothing applied.
func (d *Driver) Version(ctx context.Context) (int64, bool, error) {
	var v int64
	var dirty bool
	err := d.conn.QueryRow(ctx, `SELECT version, dirty FROM `+d.table(migrationsTable)+` LIMIT 1`).Scan(&v, &dirty)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || undefinedTable(err):
		return migrate.NilVersion, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("read schema_migrations of postgres %s: %w", d.database, err)
	}
	return v, dirty, nil
}

// SetVersion replaces the row in one transaction, TRUNCATE then INSERT, exactly as
// golang-migrate does (no row for a clean NilVersion).
func (d *Driver) SetVersion(ctx context.Context, v int64, dirty bool) error {
	tx, err := d.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("set version %d in postgres %s: %w", v, d.database, err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `TRUNCATE `+d.table(migrationsTable)); err != nil {
		return fmt.Errorf("set version %d in postgres %s: %w", v, d.database, err)
	}
	if v >= 0 || (v == migrate.NilVersion && dirty) {
		if _, err := tx.Exec(ctx, `INSERT INTO `+d.table(migrationsTable)+` (version, dirty) VALUES ($1, $2)`, v, dirty); err != nil {
			return fmt.Errorf("set version %d in postgres %s: %w", v, d.database, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("set version %d in postgres %s: %w", v, d.database, err)
	}
	return nil
}

// Checksums reads tracevault's own table; absent means none recorded yet.
func (d *Driver) Checksums(ctx context.Context) (map[int64]string, error) {
	out := map[int64]string{}
	rows, err := d.conn.Query(ctx, `SELECT version, checksum FROM `+d.table(checksumTable))
	if undefinedTable(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read migration checksums of postgres %s: %w", d.database, err)
	}
	for rows.Next() {
		var v int64
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read migration checksums of postgres %s: %w", d.database, err)
		}
		out[v] = sum
	}
	if err := rows.Err(); err != nil && !undefinedTable(err) {
		return nil, fmt.Errorf("read migration checksums of postgres %s: %w", d.database, err)
	}
	return out, nil
}

// SetChecksum records or, with "", forgets a version's checksum.
func (d *Driver) SetChecksum(ctx context.Context, v int64, title, sum string) error {
	var err error
	if sum == "" {
		_, err = d.conn.Exec(ctx, `DELETE FROM `+d.table(checksumTable)+` WHERE version = $1`, v)
	} else {
		_, err = d.conn.Exec(ctx, `INSERT INTO `+d.table(checksumTable)+` (version, title, checksum) VALUES ($1, $2, $3)
			ON CONFLICT (version) DO UPDATE SET title = EXCLUDED.title, checksum = EXCLUDED.checksum, applied_at = now()`, v, title, sum)
	}
	if err != nil {
		return fmt.Errorf("record checksum of version %d in postgres %s: %w", v, d.database, err)
	}
	return nil
}

// Verify has nothing to compare: PostgreSQL is one server.
func (d *Driver) Verify(context.Context, []migrate.Statement) error { return nil }
