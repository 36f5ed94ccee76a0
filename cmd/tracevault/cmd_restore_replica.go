package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

func (a *app) restoreReplicaCommand() *cobra.Command {
	var fromSnapshot string
	var dryRun bool
	var syncTimeout time.Duration
	c := &cobra.Command{
		Use:   "restore-replica REPLICA",
		Short: "Rebuild a lost or isolated ClickHouse replica so it rejoins its replication group",
		Long: `Rebuild one replica (REPLICA: its configured host:port, or its {replica} macro, e.g. ch3) so that
every table rejoins its replication group. Nothing is executed on the other replicas: they are
only read.

For each table of [clickhouse] databases, as a healthy peer has it:
  - missing here (volume lost): its database and table are re-created with the peers'
    definition, ZooKeeper path, replica name and UUID (modern servers), after removing the
    stale registration the lost table left in ZooKeeper;
  - in the wrong group here (another ZooKeeper path or UUID): rows found on no peer are copied
    into a local recovery table __tracevault_recovered_<table>_<time> (reported, never dropped),
    then the isolated table is dropped on this replica only and re-created in the right group;
  - local, non-replicated tables (event_log) are re-created and, with --from-snapshot, loaded
    with the rows the snapshot recorded for this replica; otherwise created empty (reported);
  - views and materialized views are re-created after their tables.
Then it waits until each re-created table has fetched its data from the peers (progress every
few seconds, --sync-timeout per table) and checks its rows per partition against the peers'.
When no peer is healthy, the definitions come from --from-snapshot.

--dry-run prints the steps and changes nothing. Rerunning after an interruption is safe: the plan
is made again from what is left to do.` + progressHelp,
		Example: examples(
			"tracevault restore-replica ch3 --dry-run",
			"tracevault restore-replica 10.0.0.13:9000",
			"tracevault restore-replica ch3 --from-snapshot latest"),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := jobs.ReplicaRequest{Replica: args[0], FromSnapshot: fromSnapshot, SyncTimeout: syncTimeout}
			var repo *store.Repository
			if fromSnapshot != "" {
				r, err := a.repo(cmd)
				if err != nil {
					return err
				}
				repo = r
			} else {
				cfg, err := a.loadConfig(cmd)
				if err != nil {
					return err
				}
				a.cfg = cfg
			}
			rb, err := jobs.NewReplicaRebuild(cmd.Context(), a.cfg, repo, req)
			if err != nil {
				return failed(err)
			}
			if !dryRun {
				a.startProgress(cmd, "restore-replica")
			}
			ctx := cmd.Context()
			plan, err := rb.Plan(ctx, a.log)
			if err != nil {
				return jobError(err)
			}
			defer plan.Close()
			if dryRun {
				return printPlan(a, cmd, plan)
			}
			res, err := plan.Run(ctx)
			a.progressDone(ctx, err)
			if err != nil {
				return failed(err)
			}
			if a.json {
				return a.printJSON(cmd, map[string]any{"plan": plan, "result": res})
			}
			out := cmd.OutOrStdout()
			for _, r := range res.Recovered {
				if r.Rows > 0 {
					fmt.Fprintf(out, "%s: %d rows found on no peer were kept in %s on %s; merge them back with INSERT INTO %s SELECT * FROM %s once checked\n",
						r.Table, r.Rows, r.RecoveryTable, plan.Name, r.Table, r.RecoveryTable)
				}
			}
			for _, n := range plan.Notes {
				fmt.Fprintln(out, "note:", n)
			}
			if len(plan.Steps) == 0 {
				// "rebuilt: 0 steps" read as if something had been done to a replica that needed nothing.
				fmt.Fprintf(out, "nothing to do: every table of %s is in its peers' groups\n", plan.Name)
				return nil
			}
			fmt.Fprintf(out, "replica %s rebuilt: %d steps; %d tables hold their peers' rows per partition\n", plan.Name, len(plan.Steps), len(res.Verified))
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&fromSnapshot, "from-snapshot", "", "snapshot ID (or 'latest') for local tables' rows, and for definitions when no peer is healthy")
	fl.BoolVar(&dryRun, "dry-run", false, "print the steps, change nothing")
	fl.DurationVar(&syncTimeout, "sync-timeout", 30*time.Minute, "how long each table may take to fetch its data from the peers")
	return c
}
