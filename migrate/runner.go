package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Runner plans and applies migrations through a Driver. It is the part every target shares.
type Runner struct {
	Driver     Driver
	Migrations []Migration // sorted by version, as Load returns them
	Cluster    string      // what {{cluster}} expands to ON CLUSTER; empty for none
	Database   string      // what {{database}} expands to: the migrated ClickHouse database
	// Command is how the operator invokes this target, for the guidance printed after a
	// failure, e.g. "tracevault migrate --target clickhouse --database default".
	Command  string
	LockWait time.Duration
	Log      *slog.Logger
}

// Op is what to migrate to: Kind "up" or "down" with N steps (0 = all), or "goto" Version.
type Op struct {
	Kind    string
	N       int
	Version int64
}

// Step is one file applied in one direction; Target is the version schema_migrations holds
// once the step is done (golang-migrate marks the target dirty while the file runs).
type Step struct {
	Version   int64  `json:"version"`
	Title     string `json:"title"`
	Direction string `json:"direction"`
	File      string `json:"file"`
	Target    int64  `json:"target"`
}

// DirtyError is a database left dirty by a failed migration: what to do is to look, fix, then
// tell tracevault where the schema really is with force.
type DirtyError struct {
	Version  int64  // version schema_migrations holds, dirty
	Undone   int64  // the version to force when the failed step's changes were undone by hand
	Command  string // the operator's migrate command line, without the subcommand
	Failure  error  // the statement error, when the failure happened in this run
	Database string
}

func (e *DirtyError) Error() string {
	head := fmt.Sprintf("%s is dirty at version %d: a migration failed part-way and tracevault will not run more on top of it", e.Database, e.Version)
	if e.Failure != nil {
		head = fmt.Sprintf("migration failed; schema_migrations of %s is left dirty at version %d\n%v", e.Database, e.Version, e.Failure)
	}
	return fmt.Sprintf(`%s
Fix the cause, check what the failed step changed, then say which version the schema is at:
    %s force %d    # the failed step's changes are complete (finished by hand)
    %s force %d    # the failed step's changes are undone
and continue with:
    %s up`, head, e.Command, e.Version, e.Command, e.Undone, e.Command)
}

func (e *DirtyError) Unwrap() error { return e.Failure }

// ClusterError is a migration that ran but that some server has not taken: the run stops so
// that no later migration builds on a schema a replica lacks.
type ClusterError struct {
	Version int64
	Err     error
}

func (e *ClusterError) Error() string {
	return fmt.Sprintf("migration %d ran, but the servers do not agree afterwards: %v", e.Version, e.Err)
}

func (e *ClusterError) Unwrap() error { return e.Err }

func (r *Runner) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// Plan reads the current version and returns the steps op would take, without locking or
// changing anything: what --dry-run prints. A dirty database is refused with guidance.
func (r *Runner) Plan(ctx context.Context, op Op) ([]Step, error) {
	cur, dirty, err := r.Driver.Version(ctx)
	if err != nil {
		return nil, err
	}
	if dirty {
		return nil, r.dirtyError(cur, nil)
	}
	return r.plan(cur, op)
}

func (r *Runner) plan(cur int64, op Op) ([]Step, error) {
	switch op.Kind {
	case "up":
		return r.upTo(cur, op.N, -1), nil
	case "down":
		return r.downTo(cur, op.N, NilVersion)
	case "goto":
		if r.index(op.Version) < 0 && op.Version != NilVersion {
			return nil, fmt.Errorf("goto %d: no migration file has version %d", op.Version, op.Version)
		}
		if op.Version >= cur {
			return r.upTo(cur, 0, op.Version), nil
		}
		return r.downTo(cur, 0, op.Version)
	}
	return nil, fmt.Errorf("unknown migration %q: use up, down or goto", op.Kind)
}

// upTo returns the up steps after cur: n of them (0 = all), or up to and including limit.
func (r *Runner) upTo(cur int64, n int, limit int64) []Step {
	var steps []Step
	for _, m := range r.Migrations {
		if m.Version <= cur || (limit >= 0 && m.Version > limit) {
			continue
		}
		if n > 0 && len(steps) == n {
			break
		}
		steps = append(steps, Step{Version: m.Version, Title: m.Title, Direction: "up", File: m.Up, Target: m.Version})
	}
	return steps
}

