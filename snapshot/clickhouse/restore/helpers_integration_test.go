package restore_test

import (
	"context"
	"fmt"

	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// planAndRestore restores m with o as the restore command does, without its confirmation:
// it opens a restorer, plans, and executes the plan, telling progress (which may be nil) of
// each step. It returns the plan, so a test can compare what ran with what was planned.
func planAndRestore(ctx context.Context, o restore.Options, repo *store.Repository, m *store.Manifest, progress restore.Progress) (*restore.Plan, error) {
	rs, err := restore.New(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("open the restorer: %w", err)
	}
	defer rs.Close()
	plan, err := rs.Plan(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	return plan, rs.Execute(ctx, repo, plan, progress)
}
