// Package clickhouse is the ClickHouse migration driver: golang-migrate's schema_migrations
// (version Int64, dirty UInt8, sequence UInt64; a new row per change, the current one being the
// row with the highest sequence), a ZooKeeper lock so runners on different hosts never
// interleave, and a check after each migration that every replica agrees.
package clickhouse

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/migrate"
	chsnap "github.com/tracevault/tracevault/snapshot/clickhouse"
)

// Options say which database of which servers to migrate.
type Options struct {
	// Addresses are the native addresses of the replicas; statements run on the first, and
	// with a cluster every one is checked after each migration.
	Addresses []string
	// HTTPAddresses are the same replicas' HTTP interfaces. Migration files run over the
	// first: 18.16 answers every statement there, while over the native protocol an
	// INSERT ... VALUES waits forever for a data block.
	HTTPAddresses []string
	Conn          chsnap.ConnOptions
	Database      string
	Cluster       string // empty: a single server, no ON CLUSTER, MergeTree tables
	// ZooKeeper servers for the lock; without them the lock only covers this process.
	ZooKeeper      []string
	SessionTimeout time.Duration
	// SyncTimeout bounds how long the replicas may take to agree after a migration.
	SyncTimeout time.Duration
	Log         *slog.Logger
}

// Driver implements migrate.Driver for one ClickHouse database.
type Driver struct {
	o       Options
	servers []*chsnap.Server // [0] is where everything is written
	exec    *chsnap.HTTP     // servers[0]'s HTTP interface, in the migrated database: files use unqualified names
	zk      *zk.Conn
	holding []byte // the lock node's data while we hold it
}

var _ migrate.Driver = (*Driver)(nil)

// Open connects to the replicas (only the first without a cluster).
func Open(ctx context.Context, o Options) (*Driver, error) {
	if len(o.Addresses) == 0 {
		return nil, errors.New("no ClickHouse address: set [clickhouse] addresses")
	}
	if len(o.HTTPAddresses) == 0 {
		return nil, errors.New("no ClickHouse HTTP address: set [clickhouse] http_addresses; migration files run over the HTTP interface")
	}
	if o.Conn.User == "" {
		o.Conn.User = "default" // the server's own default; the HTTP interface needs it named
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = time.Minute
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 10 * time.Second
	}
	addrs := o.Addresses
	if o.Cluster == "" {
		addrs = addrs[:1]
	}
	d := &Driver{o: o, exec: &chsnap.HTTP{Addr: o.HTTPAddresses[0], User: o.Conn.User, Password: o.Conn.Password,
		Client: &http.Client{Transport: inDatabase{database: o.Database, next: chsnap.Transport}}}}
	for _, a := range addrs {
		s, err := chsnap.Dial(ctx, a, o.Conn)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.servers = append(d.servers, s)
	}
	return d, nil
}

// Name says which database this is, for messages.
func (d *Driver) Name() string { return "clickhouse database " + d.o.Database }

func (d *Driver) Dialect() migrate.Dialect { return migrate.ClickHouse }

// Close releases every connection and, with the ZooKeeper session, a lock still held.
func (d *Driver) Close() error {
	var errs []error
	for _, s := range d.servers {
		errs = append(errs, s.Close())
	}
	if d.zk != nil {
		d.zk.Close()
	}
	return errors.Join(errs...)
}

func (d *Driver) first() *chsnap.Server { return d.servers[0] }

func (d *Driver) table(name string) string {
	return chsnap.QuoteIdent(d.o.Database) + "." + name
}

func (d *Driver) onCluster() string {
	if d.o.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + d.o.Cluster
}

// missing reports the errors of reading a table or database that does not exist yet:
// before the first migration, golang-migrate reads version "none".
func missing(err error) bool {
	var ex *ch.Exception
	return errors.As(err, &ex) && (ex.Code == 60 || ex.Code == 81)
}

