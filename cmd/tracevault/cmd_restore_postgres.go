package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
)

func (a *app) restoredPostgres(cmd *cobra.Command, res *jobs.RestoreResult, err error) error {
	a.progressDone(cmd.Context(), err)
	if err != nil {
		return failed(err)
	}
	if a.json {
		return a.printJSON(cmd, map[string]any{"snapshot": res.Snapshot, "database": res.Database, "mode": res.Mode, "steps": res.Steps, "verified": true})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "restored snapshot %s into database %s (%s): %d steps; row counts verified\n", res.Snapshot, res.Database, res.Mode, res.Steps)
	return nil
}
