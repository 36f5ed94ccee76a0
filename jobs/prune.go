package jobs

import (
	"context"
	"time"

	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
	"github.com/tracevault/tracevault/snapshot/store"
)

// PruneReport is the store's, with the point-in-time chains removed along with their bases.
type PruneReport struct {
	store.PruneReport
	PITRChains []pitr.RemovedChain `json:"pitr_chains,omitempty"`
	// PITRDamaged are chain records left alone: their base is unknown.
	PITRDamaged []pitr.Damaged `json:"pitr_damaged,omitempty"`
	// RunsRemoved are run records beyond the history's limit.
	RunsRemoved int `json:"runs_removed,omitempty"`
}

// Prune applies the retention policy to snapshots, keeping the newest point-in-time chains'
// bases whatever the rules, then removes the chains whose base went. While a damaged manifest
// holds up the store's sweep, no chain is removed either: its base may be that manifest.
func Prune(ctx context.Context, repo *store.Repository, policy store.Retention, dryRun bool, lockWait time.Duration) (PruneReport, error) {
	var rep PruneReport
	pins, err := pitr.Pins(ctx, repo)
	if err != nil {
		return rep, err
	}
	policy.Pin = pins
	if rep.PruneReport, err = repo.Prune(ctx, policy, dryRun, lockWait); err != nil || rep.SweepSkipped != "" {
		return rep, err
	}
	rep.PITRChains, rep.PITRDamaged, err = pitr.Prune(ctx, repo, rep.Kept, dryRun)
	if err != nil || dryRun {
		return rep, err
	}
	// Append-only daemons never trim their run history (they cannot delete): prune does.
	rep.RunsRemoved, err = (&History{Repo: repo, Limit: historyLimit}).trim(ctx)
	return rep, err
}