// ensure creates the database and both tables where missing. It runs under the lock, as
// golang-migrate's ensureVersionTable does.
func (d *Driver) ensure(ctx context.Context) error {
	if err := d.first().Conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+chsnap.QuoteIdent(d.o.Database)+d.onCluster()); err != nil {
		return fmt.Errorf("create clickhouse database %s: %w", d.o.Database, err)
	}
	for _, t := range []struct{ name, columns string }{{migrationsTable, migrationsColumns}, {checksumTable, checksumColumns}} {
		var n uint64
		if err := d.first().Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", d.o.Database, t.name).Scan(&n); err != nil {
			return fmt.Errorf("look for %s.%s: %w", d.o.Database, t.name, err)
		}
		if n > 0 {
			continue
		}
		ddl := tableDDL(d.o.Database, t.name, t.columns, d.o.Cluster, d.first().Caps)
		if err := d.exec.Exec(ctx, ddl, nil); err != nil {
			return fmt.Errorf("create %s.%s: %w (statement: %s)", d.o.Database, t.name, err, ddl)
		}
	}
	return nil
}

// inDatabase sets the HTTP interface's database parameter on every request, as golang-migrate
// sets its connection's database: migration files name tables without their database.
type inDatabase struct {
	database string
	next     http.RoundTripper
}

func (t inDatabase) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	q := r.URL.Query()
	q.Set("database", t.database)
	r.URL.RawQuery = q.Encode()
	return t.next.RoundTrip(r)
}

// Run executes the statements in order on the first replica, in the migrated database.
func (d *Driver) Run(ctx context.Context, file string, stmts []migrate.Statement) error {
	for _, s := range stmts {
		if err := d.exec.Exec(ctx, s.SQL, nil); err != nil {
			return &migrate.StatementError{File: file, Statement: s.SQL, Err: err}
		}
	}
	return nil
}

// Version reads the row with the highest sequence, as golang-migrate does.
func (d *Driver) Version(ctx context.Context) (int64, bool, error) {
	var v int64
	var dirty uint8
	err := d.first().Conn.QueryRow(ctx, "SELECT version, dirty FROM "+d.table(migrationsTable)+" ORDER BY sequence DESC LIMIT 1").Scan(&v, &dirty)
	switch {
	case errors.Is(err, sql.ErrNoRows) || missing(err):
		return migrate.NilVersion, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("read schema_migrations of clickhouse %s: %w", d.o.Database, err)
	}
	return v, dirty == 1, nil
}

// SetVersion appends a row, as golang-migrate does, with sequence = now in nanoseconds; kept
// above the highest sequence so a clock behind another migrator's cannot hide the new row.
func (d *Driver) SetVersion(ctx context.Context, v int64, dirty bool) error {
	seq, err := d.nextSequence(ctx, migrationsTable)
	if err != nil {
		return err
	}
	flag := uint8(0)
	if dirty {
		flag = 1
	}
	if err := d.insert(ctx, migrationsTable, "version, dirty, sequence", v, flag, seq); err != nil {
		return fmt.Errorf("set version %d in clickhouse %s: %w", v, d.o.Database, err)
	}
	return nil
}

// insert writes one row as a native batch: 18.16 waits for a data block after an INSERT with
// inline VALUES sent over the native protocol, so the values travel as a block.
func (d *Driver) insert(ctx context.Context, table, columns string, row ...any) error {
	b, err := d.first().Conn.PrepareBatch(ctx, "INSERT INTO "+d.table(table)+" ("+columns+")")
	if err != nil {
		return err
	}
	if err := b.Append(row...); err != nil {
		_ = b.Abort()
		return err
	}
	return b.Send()
}

func (d *Driver) nextSequence(ctx context.Context, table string) (uint64, error) {
	var last uint64
	if err := d.first().Conn.QueryRow(ctx, "SELECT max(sequence) FROM "+d.table(table)).Scan(&last); err != nil {
		return 0, fmt.Errorf("read the last sequence of %s.%s: %w", d.o.Database, table, err)
	}
	return max(uint64(time.Now().UnixNano()), last+1), nil
}

