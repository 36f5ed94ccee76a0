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
	// Chain is the chain to follow (--chain); default the one of [postgres] dsn's database and
	// pitr_slot that reaches the target. A repository may hold several databases' chains.
	Chain string
}

// pitrTarget is the request's target limited to the chains a restore may follow: the one asked
// for, or those the daemon streams from the configured database into the configured slot.
func pitrTarget(cfg *config.Config, req PITRRequest) (pitr.Target, error) {
	t := req.Target
	t.Chain = req.Chain
	slot := cfg.Postgres.PITRSlot
	if slot == "" {
		slot = pitrDefaultSlot
	}
	return t.Within(cfg.Postgres.DSN.Reveal(), slot)
}

// pitrDefaultSlot is [postgres] pitr_slot's default, the Streamer's.
const pitrDefaultSlot = "tracevault"

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
	t, err := pitrTarget(cfg, req)
	if err != nil {
		return nil, err
	}
	return pitr.PlanRestore(ctx, repo, t)
}

// RestorePITR restores the base of the chain that reaches the target into a new database,
// then replays its changes up to the target, and says which commit it reached.
func RestorePITR(ctx context.Context, cfg *config.Config, repo *store.Repository, req PITRRequest, log *slog.Logger) (*pitr.Reached, error) {
	if err := requirePostgres(cfg); err != nil {
		return nil, err
	}
	t, err := pitrTarget(cfg, req)
	if err != nil {
		return nil, err
	}
	pg := cfg.Postgres
	return pitr.Restore(ctx, repo, pitr.RestoreOptions{DSN: pg.DSN.Reveal(), Database: req.Database, Parallel: pg.Parallel,
		MaintenanceWorkMem: int64(pg.RestoreMaintenanceWorkMem), MaintenanceWorkers: pg.RestoreParallelMaintenanceWorkers, SplitBytes: pgSplitBytes(pg), Slot: t.Slot, Log: log}, t)
}
