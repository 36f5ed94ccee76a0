package demo

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/migrate"
)

// The demo schema is versioned migrations, one directory per target ("clickhouse",
// "postgres") in golang-migrate's naming; the binary carries them so that `demo seed` needs no
// checkout, and `tracevault migrate --dir deploy/demo/migrations/<target>` applies the same files.
//
//go:embed migrations/clickhouse/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// extractMigrations copies one target's embedded migrations into a new temporary directory:
// migrate.Load reads a directory, as --dir gives it one. The caller removes dir.
func extractMigrations(target string) (dir string, err error) {
	files, err := fs.Sub(migrationFiles, "migrations/"+target)
	if err != nil {
		return "", fmt.Errorf("demo %s migrations: %w", target, err)
	}
	dir, err = os.MkdirTemp("", "tracevault-demo-"+target+"-")
	if err != nil {
		return "", fmt.Errorf("demo %s migrations: %w", target, err)
	}
	if err := os.CopyFS(dir, files); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("copy the demo %s migrations to %s: %w", target, dir, err)
	}
	return dir, nil
}

// migrateUp applies a target's pending migrations through migrate.Runner, the code path of
// `tracevault migrate up`, so that command later finds schema_migrations and the checksums
// exactly as it would have left them. database is what {{database}} expands to.
func migrateUp(ctx context.Context, target string, d migrate.Driver, cluster, database string) error {
	dir, err := extractMigrations(target)
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
	command += " --dir deploy/demo/migrations/" + target
	r := &migrate.Runner{Driver: d, Migrations: ms, Cluster: cluster, Database: database, LockWait: 5 * time.Minute, Command: command}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil {
		return fmt.Errorf("apply the demo %s migrations to %s: %w", target, d.Name(), err)
	}
	return nil
}
