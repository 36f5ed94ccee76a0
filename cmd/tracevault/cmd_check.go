package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
)

func (a *app) checkCommand() *cobra.Command {
	var maxDelay time.Duration
	c := &cobra.Command{
		Use:   "check",
		Short: "Check replica consistency, ZooKeeper health and migrations; exit 1 on problems",
		Long: `Check every table of [clickhouse] databases on every configured replica and print a matrix
(tables x replicas) with a verdict per cell, then each problem with the command that fixes it.

A replicated table is judged against the group most replicas are in: its ZooKeeper path and
UUID (where the server has UUIDs) must be the same as its peers' ("isolated" otherwise: the
replica answers queries from its own, usually empty, copy); it must not be readonly or have
lost its ZooKeeper session; it must be registered and active under its group's replicas/ in
ZooKeeper; its absolute_delay must stay under --max-delay; once its replication queue is
empty its rows per partition must equal its peers'. Every table must exist on every replica
with the same columns. Also: golang-migrate's schema_migrations (a dirty version is a
problem) and the ZooKeeper ensemble's health.

Verdicts: ok, syncing (queue not empty; rows not compared yet), lagging, rows-differ,
schema-differs, inactive, unregistered, readonly, expired, isolated, missing, down.
Exits 0 when healthy, 1 when any problem was found.`,
		Example: examples("tracevault check", "tracevault check --json | jq '.problems[] | .fix'"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			rep, err := jobs.CheckCluster(cmd.Context(), cfg, maxDelay, a.log)
			if err != nil {
				return failed(err)
			}
			if a.json {
				if err := a.printJSON(cmd, rep); err != nil {
					return failed(err)
				}
			} else {
				jobs.WriteCheckReport(cmd.OutOrStdout(), rep)
			}
			if !rep.Healthy {
				return &codeError{code: exitFailed, err: fmt.Errorf("%d problem(s) found; each is listed with its fix", len(rep.Problems)), silent: a.json}
			}
			return nil
		},
	}
	c.Flags().DurationVar(&maxDelay, "max-delay", 5*time.Minute, "absolute_delay past which a replica is lagging")
	return c
}
