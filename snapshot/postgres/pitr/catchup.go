package pitr

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tracevault/tracevault/snapshot/store"
)

// Covered is the newest chain that within selects (its Chain, or its Database and Slot) and
// the position it covers: every transaction that committed before lsn is in its base or its
// durable segments. A copy kept up to date from the chain (CatchUp) can reach just before lsn.
func Covered(ctx context.Context, repo *store.Repository, within Target) (*Chain, LSN, error) {
	chains, err := Chains(ctx, repo)
	if err != nil {
		return nil, 0, err
	}
	var c *Chain
	for i := range chains {
		x := &chains[i]
		if (within.Chain == "" || x.ID == within.Chain) && (within.Database == "" || x.Database == within.Database) && (within.Slot == "" || x.Slot == within.Slot) {
			c = x // oldest first: the newest wins
		}
	}
	if c == nil {
		return nil, 0, fmt.Errorf("%w of database %q, slot %q: is [postgres] pitr streaming (the daemon)?", errNoChain, within.Database, within.Slot)
	}
	segs, broken, err := chainSegments(ctx, repo, *c, nil)
	if err != nil {
		return nil, 0, err
	}
	if broken != nil {
		return c, pathEnd(*c, segs), nil
	}
	_, lsn, err := coverage(ctx, repo, *c, segs)
	return c, lsn, err
}

// CatchUp brings from.Database at dsn, which holds chain from.Chain's base (from.Xid zero) or
// was brought to commit from.LSN by a Restore or an earlier CatchUp, up to t: it replays the
// chain's transactions committed after from, and says which commit it reached. A migration's
// passes keep a copy on another server close to its source this way.
func CatchUp(ctx context.Context, repo *store.Repository, dsn string, from Reached, t Target, log *slog.Logger) (*Reached, error) {
	if log == nil {
		log = slog.Default()
	}
	t.Chain = from.Chain
	plan, err := PlanRestore(ctx, repo, t)
	if err != nil {
		return nil, err
	}
	var skip LSN
	if from.Xid != 0 {
		skip = from.LSN
	}
	var segs []Segment
	for _, s := range plan.Segments {
		if s.EndLSN > skip {
			segs = append(segs, s)
		}
	}
	plan.Segments = segs
	reached := from
	reached.Transactions, reached.Changes = 0, 0
	log.Info("point-in-time catch-up", "chain", from.Chain, "from", from.LSN, "segments", len(segs), "target", t.String())
	if err := replay(ctx, repo, dsn, plan, t, skip, &reached, log); err != nil {
		return &reached, fmt.Errorf("catch-up of %s stopped after commit %s (%d transactions): %w", reached.Database, reached.LSN, reached.Transactions, err)
	}
	return &reached, nil
}
