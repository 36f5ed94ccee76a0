package jobs

import (
	"context"

	"github.com/tracevault/tracevault/snapshot/store"
)

// Hold puts a snapshot under a legal hold (hold true) or releases it: for an incident, so that
// no credential can delete it, prune's included. It needs a credential allowed to set legal
// holds on a container with version-level immutability (store.Repository.Hold).
func Hold(ctx context.Context, repo *store.Repository, id string, hold bool) (store.HoldReport, error) {
	return repo.Hold(ctx, id, hold)
}