// Checksums reads the latest checksum of each version from tracevault's own table.
func (d *Driver) Checksums(ctx context.Context) (map[int64]string, error) {
	out := map[int64]string{}
	rows, err := d.first().Conn.Query(ctx, "SELECT version, argMax(checksum, sequence) FROM "+d.table(checksumTable)+" GROUP BY version")
	if missing(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read migration checksums of clickhouse %s: %w", d.o.Database, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("read migration checksums of clickhouse %s: %w", d.o.Database, err)
		}
		if sum != "" {
			out[v] = sum
		}
	}
	return out, rows.Err()
}

// SetChecksum appends the version's checksum; "" (after a down) supersedes the last one.
func (d *Driver) SetChecksum(ctx context.Context, v int64, title, sum string) error {
	seq, err := d.nextSequence(ctx, checksumTable)
	if err != nil {
		return err
	}
	if err := d.insert(ctx, checksumTable, "version, title, checksum, sequence", v, title, sum, seq); err != nil {
		return fmt.Errorf("record checksum of version %d in clickhouse %s: %w", v, d.o.Database, err)
	}
	return nil
}

// Verify waits, at most SyncTimeout, until every replica holds the same schema_migrations rows
// and the same columns for each table the statements touched; otherwise it names the replica
// that lags and how.
func (d *Driver) Verify(ctx context.Context, stmts []migrate.Statement) error {
	if len(d.servers) < 2 {
		return nil
	}
	sqls := make([]string, len(stmts))
	for i, s := range stmts {
		sqls[i] = s.SQL
	}
	tables := touchedTables(sqls, d.o.Database)
	deadline := time.Now().Add(d.o.SyncTimeout)
	for {
		lag, err := d.disagreement(ctx, tables)
		if err != nil || lag == "" {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s after waiting %s; check that replica's replication queue (system.replicas, system.replication_queue) and ZooKeeper, then run status again", lag, d.o.SyncTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// disagreement compares every replica with the first; "" when they agree.
func (d *Driver) disagreement(ctx context.Context, tables []tableRef) (string, error) {
	var want []string
	for i, s := range d.servers {
		got, err := d.schemaState(ctx, s, tables)
		if err != nil {
			return "", err
		}
		if i == 0 {
			want = got
			continue
		}
		for k := range got {
			if got[k] != want[k] {
				return fmt.Sprintf("replica %s lags: %s, where %s has %s", s.Addr, got[k], d.first().Addr, want[k]), nil
			}
		}
	}
	return "", nil
}

// schemaState describes, on one replica, schema_migrations then each table's columns.
func (d *Driver) schemaState(ctx context.Context, s *chsnap.Server, tables []tableRef) ([]string, error) {
	var n, sum, last uint64
	var v int64
	var dirty uint8
	q := "SELECT count(), sum(sequence), max(sequence), argMax(version, sequence), argMax(dirty, sequence) FROM " + d.table(migrationsTable)
	if err := s.Conn.QueryRow(ctx, q).Scan(&n, &sum, &last, &v, &dirty); err != nil && !missing(err) {
		return nil, fmt.Errorf("read schema_migrations on %s: %w", s.Addr, err)
	}
	out := []string{fmt.Sprintf("schema_migrations at version %d dirty=%d (%d rows, last sequence %d, sum %d)", v, dirty, n, last, sum)}
	for _, t := range tables {
		rows, err := s.Conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ? ORDER BY name", t.database, t.table)
		if err != nil {
			return nil, fmt.Errorf("read columns of %s.%s on %s: %w", t.database, t.table, s.Addr, err)
		}
		var cols []string
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read columns of %s.%s on %s: %w", t.database, t.table, s.Addr, err)
			}
			cols = append(cols, name+" "+typ)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read columns of %s.%s on %s: %w", t.database, t.table, s.Addr, err)
		}
		desc := "no such table"
		if len(cols) > 0 {
			desc = "(" + strings.Join(cols, ", ") + ")"
		}
		out = append(out, fmt.Sprintf("%s.%s columns %s", t.database, t.table, desc))
	}
	return out, nil
}
