package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
	"github.com/tracevault/tracevault/snapshot/store"
)

// PITRRequest is a point-in-time restore of PostgreSQL: `tracevault restore --only postgres
// --to TIME` (or --to-lsn).
type PITRRequest struct {
	Target   pitr.Target // from ParsePITRTarget
	Database string      // the new database; default the base snapshot's
}

// ParsePITRTarget reads --to (an RFC 3339 time with its zone) or --to-lsn; exactly one is given.
func ParsePITRTarget(to, toLSN string) (pitr.Target, error) {
	var t pitr.Target
	if to != "" {
		at, err := time.Parse(time.RFC3339Nano, to)
		if err != nil {
			return t, fmt.Errorf("--to %q: write an RFC 3339 time with its zone, e.g. 2026-11-27T10:15:00Z", to)
		}
		t.Time = at
		return t, nil
	}
	lsn, err := pitr.ParseLSN(toLSN)
	if err != nil {
		return t, fmt.Errorf("--to-lsn: %w", err)
	}
	t.LSN = lsn
	return t, nil
}

// PlanPITR picks the chain, base and segments that reach the target, for --dry-run.
func PlanPITR(ctx context.Context, cfg *config.Config, repo *store.Repository, req PITRRequest) (*pitr.Plan, error) {
	if err := requirePostgres(cfg); err != nil {
		return nil, err
	}
	return pitr.PlanRestore(ctx, repo, req.Target)
}

// RestorePITR restores the base of the chain that reaches the target into a new database,
// then replays its changes up to the target, and says which commit it reached.
func RestorePITR(ctx context.Context, cfg *config.Config, repo *store.Repository, req PITRRequest, log *slog.Logger) (*pitr.Reached, error) {
	if err := requirePostgres(cfg); err != nil {
		return nil, err
	}
	pg := cfg.Postgres
	return pitr.Restore(ctx, repo, pitr.RestoreOptions{DSN: pg.DSN.Reveal(), Database: req.Database, Parallel: pg.Parallel, Log: log}, req.Target)
}
