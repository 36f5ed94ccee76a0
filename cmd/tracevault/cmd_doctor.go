package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
)

func (a *app) doctorCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Probe whether the repository's credential can overwrite or delete",
		Long: `Check the repository's protection by trying, not by trusting a flag: create a canary object
under doctor/ (create-only), then try to overwrite it and to delete it with the configured
credential. With [storage] append_only = true both must be refused (an Azure container SAS
with permissions rcl, or a role without blob write and delete); if either succeeds, a thief of
the daemon's credential can destroy the repository, which is a problem (exit 1). Without
append_only the findings are reported as notes. Each run leaves its canary behind when the
credential cannot delete it; prune's identity may remove doctor/.`,
		Example: examples("tracevault doctor", "tracevault doctor --json"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			rep, err := jobs.Doctor(cmd.Context(), r)
			if err != nil {
				return failed(err)
			}
			if a.json {
				if err := a.printJSON(cmd, rep); err != nil {
					return err
				}
			} else {
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "repository %s, append_only %t, canary %s\n", rep.Repository, rep.AppendOnly, rep.Canary)
				for _, p := range rep.Probes {
					verdict := "refused"
					if p.Allowed {
						verdict = "ALLOWED"
					}
					fmt.Fprintf(out, "  %-9s %s: %s\n", p.Probe, verdict, p.Detail)
				}
				for _, n := range rep.Notes {
					fmt.Fprintf(out, "note: %s\n", n)
				}
				for _, p := range rep.Problems {
					fmt.Fprintf(out, "problem: %s\n", p)
				}
			}
			if len(rep.Problems) > 0 {
				return &codeError{code: exitFailed, err: fmt.Errorf("%d problems", len(rep.Problems)), silent: a.json}
			}
			return nil
		},
	}
}
