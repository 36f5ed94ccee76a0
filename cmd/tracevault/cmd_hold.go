package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
)

// holdCommand is `hold` (hold true) or `release` (false): a legal hold on a snapshot's manifest
// and every object it references.
func (a *app) holdCommand(hold bool) *cobra.Command {
	use, short, verb := "hold SNAPSHOT", "Put a snapshot under an Azure legal hold: nothing can delete it until released", "held"
	if !hold {
		use, short, verb = "release SNAPSHOT", "Release a snapshot's Azure legal hold", "released"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

A legal hold (Azure version-level immutability) covers the snapshot's manifest and every object it
references, shared ones included, so no credential can delete or overwrite them, prune's neither
(prune reports them as retained and goes on). It needs a container or account with version-level
immutability support and a credential allowed to set legal holds (a SAS with permission i, or
an owner role), not the daemon's. A directory and Azurite have no legal holds.`,
		Example: examples("tracevault hold 20261206T030000Z-1a2b3c", "tracevault release latest"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			rep, err := jobs.Hold(cmd.Context(), r, args[0], hold)
			if err != nil {
				return failed(err)
			}
			if a.json {
				return a.printJSON(cmd, rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s snapshot %s: %d objects\n", verb, rep.Snapshot, rep.Objects)
			return nil
		},
	}
}
