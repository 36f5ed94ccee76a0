package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/migrate"
	mch "github.com/tracevault/tracevault/migrate/clickhouse"
	mpg "github.com/tracevault/tracevault/migrate/postgres"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// ErrNotConfigured means the configuration lacks what an operation needs: a usage error.
var ErrNotConfigured = errors.New("not configured")

// MigrateOptions are one migration command's overrides of [migrate].
type MigrateOptions struct {
	Database    string // ClickHouse database, or the PostgreSQL database in place of the DSN's
	Dir         string
	LockWait    time.Duration
	SyncTimeout time.Duration
	// Command is how an operator addresses this target again, for the guidance after a failure.
	Command string
}

// MigrateDir is a target's migrations directory: the override, else [migrate]'s.
func MigrateDir(cfg *config.Config, target, override string) string {
	switch {
	case override != "":
		return override
	case target == config.SourceClickHouse:
		return cfg.Migrate.ClickHouseDir
	}
	return cfg.Migrate.PostgresDir
}

// MigrateDatabase is the ClickHouse database a migration addresses: the override, else [migrate]'s.
func MigrateDatabase(cfg *config.Config, override string) string {
	if override != "" {
		return override
	}
	return cfg.Migrate.ClickHouseDatabase
}

// OpenMigrator loads a target's migrations and opens its driver, the one mapping from the
// configuration that `tracevault migrate` and the status page share. The caller closes r.Driver.
func OpenMigrator(ctx context.Context, cfg *config.Config, target string, o MigrateOptions, log *slog.Logger) (*migrate.Runner, error) {
	migrations, err := migrate.Load(MigrateDir(cfg, target, o.Dir))
	if err != nil {
		return nil, err
	}
	r := &migrate.Runner{Migrations: migrations, LockWait: o.LockWait, Log: log, Command: o.Command}
	switch target {
	case config.SourceClickHouse:
		if len(cfg.ClickHouse.Addresses) == 0 {
			return nil, fmt.Errorf("no ClickHouse configured: set [clickhouse] addresses: %w", ErrNotConfigured)
		}
		r.Cluster = cfg.Migrate.Cluster
		if r.Cluster == "" {
			r.Cluster = cfg.ClickHouse.Cluster
		}
		r.Database = MigrateDatabase(cfg, o.Database)
		d, err := mch.Open(ctx, mch.Options{
			Addresses: cfg.ClickHouse.Addresses, HTTPAddresses: cfg.ClickHouse.HTTPAddresses, Conn: ClickHouseConn(cfg.ClickHouse),
			Database: r.Database, Cluster: r.Cluster,
			ZooKeeper: cfg.ZooKeeper.Servers, SessionTimeout: cfg.ZooKeeper.SessionTimeout.D(),
			SyncTimeout: o.SyncTimeout, Log: log,
		})
		if err != nil {
			return nil, err
		}
		r.Driver = d
	case config.SourcePostgres:
		if cfg.Postgres.DSN == "" {
			return nil, fmt.Errorf("no PostgreSQL configured: set [postgres] dsn: %w", ErrNotConfigured)
		}
		d, err := mpg.Open(ctx, cfg.Postgres.DSN.Reveal(), o.Database, log)
		if err != nil {
			return nil, err
		}
		r.Driver = d
	default:
		return nil, fmt.Errorf("--target %q: choose clickhouse or postgres: %w", target, ErrNotConfigured)
	}
	return r, nil
}

// MigrationState is one target's migrations as the status page shows them.
type MigrationState struct {
	Target string          `json:"target"`
	Status *migrate.Status `json:"status,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Migrations reports every configured target whose migrations directory exists.
func (d *Daemon) Migrations(ctx context.Context) ([]MigrationState, error) {
	var out []MigrationState
	for _, target := range []string{config.SourceClickHouse, config.SourcePostgres} {
		if _, err := os.Stat(MigrateDir(d.cfg, target, "")); err != nil || !d.configuredSource(target) {
			continue
		}
		st := MigrationState{Target: target}
		r, err := OpenMigrator(ctx, d.cfg, target, MigrateOptions{}, d.log)
		if err == nil {
			st.Status, err = r.Status(ctx)
			r.Driver.Close()
		}
		if err != nil {
			st.Error = err.Error()
		}
		out = append(out, st)
	}
	return out, nil
}

// Migrator runs one target's migrations (OpenMigrator); MigrateOp is an up, down or goto, and
// MigrateStep and MigrateStatus are what the runner reports.
type (
	Migrator      = migrate.Runner
	MigrateOp     = migrate.Op
	MigrateStep   = migrate.Step
	MigrateStatus = migrate.Status
)

// NilVersion is the version of a database no migration was applied to.
const NilVersion = migrate.NilVersion

// NewMigrationFiles names the up/down pair `migrate create TITLE` writes in dir, numbered after
// the newest file there (sequence or UTC timestamp). A title that cannot be used is ErrUsage.
func NewMigrationFiles(dir, title string, now time.Time) (up, down string, err error) {
	existing, err := migrate.Load(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", err
	}
	up, down, err = migrate.NewFiles(dir, existing, title, now)
	if err != nil {
		return "", "", usageError{err}
	}
	return up, down, nil
}

// CreateMigrationFiles writes the empty pair NewMigrationFiles named.
func CreateMigrationFiles(up, down string) error { return migrate.Create(up, down) }

// MigrationSnapshot is the snapshot `migrate --snapshot-before` took of the migrated database.
type MigrationSnapshot struct {
	Snapshot *store.Manifest // nil when Skipped
	Undo     string          // the arguments of the restore that undoes the migration
	// Skipped says why none was taken: the ClickHouse database holds no row (the first
	// migration of a new install), so a snapshot would hold nothing a restore could bring back.
	Skipped error
}

// SnapshotBeforeMigrate takes a snapshot of the migrated database only (o.Database, else
// [migrate]'s or the DSN's), so that a bad migration can be undone with restore; a failure
// means nothing may be migrated.
func SnapshotBeforeMigrate(ctx context.Context, cfg *config.Config, target string, o MigrateOptions, log *slog.Logger) (*MigrationSnapshot, error) {
	r, err := CreateRepository(ctx, cfg.Storage, log)
	if err != nil {
		return nil, fmt.Errorf("snapshot before migrating: %w", err)
	}
	req := BackupRequest{Only: []string{target}, Tags: []string{"before-migrate"}, LockWait: o.LockWait}
	out := &MigrationSnapshot{Undo: "--only postgres --dry-run   (see 'tracevault restore --help' for --pg-database)"}
	db := ""
	if target == config.SourceClickHouse {
		db = MigrateDatabase(cfg, o.Database)
		req.Databases, req.Tables, req.NeedRows = []string{db}, []string{db + ".*"}, true
		out.Undo = fmt.Sprintf("--only clickhouse --tables '%s.*' --replace", db)
	} else {
		req.PostgresDatabase = o.Database
	}
	m, err := Backup(ctx, cfg, r, req, log)
	if db != "" && (errors.Is(err, clickhouse.ErrSelectsNothing) || errors.Is(err, clickhouse.ErrNoRows)) {
		out.Skipped = err
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot before migrating failed, nothing was migrated: %w", err)
	}
	out.Snapshot = m
	return out, nil
}
