package main

import (
	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
)

func (a *app) migrateClusterCommand() *cobra.Command {
	var req jobs.MigrateClusterRequest
	var dryRun bool
	c := &cobra.Command{
		Use:   "migrate-cluster --to TARGET.toml",
		Short: "Move Langfuse (ClickHouse, PostgreSQL, blobs) to new servers in passes, then cut over",
		Long: `Move the configured ClickHouse (the source) to the cluster --to describes (its [clickhouse],
and [zookeeper] when it replicates): another version, one server or several replicas, another
cluster name. Each table's engine is rewritten for the target (ReplicatedReplacingMergeTree on a
single server becomes ReplacingMergeTree; on replicas, Replicated* with the target's path and
macros, created ON CLUSTER), and schema_migrations moves with the data, clean, at its version.

Each run is one pass: a backup of the source into the repository (incremental), then a restore
into the target of the partitions that changed since the last pass, through the restore
planner; it reports how far behind the target was. The passes are recorded in
TARGET.toml.migrate-state.json, so an interrupted pass resumes. The source is only read.
Pause Langfuse's ingestion, then run --cutover: the last pass, then a proof that every target
server holds each partition's rows (and content checksums where both sides compute one kind);
it prints the downtime the pass took. A target database holding tables is refused on the
first pass unless --allow-nonempty.

The same run moves PostgreSQL to --to's [postgres] dsn and the blob container to its [blobs]
url: one command for the whole Langfuse move, or --only clickhouse,postgres,blobs for some.
PostgreSQL's first pass restores a backup of it (with [postgres] pitr, the stream's base), each
later pass replays the changes since (PITR catch-up) or, without PITR, copies it again; the
cutover proves every table's rows and content checksum equal. A blob pass writes what is
missing or changed on the target; the cutover proves both listings equal. A target database
holding tables, or a target container holding blobs, is refused unless --allow-nonempty.`,
		Example: examples(
			"tracevault migrate-cluster --to new-cluster.toml --dry-run",
			"tracevault migrate-cluster --to new-cluster.toml",
			"tracevault migrate-cluster --to new-cluster.toml --cutover --json",
			"tracevault migrate-cluster --to new-servers.toml --only postgres,blobs"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			open := jobs.CreateRepository // passes store their backups
			if dryRun {
				open = jobs.OpenRepository
			}
			r, err := a.openRepo(cmd, open)
			if err != nil {
				return err
			}
			m, err := jobs.NewClusterMigration(cmd.Context(), a.cfg, r, req, a.log)
			if err != nil {
				return jobError(err)
			}
			defer m.Close()
			if dryRun {
				if a.json {
					return a.printJSON(cmd, m.Plan)
				}
				m.Plan.Write(cmd.OutOrStdout())
				return nil
			}
			pr := a.startProgress(cmd, "migrate-cluster")
			rep, err := m.Run(cmd.Context(), r)
			pr.finish(cmd.Context(), err)
			if err != nil {
				return jobError(err)
			}
			if a.json {
				return a.printJSON(cmd, rep)
			}
			rep.Write(cmd.OutOrStdout())
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&req.Target, "to", "", "the target cluster's configuration file (required)")
	f.StringVar(&req.FromSnapshot, "from-snapshot", "", "restore this snapshot in the first pass instead of backing up the source")
	f.BoolVar(&dryRun, "dry-run", false, "print the plan; write nothing")
	f.BoolVar(&req.Cutover, "cutover", false, "the last pass, ingestion paused: then prove the target equals the source")
	f.BoolVar(&req.AllowNonEmpty, "allow-nonempty", false, "write into target databases that already hold tables, or a container that holds blobs")
	f.StringSliceVar(&req.Only, "only", nil, "sources to move: clickhouse, postgres, blobs (default every one --to names)")
	_ = c.MarkFlagRequired("to")
	return c
}
