package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/jobs"
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
and insert rows spread over several monthly partitions. The migrations are demo/migrations,
carried in the binary and applied as 'tracevault migrate up' applies them, through
schema_migrations; ClickHouse's run over the first of [clickhouse] http_addresses. The same --seed
always yields the same rows. A database that already holds demo data is left alone and reported
as skipped. With [blobs] url set, Langfuse's blob container gets the event file each
blob_storage_file_log row points at, as Langfuse writes it (only the files it lacks).`,
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
			if cfg.Blobs.URL != "" {
				opts.Blobs = &demo.Blobs{URL: cfg.Blobs.URL, Credentials: jobs.BlobCredentials(cfg.Blobs)}
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
	f.BoolVar(&modern, "modern", false, "seed the modern schema (one ClickHouse >= 25.7, no cluster: Langfuse v3's tables with Map, DateTime64, Decimal64, JSON, UUID, and v4's events_full, events_core and its view, and the staging table) from demo/migrations/clickhouse-modern")
	cmd.AddCommand(seedCmd, a.demoLoadCommand())
	return cmd
}

func (a *app) demoLoadCommand() *cobra.Command {
	var o demo.LoadOptions
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Ingest into the demo deployment continuously, as Langfuse's workers do",
		Long: `Write into a seeded demo deployment (run 'tracevault demo seed' first) at a steady rate until
interrupted or --duration has passed: batches of new traces with their observations and scores
in the current month, newer versions of recent traces (ReplacingMergeTree upserts by event_ts),
is_deleted tombstones, a few late traces in older months, all into the first ClickHouse replica;
and in PostgreSQL, once a second, an API key and its audit log row created, a key used, a
project's settings changed, and now and then a new project. The achieved rate is logged every
few seconds and printed at the end. With --ledger, every acknowledged batch is recorded (time,
table, partition, operation, version, ids), so that a check can say which rows a snapshot cut
at a given time must hold. SIGINT stops it after the batch in flight.

With --modern it writes Langfuse v4's way into a world seeded with 'demo seed --modern', one
statement at a time on the first ClickHouse address: new traces into events_full (its view
copies them into events_core), lightweight UPDATEs of both (bookmarks, publishing, output
edits), lightweight DELETEs in lightweight_update mode (a trace, and retention of the run's
older rows), now and then OPTIMIZE ... FINAL of the current partition and a TRUNCATE of the
legacy events table. The ledger then holds each acknowledged insert, update and delete with
the values it wrote, from which demo.Ledger.Expected says what the tables held at any time.`,
		Example: examples(
			"tracevault demo load --config .stack/tracevault.toml --rate 2000 --duration 1m",
			"tracevault demo load --rate 0 --duration 30s --json",
			"tracevault demo load --rate 5000 --ledger /tmp/load.ledger",
			"tracevault demo load --config .stack/modern.toml --modern --database langfuse --duration 1m --ledger /tmp/modern.ledger"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Rate < 0 || o.Duration < 0 || o.Interval <= 0 {
				return usage(fmt.Errorf("--rate and --duration must be >= 0 and --interval > 0 (got %d, %s, %s)", o.Rate, o.Duration, o.Interval))
			}
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			o.ClickHouse = cfg.ClickHouse.Addresses
			o.User = cfg.ClickHouse.User
			o.Password = cfg.ClickHouse.Password.Reveal()
			o.PostgresDSN = cfg.Postgres.DSN.Reveal()
			o.Log = a.log
			res, err := demo.Load(cmd.Context(), o)
			if err != nil {
				return failed(err)
			}
			out := cmd.OutOrStdout()
			if a.json {
				return json.NewEncoder(out).Encode(res)
			}
			printRows(out, res.Rows)
			if o.Modern {
				fmt.Fprintf(out, "events_full rows: %d inserted, %d updated, %d deleted in place; %d OPTIMIZE, %d TRUNCATE over %s\n",
					res.Ops[demo.OpInsert], res.Ops[demo.OpUpdate], res.Ops[demo.OpErase], res.Ops[demo.OpOptimize], res.Ops[demo.OpTruncate],
					res.Duration.Round(time.Millisecond))
				if res.Ledger != "" {
					fmt.Fprintf(out, "ledger: %s\n", res.Ledger)
				}
				return nil
			}
			target := "as fast as possible"
			if res.TargetRate > 0 {
				target = fmt.Sprintf("target %.0f", res.TargetRate)
			}
			fmt.Fprintf(out, "%.0f clickhouse rows/s (%s) over %s in %d batches; traces: %d new (%d late), %d upserted, %d deleted\n",
				res.Rate, target, res.Duration.Round(time.Millisecond), res.Batches,
				res.Traces[demo.OpInsert], res.Traces["late"], res.Traces[demo.OpUpsert], res.Traces[demo.OpDelete])
			if res.Ledger != "" {
				fmt.Fprintf(out, "ledger: %s\n", res.Ledger)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Rate, "rate", 2000, "target ClickHouse rows per second, every version counted; 0 for as fast as the server takes them")
	f.DurationVar(&o.Duration, "duration", 0, "stop after this long (0: until interrupted)")
	f.DurationVar(&o.Interval, "interval", 500*time.Millisecond, "time between batches at a target rate")
	f.StringVar(&o.Ledger, "ledger", "", "file to record every acknowledged batch in, for checking snapshots against")
	f.StringVar(&o.Database, "database", "default", "ClickHouse database of the demo tables")
	f.Uint64Var(&o.Seed, "seed", 1, "random seed of the generated values (ids are new on every run)")
	f.BoolVar(&o.Modern, "modern", false, "write Langfuse v4's way (inserts, lightweight updates and deletes, OPTIMIZE, TRUNCATE) into the world of 'demo seed --modern'")
	return cmd
}

func (a *app) printSeedResult(cmd *cobra.Command, res demo.Result) error {
	out := cmd.OutOrStdout()
	if a.json {
		return json.NewEncoder(out).Encode(res)
	}
	printRows(out, res.Rows)
	for _, s := range res.Skipped {
		fmt.Fprintf(out, "%s: already holds demo data, left as it is\n", s)
	}
	fmt.Fprintf(out, "seeded in %s\n", res.Duration.Round(time.Millisecond))
	return nil
}

func printRows(out io.Writer, rows map[string]int64) {
	names := make([]string, 0, len(rows))
	for k := range rows {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(out, "%-52s %10d rows\n", k, rows[k])
	}
}
