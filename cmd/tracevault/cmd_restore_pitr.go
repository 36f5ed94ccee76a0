package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
)

// restorePITR restores PostgreSQL to a time or an LSN: the base of the chain that reaches it,
// then its change segments replayed up to the target.
func (a *app) restorePITR(cmd *cobra.Command, f restoreFlags) error {
	if f.only != "postgres" {
		return usage(errors.New("--to and --to-lsn go with --only postgres"))
	}
	if f.to != "" && f.toLSN != "" {
		return usage(errors.New("give --to or --to-lsn, not both"))
	}
	if len(f.tables) > 0 || f.replace || f.partial {
		return usage(errors.New("--to and --to-lsn restore the whole database into a new one: drop --tables, --replace and --allow-partial, and name the new database with --pg-database"))
	}
	t, err := jobs.ParsePITRTarget(f.to, f.toLSN)
	if err != nil {
		return usage(err)
	}
	repo, err := a.repo(cmd) // loads the configuration too
	if err != nil {
		return err
	}
	req := jobs.PITRRequest{Target: t, Database: f.pgDatabase, Chain: f.chain}
	if f.dryRun {
		plan, err := jobs.PlanPITR(cmd.Context(), a.cfg, repo, req)
		if err != nil {
			return jobError(err)
		}
		if a.json {
			return a.printJSON(cmd, map[string]any{"chain": plan.Chain.ID, "base": plan.Chain.Base, "segments": len(plan.Segments), "target": t.String()})
		}
		fmt.Fprintf(cmd.OutOrStdout(), "would restore base snapshot %s (chain %s, LSN %s), then replay %d change segments up to %s\n",
			plan.Chain.Base, plan.Chain.ID, plan.Chain.StartLSN, len(plan.Segments), t)
		return nil
	}
	reached, err := jobs.RestorePITR(cmd.Context(), a.cfg, repo, req, a.log)
	if err != nil {
		return jobError(err)
	}
	if a.json {
		return a.printJSON(cmd, reached)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "restored database %s to %s: base %s, then %d transactions (%d changes) replayed; last commit LSN %s at %s (xid %d)\n",
		reached.Database, t, reached.Base, reached.Transactions, reached.Changes, reached.LSN, reached.Time.Format(time.RFC3339Nano), reached.Xid)
	return nil
}
