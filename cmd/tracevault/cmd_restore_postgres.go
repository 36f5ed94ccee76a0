package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

func (a *app) restorePostgres(cmd *cobra.Command, repo *store.Repository, m *store.Manifest, f restoreFlags) error {
	pg := a.cfg.Postgres
	if pg.DSN == "" {
		return usage(errors.New("no PostgreSQL configured: set [postgres] dsn to the server to restore into (a superuser or the database owner)"))
	}
	for _, c := range m.Components {
		// A failed postgres component leaves a section describing a copy that never finished.
		if c.Source == config.SourcePostgres && c.Status != store.StatusComplete {
			return failed(fmt.Errorf("the postgres part of snapshot %s failed (%s); restore from another snapshot ('tracevault list')", m.ID, c.Error))
		}
	}
	rs := postgres.NewRestorer(postgres.RestoreOptions{DSN: pg.DSN.Reveal(), Database: f.pgDatabase, Tables: f.tables,
		Parallel: pg.Parallel, Replace: f.replace, Log: a.log})
	plan, err := rs.Plan(cmd.Context(), m)
	if err != nil {
		return failed(err)
	}
	if f.dryRun {
		return printPlan(a, cmd, plan, postgres.WritePlan)
	}
	err = rs.Execute(cmd.Context(), repo, plan, func(done, total int, s postgres.Step) {
		a.log.Info("restore step done", "step", fmt.Sprintf("%d/%d", done, total), "action", s.Action, "target", s.Target, "tables", s.Tables, "rows", s.Rows)
	})
	a.progressDone(cmd.Context(), err)
	if err != nil {
		return failed(err)
	}
	if a.json {
		return a.printJSON(cmd, map[string]any{"snapshot": m.ID, "database": plan.Database, "mode": plan.Mode, "steps": len(plan.Steps), "verified": true})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "restored snapshot %s into database %s (%s): %d steps; row counts verified\n", m.ID, plan.Database, plan.Mode, len(plan.Steps))
	return nil
}
