package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
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
	var t pitr.Target
	if f.to != "" {
		at, err := time.Parse(time.RFC3339Nano, f.to)
		if err != nil {
			return usage(fmt.Errorf("--to %q: write an RFC 3339 time with its zone, e.g. 2026-11-27T10:15:00Z", f.to))
		}
		t.Time = at
	} else {
		lsn, err := pitr.ParseLSN(f.toLSN)
		if err != nil {
			return usage(fmt.Errorf("--to-lsn: %w", err))
		}
		t.LSN = lsn
	}
	repo, err := a.repo(cmd) // loads the configuration too
	if err != nil {
		return err
	}
	pg := a.cfg.Postgres
	if pg.DSN == "" {
		return usage(errors.New("no PostgreSQL configured: set [postgres] dsn to the server to restore into (a superuser or the database owner)"))
	}
	if f.dryRun {
		plan, err := pitr.PlanRestore(cmd.Context(), repo, t)
		if err != nil {
			return failed(err)
		}
		if a.json {
			return a.printJSON(cmd, map[string]any{"chain": plan.Chain.ID, "base": plan.Chain.Base, "segments": len(plan.Segments), "target": t.String()})
		}
		fmt.Fprintf(cmd.OutOrStdout(), "would restore base snapshot %s (chain %s, LSN %s), then replay %d change segments up to %s\n",
			plan.Chain.Base, plan.Chain.ID, plan.Chain.StartLSN, len(plan.Segments), t)
		return nil
	}
	reached, err := pitr.Restore(cmd.Context(), repo, pitr.RestoreOptions{DSN: pg.DSN.Reveal(), Database: f.pgDatabase, Parallel: pg.Parallel, Log: a.log}, t)
	if err != nil {
		return failed(err)
	}
	if a.json {
		return a.printJSON(cmd, reached)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "restored database %s to %s: base %s, then %d transactions (%d changes) replayed; last commit LSN %s at %s (xid %d)\n",
		reached.Database, t, reached.Base, reached.Transactions, reached.Changes, reached.LSN, reached.Time.Format(time.RFC3339Nano), reached.Xid)
	return nil
}
