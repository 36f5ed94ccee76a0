package demo

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/migrate"
)

// The demo schema is versioned migrations, one directory per target ("clickhouse",
// "postgres"; "clickhouse-modern" for ClickHouse >= 24.3 on one server) in golang-migrate's naming; the binary carries them so that `demo seed` needs no
// checkout, and `tracevault migrate --dir demo/migrations/<target>` applies the same files.
//
//go:embed migrations/clickhouse/*.sql migrations/clickhouse-modern/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// SchemaVersion names one set of the demo migrations (a directory under migrations/) by its
// content: the first 12 hex digits of a SHA-256 over every file's name and bytes, in name
// order. Data seeded earlier and kept for reuse (the benchmark's seed cache) is stale when it
// changes.
func SchemaVersion(set string) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrationFiles, "migrations/"+set, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := migrationFiles.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("demo %s migrations: %w", set, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// extractMigrations copies one set of embedded migrations (a directory under migrations/) into
// a new temporary directory: migrate.Load reads a directory, as --dir gives it one. The caller
// removes dir.
func extractMigrations(set string) (dir string, err error) {
	files, err := fs.Sub(migrationFiles, "migrations/"+set)
	if err != nil {
		return "", fmt.Errorf("demo %s migrations: %w", set, err)
	}
	dir, err = os.MkdirTemp("", "tracevault-demo-"+set+"-")
	if err != nil {
		return "", fmt.Errorf("demo %s migrations: %w", set, err)
	}
	if err := os.CopyFS(dir, files); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("copy the demo %s migrations to %s: %w", set, dir, err)
	}
	return dir, nil
}

// migrateUp applies the pending migrations of a set (a directory under migrations/) to a target
// through migrate.Runner, the code path of
// `tracevault migrate up`, so that command later finds schema_migrations and the checksums
// exactly as it would have left them. database is what {{database}} expands to.
func migrateUp(ctx context.Context, target, set string, d migrate.Driver, cluster, database string) error {
	dir, err := extractMigrations(set)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ms, err := migrate.Load(dir)
	if err != nil {
		return err
	}
	// The guidance after a failure names the repository's copy of the same files.
	command := "tracevault migrate --target " + target
	if target == config.SourceClickHouse {
		command += " --database " + database
	}
	command += " --dir demo/migrations/" + set
	r := &migrate.Runner{Driver: d, Migrations: ms, Cluster: cluster, Database: database, LockWait: 5 * time.Minute, Command: command}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil {
		return fmt.Errorf("apply the demo %s migrations to %s: %w", target, d.Name(), err)
	}
	return nil
}
