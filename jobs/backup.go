package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/postgres/pgdsn"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// BackupRequest is one snapshot set to take.
type BackupRequest struct {
	Only   []string // sources; empty = all configured
	Tables []string // "db.table" globs narrowing [clickhouse] include_tables; each must select a table
	// Databases are ClickHouse database globs in place of [clickhouse] databases (a migration's
	// snapshot of its one database).
	Databases []string
	// PostgresDatabase is a PostgreSQL database in place of [postgres] dsn's (migrate --database).
	PostgresDatabase string
	// NeedRows refuses the set, recording nothing, when its ClickHouse selection holds no row
	// (clickhouse.ErrNoRows): a migration's snapshot of a new database would hold nothing.
	NeedRows bool
	Tags     []string
	LockWait time.Duration
}

// Backup takes one snapshot set: the path a cron tick and `tracevault backup` share. A --tables
// glob that selects no table fails it before anything is stored (clickhouse.ErrSelectsNothing):
// a snapshot of nothing would read "complete". The manifest records the request's scope: a set
// narrowed below the configuration (--only, --tables, another database) is never "latest".
func Backup(ctx context.Context, cfg *config.Config, repo *store.Repository, req BackupRequest, log *slog.Logger) (*store.Manifest, error) {
	sources, err := Sources(cfg, req, log)
	if err != nil {
		return nil, err
	}
	scope := &store.Scope{}
	for _, src := range sources {
		scope.Sources = append(scope.Sources, src.Name())
		switch src := src.(type) {
		case *clickhouse.Source:
			scope.Databases, scope.Tables, scope.Exclude = src.Filter.Databases, src.Filter.Include, src.Filter.Exclude
			if len(req.Tables) > 0 && !slices.Equal(req.Tables, cfg.ClickHouse.IncludeTables) ||
				len(req.Databases) > 0 && !slices.Equal(req.Databases, cfg.ClickHouse.Databases) {
				scope.Narrowed = append(scope.Narrowed, src.Name())
			}
			if err := clickhouse.CheckSelection(ctx, src, req.Tables, req.NeedRows); err != nil {
				return nil, fmt.Errorf("clickhouse: %w", err)
			}
		case *postgres.Source:
			if req.PostgresDatabase != "" && req.PostgresDatabase != dsnDatabase(cfg.Postgres.DSN.Reveal()) {
				scope.PostgresDatabase = req.PostgresDatabase
				scope.Narrowed = append(scope.Narrowed, src.Name())
			}
		}
	}
	return snapshot.Run(ctx, repo, sources, snapshot.Options{Tags: req.Tags, LockWait: req.LockWait, Log: log, Scope: scope})
}

// ConfiguredSources are the sources the configuration covers, in the order a backup runs them:
// what a full set holds whole.
func ConfiguredSources(cfg *config.Config) []string {
	var out []string
	if cfg.Postgres.DSN != "" {
		out = append(out, config.SourcePostgres)
	}
	if len(cfg.ClickHouse.Addresses) > 0 {
		out = append(out, config.SourceClickHouse)
	}
	if len(cfg.ZooKeeper.Servers) > 0 {
		out = append(out, config.SourceZooKeeper)
	}
	if cfg.Blobs.URL != "" {
		out = append(out, config.SourceBlobs)
	}
	return out
}

// Sources builds the sources a request covers: PostgreSQL's snapshot and ClickHouse's
// partitions, which the set runs together so that their cuts coincide, then the ZooKeeper
// record of the replication, then the blob container, listed last so that every file
// ClickHouse's file log named at its export is already written.
func Sources(cfg *config.Config, req BackupRequest, log *slog.Logger) ([]snapshot.Source, error) {
	only := map[string]bool{}
	for _, s := range req.Only {
		if !contains(config.Sources, s) {
			return nil, fmt.Errorf("--only %q: choose from %s", s, strings.Join(config.Sources, ", "))
		}
		only[s] = true
	}
	want := func(s string) bool { return len(only) == 0 || only[s] }
	var out []snapshot.Source
	if want(config.SourcePostgres) && cfg.Postgres.DSN != "" {
		pg := cfg.Postgres
		dsn := pg.DSN.Reveal()
		if req.PostgresDatabase != "" {
			var err error
			if dsn, err = pgdsn.WithDatabase(dsn, req.PostgresDatabase); err != nil {
				return nil, err
			}
		}
		out = append(out, &postgres.Source{DSN: dsn, Parallel: pg.Parallel, Schemas: pg.Schemas, PGDump: pg.PGDump, DataOnly: pg.DataOnly, Log: log})
	}
	if want(config.SourceClickHouse) && len(cfg.ClickHouse.Addresses) > 0 {
		out = append(out, clickHouseSource(cfg, req, log))
	}
	if want(config.SourceZooKeeper) && len(cfg.ZooKeeper.Servers) > 0 {
		out = append(out, &zookeeper.Source{Servers: cfg.ZooKeeper.Servers, Identity: cfg.ZooKeeper.Identity.Reveal(), SessionTimeout: cfg.ZooKeeper.SessionTimeout.D(),
			Record: zookeeper.RecordOptions{Roots: cfg.ZooKeeper.Roots, Exclude: cfg.ZooKeeper.Exclude}, Log: log})
	}
	if want(config.SourceBlobs) && cfg.Blobs.URL != "" {
		out = append(out, blobSource(cfg, log))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("nothing to back up: no source selected is configured")
	}
	return out, nil
}

func clickHouseSource(cfg *config.Config, req BackupRequest, log *slog.Logger) *clickhouse.Source {
	ch := cfg.ClickHouse
	include := ch.IncludeTables
	if len(req.Tables) > 0 {
		include = req.Tables
	}
	if len(req.Databases) > 0 {
		ch.Databases = req.Databases
	}
	src := &clickhouse.Source{
		Native:   ch.Addresses,
		HTTP:     ch.HTTPAddresses,
		Conn:     ClickHouseConn(ch),
		Filter:   clickhouse.Filter{Databases: ch.Databases, Include: include, Exclude: ch.ExcludeTables},
		Cluster:  ch.Cluster,
		Mode:     ch.Mode,
		DataPath: ch.DataPath,
		Parallel: ch.Parallel,
		// Spreading is the default; the zero value of the field keeps it on for callers that
		// build a Source themselves.
		SingleReplica: !ch.SpreadExports,
		Log:           log,
	}
	if len(cfg.ZooKeeper.Servers) > 0 {
		src.ZooKeeper = func(ctx context.Context) (*zk.Conn, error) {
			return zkConnect(ctx, cfg.ZooKeeper, cfg.ZooKeeper.SessionTimeout.D(), log)
		}
	}
	return src
}

// dsnDatabase is the database a PostgreSQL DSN names, as the client library reads it.
func dsnDatabase(dsn string) string {
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return c.Database
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// ClickHouseConn maps [clickhouse] to connection options.
func ClickHouseConn(ch config.ClickHouse) clickhouse.ConnOptions {
	return clickhouse.ConnOptions{User: ch.User, Password: ch.Password.Reveal(), DialTimeout: ch.DialTimeout.D(), QueryTimeout: ch.QueryTimeout.D(), StallTimeout: ch.StallTimeout.D()}
}
