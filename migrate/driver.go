package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Driver is one database's side of a migration, shaped like golang-migrate's database.Driver:
// the runner above it is shared by every target.
type Driver interface {
	// Name says which database this is, for messages: "clickhouse database default".
	Name() string
	// Dialect says how the server reads strings and comments, to cut files into statements.
	Dialect() Dialect
	// Lock excludes every other migrator of the same database, waiting at most wait; a timeout
	// returns a *LockedError naming the holder.
	Lock(ctx context.Context, wait time.Duration) error
	Unlock(ctx context.Context) error
	// Run executes one migration file's statements; a failure is a *StatementError.
	Run(ctx context.Context, file string, stmts []Statement) error
	// Version reads schema_migrations as golang-migrate does; NilVersion when nothing is applied.
	Version(ctx context.Context) (version int64, dirty bool, err error)
	// SetVersion writes schema_migrations as golang-migrate does.
	SetVersion(ctx context.Context, version int64, dirty bool) error
	// Checksums returns the recorded checksum of each applied version, from tracevault's own
	// table; versions applied by another tool have none.
	Checksums(ctx context.Context) (map[int64]string, error)
	// SetChecksum records the checksum of an applied version; "" forgets it (after a down).
	SetChecksum(ctx context.Context, version int64, title, checksum string) error
	// Verify checks, after a migration, that every server agrees on schema_migrations and on
	// the tables the statements touched; an error names the server that lags.
	Verify(ctx context.Context, stmts []Statement) error
	Close() error
}

// StatementError is a statement the server rejected.
type StatementError struct {
	File      string
	Statement string // empty when the server did not say which statement failed
	Err       error
}

func (e *StatementError) Error() string {
	if e.Statement == "" {
		return fmt.Sprintf("%s failed: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s failed at statement:\n    %s\nserver error: %v", e.File, e.Statement, e.Err)
}

func (e *StatementError) Unwrap() error { return e.Err }

// ErrLocked is matched by every *LockedError.
var ErrLocked = errors.New("migration lock held by another migrator")

// LockedError says who holds the lock after waiting gave up.
type LockedError struct {
	Holder string
	Waited time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("migration lock still held after %s by %s; wait for that run to finish or raise --lock-wait", e.Waited.Round(time.Second), e.Holder)
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }
