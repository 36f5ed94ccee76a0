package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/config"
)

func (a *app) configCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with the configuration file",
	}
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a configuration file and report every problem",
		Long: `Validate a configuration file: unknown keys, wrong types, bad URLs, bad cron expressions,
missing required values and unset env: secrets are each reported with the key and line.
Exits 0 when the file is valid, 2 when it has problems.`,
		Example: examples(
			"tracevault config check --config /etc/tracevault.toml",
			"tracevault config check config.example.toml --json"),
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := a.configPath
			if len(args) == 1 {
				path = args[0]
			}
			cfg, err := config.Load(path)
			var problems config.Problems
			switch {
			case errors.As(err, &problems):
				if a.json {
					_ = json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"file": path, "valid": false, "problems": problems})
				} else {
					printProblems(cmd.ErrOrStderr(), problems)
				}
				return &codeError{code: exitUsage, err: err, silent: true}
			case err != nil:
				return usage(err)
			}
			if a.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"file": path, "valid": true, "jobs": len(cfg.Jobs), "storage": cfg.Storage.URL})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d jobs, storage %s)\n", path, len(cfg.Jobs), cfg.Storage.URL)
			return nil
		},
	}
	cmd.AddCommand(check)
	return cmd
}