// downTo returns the down steps from cur: n of them (0 = all), or until the version is limit.
func (r *Runner) downTo(cur int64, n int, limit int64) ([]Step, error) {
	if cur == NilVersion {
		return nil, nil
	}
	i := r.index(cur)
	if i < 0 {
		return nil, fmt.Errorf("schema_migrations is at version %d, which no file in the migrations directory has; restore that file to migrate down", cur)
	}
	var steps []Step
	for ; i >= 0 && r.Migrations[i].Version > limit; i-- {
		if n > 0 && len(steps) == n {
			break
		}
		m := r.Migrations[i]
		if m.Down == "" {
			return nil, fmt.Errorf("migration %d (%s) has no .down.sql file; it cannot be reverted", m.Version, m.Title)
		}
		target := NilVersion
		if i > 0 {
			target = r.Migrations[i-1].Version
		}
		steps = append(steps, Step{Version: m.Version, Title: m.Title, Direction: "down", File: m.Down, Target: target})
	}
	return steps, nil
}

func (r *Runner) index(v int64) int {
	for i, m := range r.Migrations {
		if m.Version == v {
			return i
		}
	}
	return -1
}

// previous is the version before v among the files, NilVersion if none.
func (r *Runner) previous(v int64) int64 {
	prev := NilVersion
	for _, m := range r.Migrations {
		if m.Version >= v {
			break
		}
		prev = m.Version
	}
	return prev
}

// Dirty is the guidance for a database found dirty at v: what status and a refused up print.
func (r *Runner) Dirty(v int64) *DirtyError { return r.dirtyError(v, nil) }

func (r *Runner) dirtyError(v int64, failure error) *DirtyError {
	return &DirtyError{Version: v, Undone: r.previous(v), Command: r.Command, Failure: failure, Database: r.Driver.Name()}
}

// Migrate locks, plans op and applies it step by step. before, when not nil, sees the plan
// first (to take a snapshot, say) and may veto it; it is not called when there is nothing to do.
// The steps applied are returned, also with an error.
func (r *Runner) Migrate(ctx context.Context, op Op, before func(context.Context, []Step) error) (done []Step, err error) {
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.unlock(&err)
	steps, err := r.Plan(ctx, op)
	if err != nil || len(steps) == 0 {
		return nil, err
	}
	if before != nil {
		if err := before(ctx, steps); err != nil {
			return nil, err
		}
	}
	for _, s := range steps {
		if err := r.apply(ctx, s); err != nil {
			return done, err
		}
		done = append(done, s)
	}
	return done, nil
}

func (r *Runner) lock(ctx context.Context) error {
	if err := r.Driver.Lock(ctx, r.LockWait); err != nil {
		return fmt.Errorf("take the migration lock of %s: %w", r.Driver.Name(), err)
	}
	return nil
}

func (r *Runner) unlock(err *error) {
	// The lock must go even when ctx was cancelled, or the next run waits for a session timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if uerr := r.Driver.Unlock(ctx); uerr != nil {
		*err = errors.Join(*err, fmt.Errorf("release the migration lock of %s: %w", r.Driver.Name(), uerr))
	}
}

func (r *Runner) apply(ctx context.Context, s Step) error {
	body, err := os.ReadFile(s.File)
	if err != nil {
		return fmt.Errorf("read migration %s: %w", s.File, err)
	}
	stmts := Split(Expand(string(body), r.Cluster, r.Database), r.Driver.Dialect())
	start := time.Now()
	r.log().Info("migration starting", "version", s.Version, "title", s.Title, "direction", s.Direction, "statements", len(stmts))
	if err := r.Driver.SetVersion(ctx, s.Target, true); err != nil {
		return fmt.Errorf("mark version %d dirty before %s: %w", s.Target, s.File, err)
	}
	if err := r.Driver.Run(ctx, s.File, stmts); err != nil {
		de := r.dirtyError(s.Target, err)
		if s.Direction == "down" {
			de.Undone = s.Version
		}
		return de
	}
	if err := r.Driver.SetVersion(ctx, s.Target, false); err != nil {
		return fmt.Errorf("mark version %d clean after %s: %w", s.Target, s.File, err)
	}
	sum := ""
	if s.Direction == "up" {
		sum = checksumOf(body)
	}
	if err := r.Driver.SetChecksum(ctx, s.Version, s.Title, sum); err != nil {
		return fmt.Errorf("record the checksum of %s: %w", s.File, err)
	}
	if err := r.Driver.Verify(ctx, stmts); err != nil {
		return &ClusterError{Version: s.Version, Err: err}
	}
	r.log().Info("migration done", "version", s.Version, "direction", s.Direction, "now_at", s.Target, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// Force sets the version and clears the dirty flag without running anything, as
// golang-migrate's force does: the operator's statement of where the schema really is.
func (r *Runner) Force(ctx context.Context, v int64) (err error) {
	if v < NilVersion {
		return fmt.Errorf("force %d: versions are %d (none applied) or higher", v, NilVersion)
	}
	if err := r.lock(ctx); err != nil {
		return err
	}
	defer r.unlock(&err)
	if err := r.Driver.SetVersion(ctx, v, false); err != nil {
		return fmt.Errorf("force version %d: %w", v, err)
	}
	r.log().Info("migration version forced", "version", v)
	return nil
}
