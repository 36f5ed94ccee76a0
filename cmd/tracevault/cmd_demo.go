package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/deploy/demo"
)

func (a *app) demoCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Create a Langfuse-like demo deployment to practise backups and restores on",
	}
	var traces int
	var seed uint64
	var database string
	var months int
	var modern bool
	seedCmd := &cobra.Command{
		Use:   "seed",
		Short: "Migrate the demo schema and fill ClickHouse and PostgreSQL with realistic rows",
		Long: `Apply the demo schema's pending migrations (ClickHouse: the 13 objects of Langfuse's architecture,
ON CLUSTER when a cluster is configured; PostgreSQL: users, organizations, projects, API keys...)
and insert rows spread over several monthly partitions. The migrations are deploy/demo/migrations,
carried in the binary and applied as 'tracevault migrate up' applies them, through
schema_migrations; ClickHouse's run over the first of [clickhouse] http_addresses. The same --seed
always yields the same rows. A database that already holds demo data is left alone and reported
as skipped.`,
		Example: examples(
			"tracevault demo seed --config .stack/tracevault.toml --traces 100000",
			"tracevault demo seed --traces 1000000 --seed 7 --json",
			"tracevault demo seed --config .stack/modern.toml --modern --database langfuse"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			opts := demo.Options{
				ClickHouse:     cfg.ClickHouse.Addresses,
				ClickHouseHTTP: cfg.ClickHouse.HTTPAddresses,
				User:           cfg.ClickHouse.User,
				Password:       cfg.ClickHouse.Password.Reveal(),
				Cluster:        cfg.ClickHouse.Cluster,
				Database:       database,
				ZooKeeper:      cfg.ZooKeeper.Servers,
				PostgresDSN:    cfg.Postgres.DSN.Reveal(),
				Traces:         traces,
				Seed:           seed,
				Months:         months,
				Modern:         modern,
			}
			last := time.Now()
			opts.Progress = func(table string, rows int64) {
				if time.Since(last) > 2*time.Second {
					last = time.Now()
					a.log.Info("seeding", "table", table, "rows", rows)
				}
			}
			res, err := demo.Seed(cmd.Context(), opts)
			if err != nil {
				return failed(err)
			}
			return a.printSeedResult(cmd, res)
		},
	}
	f := seedCmd.Flags()
	f.IntVar(&traces, "traces", 10000, "number of traces; observations and scores scale with it")
	f.Uint64Var(&seed, "seed", 1, "random seed; the same seed gives the same rows")
	f.StringVar(&database, "database", "default", "ClickHouse database to create the demo tables in")
	f.IntVar(&months, "months", 6, "monthly partitions the rows are spread over")
	f.BoolVar(&modern, "modern", false, "seed the modern schema (ClickHouse >= 24.3, one server, no cluster: Map, DateTime64, Bool, Decimal64, JSON, UUID) from deploy/demo/migrations/clickhouse-modern")
	cmd.AddCommand(seedCmd)
	return cmd
}

func (a *app) printSeedResult(cmd *cobra.Command, res demo.Result) error {
	out := cmd.OutOrStdout()
	if a.json {
		return json.NewEncoder(out).Encode(res)
	}
	names := make([]string, 0, len(res.Rows))
	for k := range res.Rows {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(out, "%-52s %10d rows\n", k, res.Rows[k])
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(out, "%s: already holds demo data, left as it is\n", s)
	}
	fmt.Fprintf(out, "seeded in %s\n", res.Duration.Round(time.Millisecond))
	return nil
}
