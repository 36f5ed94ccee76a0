package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// chData is one generated ClickHouse demo database.
type chData struct {
	w          *world
	db         string
	traces     int
	main       string              // the table the incremental step changes and the data line counts partitions of
	tables     []string            // tables holding data, sorted
	partitions map[string][]string // partition ids of each table, patch-… ids left out
	patches    int                 // active patch parts (lightweight updates and deletes not yet merged)
	replicated map[string]bool
	rows       int64
	raw        int64 // uncompressed bytes of the active parts
	stored     int64 // compressed bytes on disk of one replica
}

// pgData is one generated PostgreSQL database.
type pgData struct {
	db    string
	what  string
	bytes int64 // pg_database_size
}

// seedProgress logs demo.Seed's progress every 10 s.
func seedProgress(log *slog.Logger) func(string, int64) {
	last := time.Now()
	return func(table string, rows int64) {
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			log.Info("seeding", "table", table, "rows", rows)
		}
	}
}

// seedClickHouse makes (or finds from an earlier run, by its seed mark) the demo database with
// traces traces over o.Months monthly partitions on the 18.16 cluster, with every partition
// merged to one part on every replica, so that no merge changes parts while the steps run.
func seedClickHouse(ctx context.Context, env *devstack.Env, w *world, o options, traces int, log *slog.Logger) (*chData, error) {
	d := &chData{w: w, db: fmt.Sprintf("bench_%d_%dm", traces, o.Months), traces: traces, main: "traces"}
	err := seedDemo(ctx, d, "clickhouse", o, demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster,
		ZooKeeper: []string{env.ZK}}, nil, log)
	if err != nil {
		return nil, err
	}
	for _, t := range d.tables {
		for i := range env.CHHTTP {
			// A replicated table's merge is a replicated log entry, which SYNC REPLICA waits
			// for; a local table is merged on each replica.
			if i == 0 || !d.replicated[t] {
				if err := chHTTP(env, i).Exec(ctx, fmt.Sprintf("OPTIMIZE TABLE %s.%s FINAL", d.db, t), nil); err != nil {
					return nil, fmt.Errorf("merge %s.%s on replica %d: %w", d.db, t, i+1, err)
				}
			} else if err := syncReplica(ctx, env, i, d.db, t); err != nil {
				return nil, err
			}
		}
	}
	return d, d.list(ctx)
}

// seedDemo fills d's database with demo.Seed (opts, with d's size and o's seed and months) and
// then after, unless its seed mark says an earlier run did so with the same schema set, size
// and seed; then it lists what the database holds.
func seedDemo(ctx context.Context, d *chData, set string, o options, opts demo.Options, after func(context.Context) error, log *slog.Logger) error {
	schema, err := demo.SchemaVersion(set)
	if err != nil {
		return err
	}
	mark := fmt.Sprintf("v%d %s traces=%d months=%d seed=%d schema=%s", seedVersion, set, d.traces, o.Months, o.Seed, schema)
	seeded, err := d.w.cachedSeed(ctx, d.db, mark, o.Reseed, func(ctx context.Context) error {
		log.Info("seeding clickhouse", "database", d.db, "schema", set, "traces", d.traces)
		start := time.Now()
		opts.Database, opts.Traces, opts.Months, opts.Seed, opts.Progress = d.db, d.traces, o.Months, o.Seed, seedProgress(log)
		if _, err := demo.Seed(ctx, opts); err != nil {
			return fmt.Errorf("seed %s: %w", d.db, err)
		}
		if after != nil {
			if err := after(ctx); err != nil {
				return err
			}
		}
		log.Info("seeded", "database", d.db, "seconds", time.Since(start).Seconds())
		return nil
	})
	if err != nil {
		return err
	}
	if !seeded {
		log.Info("reusing the seeded database (-reseed seeds it again)", "database", d.db, "mark", mark)
	}
	return d.list(ctx)
}

// modernEdits are the lightweight writes made to the modern world's data after it is seeded
// and merged, as Langfuse v4's web edits and retention make them: each writes a patch part
// into every partition it touches, which the steps then back up and restore with the
// partition. A share of spans, picked by a hash of their id, is bookmarked, has its output
// edited, or is deleted (in lightweight_update mode, so as a patch part too); events_core gets
// the same edits, as Langfuse v4 makes them on both tables.
var modernEdits = []struct {
	sql      string
	settings url.Values
}{
	{sql: "UPDATE {db}.{t} SET bookmarked = true WHERE cityHash64(span_id) % 100 = 1"},
	{sql: "UPDATE {db}.{t} SET output = concat(output, ' (edited)') WHERE cityHash64(span_id) % 100 = 2"},
	{sql: "DELETE FROM {db}.{t} WHERE cityHash64(span_id) % 100 = 3", settings: url.Values{"lightweight_delete_mode": {"lightweight_update"}}},
}

// seedModern makes (or finds, by its seed mark) Langfuse v4's world on ch-modern: `demo seed
// --modern` with traces traces over o.Months monthly partitions (events_full has three spans a
// trace, events_core the same through its view), every partition merged to one part, then the
// modernEdits, whose patch parts are left unmerged.
func seedModern(ctx context.Context, env *devstack.Env, w *world, o options, traces int, log *slog.Logger) (*chData, error) {
	d := &chData{w: w, db: fmt.Sprintf("bench_modern_%d_%dm", traces, o.Months), traces: traces, main: "events_full"}
	err := seedDemo(ctx, d, "clickhouse-modern", o, demo.Options{ClickHouse: w.native, ClickHouseHTTP: w.http, Modern: true, ZooKeeper: []string{env.ZK}},
		func(ctx context.Context) error {
			h := w.h(0)
			if err := d.list(ctx); err != nil {
				return err
			}
			for _, t := range d.tables {
				if err := h.Exec(ctx, fmt.Sprintf("OPTIMIZE TABLE %s.%s FINAL", d.db, t), nil); err != nil {
					return fmt.Errorf("merge %s.%s: %w", d.db, t, err)
				}
			}
			for _, t := range []string{"events_full", "events_core"} {
				for _, e := range modernEdits {
					eh := *h
					eh.Settings = e.settings
					q := strings.NewReplacer("{db}", d.db, "{t}", t).Replace(e.sql)
					if err := eh.Exec(ctx, q, nil); err != nil {
						return fmt.Errorf("lightweight write to %s.%s: %w", d.db, t, err)
					}
				}
			}
			return nil
		}, log)
	if err != nil {
		return nil, err
	}
	if d.patches == 0 {
		return nil, fmt.Errorf("%s holds no patch parts after its lightweight updates: a background merge applied them; seed again with -reseed", d.db)
	}
	return d, nil
}

// list reads the database's tables, partitions and sizes from system.parts on replica 1.
func (d *chData) list(ctx context.Context) error {
	h := d.w.h(0)
	rows, err := chRows(ctx, h, fmt.Sprintf(`SELECT table, partition_id, sum(rows), sum(data_uncompressed_bytes), sum(data_compressed_bytes), count()
		FROM system.parts WHERE database = '%s' AND active GROUP BY table, partition_id ORDER BY table, partition_id`, d.db))
	if err != nil {
		return err
	}
	d.tables, d.partitions, d.patches, d.rows, d.raw, d.stored = nil, map[string][]string{}, 0, 0, 0, 0
	for _, r := range rows {
		if len(r) != 6 {
			return fmt.Errorf("system.parts of %s: unexpected row %q", d.db, r)
		}
		if strings.HasPrefix(r[1], "patch-") {
			// A patch part belongs to the partition it updates, which tracevault backs up
			// with it; its rows are updates, not rows of the table.
			n, _ := strconv.Atoi(r[5])
			d.patches += n
			continue
		}
		if _, ok := d.partitions[r[0]]; !ok {
			d.tables = append(d.tables, r[0])
		}
		d.partitions[r[0]] = append(d.partitions[r[0]], r[1])
		n, _ := strconv.ParseInt(r[2], 10, 64)
		raw, _ := strconv.ParseInt(r[3], 10, 64)
		stored, _ := strconv.ParseInt(r[4], 10, 64)
		d.rows, d.raw, d.stored = d.rows+n, d.raw+raw, d.stored+stored
	}
	if len(d.tables) == 0 {
		return fmt.Errorf("%s holds no data", d.db)
	}
	engines, err := chRows(ctx, h, fmt.Sprintf("SELECT name, engine FROM system.tables WHERE database = '%s'", d.db))
	if err != nil {
		return err
	}
	d.replicated = map[string]bool{}
	for _, r := range engines {
		d.replicated[r[0]] = len(r) == 2 && strings.HasPrefix(r[1], "Replicated")
	}
	return nil
}

func (d *chData) String() string {
	s := fmt.Sprintf("demo %d traces on %s: %d rows in %d tables, %d partitions of %s, %s uncompressed, %s on disk",
		d.traces, d.w.engine, d.rows, len(d.tables), len(d.partitions[d.main]), d.main, mib(d.raw), mib(d.stored))
	if d.patches > 0 {
		s += fmt.Sprintf(", %d patch parts", d.patches)
	}
	return s
}

// seedPgbench makes (or finds, by its seed mark) a database initialised by pgbench -i -s scale.
func seedPgbench(ctx context.Context, env *devstack.Env, scale int, reseed bool, log *slog.Logger) (*pgData, error) {
	d := &pgData{db: fmt.Sprintf("bench_pgbench_%d", scale), what: fmt.Sprintf("pgbench -i -s %d", scale)}
	mark := fmt.Sprintf("v%d %s", seedVersion, d.what)
	fresh, err := ensurePG(ctx, env, d.db, mark, reseed, log)
	if err != nil {
		return nil, err
	}
	if fresh {
		log.Info("seeding postgres", "database", d.db, "pgbench scale", scale)
		if _, _, err := command(ctx, nil, "pgbench", "-i", "-q", "-s", strconv.Itoa(scale), pgURL(env, d.db)); err != nil {
			_ = dropPG(context.Background(), env, d.db)
			return nil, err
		}
		if err := settlePG(ctx, env, d.db); err != nil {
			return nil, err
		}
		if err := markPG(ctx, env, d.db, mark); err != nil {
			return nil, err
		}
	}
	return d, d.size(ctx, env)
}

// seedPGDemo makes (or finds, by its seed mark) a database holding the demo's PostgreSQL
// schema and rows.
func seedPGDemo(ctx context.Context, env *devstack.Env, seed uint64, reseed bool, log *slog.Logger) (*pgData, error) {
	d := &pgData{db: "bench_pgdemo", what: "demo (Langfuse's PostgreSQL schema)"}
	schema, err := demo.SchemaVersion("postgres")
	if err != nil {
		return nil, err
	}
	mark := fmt.Sprintf("v%d demo seed=%d schema=%s", seedVersion, seed, schema)
	fresh, err := ensurePG(ctx, env, d.db, mark, reseed, log)
	if err != nil {
		return nil, err
	}
	if fresh {
		log.Info("seeding postgres", "database", d.db)
		if _, err := demo.Seed(ctx, demo.Options{PostgresDSN: pgURL(env, d.db), Seed: seed}); err != nil {
			_ = dropPG(context.Background(), env, d.db)
			return nil, fmt.Errorf("seed %s: %w", d.db, err)
		}
		if err := settlePG(ctx, env, d.db); err != nil {
			return nil, err
		}
		if err := markPG(ctx, env, d.db, mark); err != nil {
			return nil, err
		}
	}
	return d, d.size(ctx, env)
}

func (d *pgData) size(ctx context.Context, env *devstack.Env) error {
	return withPG(ctx, env, d.db, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&d.bytes)
	})
}

func (d *pgData) String() string { return fmt.Sprintf("%s: %s", d.what, mib(d.bytes)) }

// settlePG sets hint bits and the visibility map once, so that neither side of a step pays
// for them, and flushes the data.
func settlePG(ctx context.Context, env *devstack.Env, db string) error {
	return withPG(ctx, env, db, func(c *pgx.Conn) error {
		for _, q := range []string{"VACUUM ANALYZE", "CHECKPOINT"} {
			if _, err := c.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s in %s: %w", q, db, err)
			}
		}
		return nil
	})
}

// ensurePG creates db unless one filled with what mark names is there from an earlier run
// (marked by markPG once filled; any other is dropped) and reseed is false; it reports whether
// db must be filled.
func ensurePG(ctx context.Context, env *devstack.Env, db, mark string, reseed bool, log *slog.Logger) (bool, error) {
	var exists, complete bool
	err := withPG(ctx, env, "", func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT count(*) > 0, coalesce(bool_or(shobj_description(oid, 'pg_database') = $2), false)
			FROM pg_database WHERE datname = $1`, db, pgMarkPrefix+mark).Scan(&exists, &complete)
	})
	if err != nil {
		return false, err
	}
	if complete && !reseed {
		log.Info("reusing the seeded database (-reseed seeds it again)", "database", db, "mark", mark)
		return false, nil
	}
	if exists {
		if err := dropPG(ctx, env, db); err != nil {
			return false, err
		}
	}
	return true, createPG(ctx, env, db)
}

// pgMarkPrefix starts the comment markPG puts on a database it filled.
const pgMarkPrefix = "tracevault bench seed: "

// markPG records that db is filled with what mark names, for ensurePG.
func markPG(ctx context.Context, env *devstack.Env, db, mark string) error {
	return withPG(ctx, env, "", func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, fmt.Sprintf("COMMENT ON DATABASE %s IS %s", pgx.Identifier{db}.Sanitize(), quotePG(pgMarkPrefix+mark)))
		if err != nil {
			return fmt.Errorf("record the seed mark of %s: %w", db, err)
		}
		return nil
	})
}

// quotePG is s as a PostgreSQL string literal (COMMENT takes no parameters).
func quotePG(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func dropPG(ctx context.Context, env *devstack.Env, db string) error {
	return withPG(ctx, env, "", func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
		if err != nil {
			return fmt.Errorf("drop database %s: %w", db, err)
		}
		return nil
	})
}

func createPG(ctx context.Context, env *devstack.Env, db string) error {
	return withPG(ctx, env, "", func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
		return err
	})
}

// withPG runs fn on a connection to db ("" for the stack's own database).
func withPG(ctx context.Context, env *devstack.Env, db string, fn func(*pgx.Conn) error) error {
	dsn := env.PGDSN
	if db != "" {
		dsn = pgURL(env, db)
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to postgres %s: %w", db, err)
	}
	defer c.Close(context.Background())
	return fn(c)
}

// pgURL is the stack's DSN pointed at database db.
func pgURL(env *devstack.Env, db string) string {
	u, err := url.Parse(env.PGDSN)
	if err != nil {
		return env.PGDSN
	}
	u.Path = "/" + db
	return u.String()
}

func chHTTP(env *devstack.Env, replica int) *clickhouse.HTTP {
	return &clickhouse.HTTP{Addr: env.CHHTTP[replica], User: "default"}
}

func chRows(ctx context.Context, h *clickhouse.HTTP, q string) ([][]string, error) {
	rc, err := h.Query(ctx, q+" FORMAT TabSeparated", nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer rc.Close()
	var out [][]string
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		out = append(out, strings.Split(sc.Text(), "\t"))
	}
	return out, sc.Err()
}

func chInt(ctx context.Context, h *clickhouse.HTTP, q string) (int64, error) {
	rc, err := h.Query(ctx, q, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", q, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func syncReplica(ctx context.Context, env *devstack.Env, replica int, db, table string) error {
	if err := chHTTP(env, replica).Exec(ctx, fmt.Sprintf("SYSTEM SYNC REPLICA %s.%s", db, table), nil); err != nil {
		return fmt.Errorf("sync replica %d of %s.%s: %w", replica+1, db, table, err)
	}
	return nil
}

// copySchema creates dst on every replica with src's data tables (no views), each replicated
// table under its own ZooKeeper path, for a baseline to insert into.
func copySchema(ctx context.Context, d *chData, dst string) error {
	if err := d.w.drop(ctx, dst); err != nil {
		return err
	}
	h := d.w.h(0)
	var ddl []string
	for _, t := range d.tables {
		q, err := showCreate(ctx, h, d.db, t)
		if err != nil {
			return err
		}
		q = strings.Replace(q, "CREATE TABLE "+d.db+".", "CREATE TABLE "+dst+".", 1)
		q = strings.ReplaceAll(q, "/"+d.db+"/", "/"+dst+"/")
		ddl = append(ddl, q)
	}
	for i := range d.w.http {
		r := d.w.h(i)
		if err := r.Exec(ctx, "CREATE DATABASE "+dst, nil); err != nil {
			return fmt.Errorf("create %s on replica %d: %w", dst, i+1, err)
		}
		for _, q := range ddl {
			if err := r.Exec(ctx, q, nil); err != nil {
				return fmt.Errorf("create a table of %s on replica %d: %w\n%s", dst, i+1, err, q)
			}
		}
	}
	return nil
}

// showCreate is the statement that creates db.table, as replica h has it.
func showCreate(ctx context.Context, h *clickhouse.HTTP, db, table string) (string, error) {
	rows, err := chRows(ctx, h, fmt.Sprintf("SHOW CREATE TABLE %s.%s", db, table))
	if err != nil || len(rows) != 1 {
		return "", fmt.Errorf("schema of %s.%s: %v", db, table, err)
	}
	// TabSeparated escapes the statement's newlines and quotes.
	return strings.NewReplacer(`\n`, "\n", `\'`, "'", `\\`, `\`).Replace(rows[0][0]), nil
}

// changePartition changes one partition of db.table and nothing else: a copy of one of its rows
// is attached from a staging table (an attach fires no materialized view, where an INSERT
// would also change the views' targets), and the partition is merged to one part on every
// replica, so that no merge is left to change it, or another partition, afterwards.
func changePartition(ctx context.Context, env *devstack.Env, d *chData, table, partition string) error {
	h := chHTTP(env, 0)
	create, err := showCreate(ctx, h, d.db, table)
	if err != nil {
		return err
	}
	stage := "bench_late_" + table
	ddl, err := clickhouse.RewriteCreate(create, clickhouse.Rewrite{Database: d.db, Table: stage, Staging: true})
	if err != nil {
		return fmt.Errorf("staging table for %s.%s: %w", d.db, table, err)
	}
	src, dst := d.db+"."+table, d.db+"."+stage
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + dst,
		ddl,
		fmt.Sprintf("INSERT INTO %s SELECT * FROM %s WHERE %s LIMIT 1", dst, src, clickhouse.InPartition(clickhouse.Partition{ID: partition})),
		fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION ID '%s' FROM %s", src, partition, dst),
		"DROP TABLE " + dst,
		fmt.Sprintf("OPTIMIZE TABLE %s PARTITION ID '%s' FINAL", src, partition),
	} {
		if err := h.Exec(ctx, q, nil); err != nil {
			return fmt.Errorf("change partition %s of %s: %w", partition, src, err)
		}
	}
	for i := 1; i < len(env.CHHTTP); i++ {
		if err := syncReplica(ctx, env, i, d.db, table); err != nil {
			return err
		}
	}
	return nil
}

// clearShadow removes every frozen copy in replica 1's shadow directory (the stack is this
// bench's own, so no other tool's freezes are there).
func clearShadow(env *devstack.Env) error {
	dir := filepath.Join(env.CHDataDirs[0], "shadow")
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// databaseDDL is what creates db's tables as replica h has them: the tables first, then the
// views, which read from them or write into them.
func databaseDDL(ctx context.Context, h *clickhouse.HTTP, db string) ([]string, error) {
	rows, err := chRows(ctx, h, fmt.Sprintf("SELECT name FROM system.tables WHERE database = '%s' ORDER BY engine LIKE '%%View', name", db))
	if err != nil {
		return nil, err
	}
	var ddl []string
	for _, r := range rows {
		q, err := showCreate(ctx, h, db, r[0])
		if err != nil {
			return nil, err
		}
		ddl = append(ddl, q)
	}
	return ddl, nil
}

// replicaState is what one replica holds of d's replicated tables: per table its active parts
// and rows, or why it is not whole (missing, read-only, an expired session, a peer inactive,
// entries left in its queue).
func replicaState(ctx context.Context, env *devstack.Env, i int, d *chData) (map[string]string, []string, error) {
	h := chHTTP(env, i)
	rows, err := chRows(ctx, h, fmt.Sprintf(`SELECT table, is_readonly, is_session_expired, active_replicas, total_replicas, queue_size
		FROM system.replicas WHERE database = '%s'`, d.db))
	if err != nil {
		return nil, nil, err
	}
	var problems []string
	seen := map[string]bool{}
	for _, r := range rows {
		if len(r) != 6 {
			return nil, nil, fmt.Errorf("system.replicas on replica %d: unexpected row %q", i+1, r)
		}
		seen[r[0]] = true
		if r[1] != "0" || r[2] != "0" || r[3] != strconv.Itoa(len(env.CHNative)) || r[4] != r[3] || r[5] != "0" {
			problems = append(problems, fmt.Sprintf("%s on replica %d: read-only %s, session expired %s, %s of %s replicas active, %s entries queued", r[0], i+1, r[1], r[2], r[3], r[4], r[5]))
		}
	}
	for _, t := range d.tables {
		if d.replicated[t] && !seen[t] {
			problems = append(problems, fmt.Sprintf("%s missing on replica %d", t, i+1))
		}
	}
	parts, err := chRows(ctx, h, fmt.Sprintf(`SELECT table, arrayStringConcat(groupArray(name), ' '), sum(rows)
		FROM (SELECT table, name, rows FROM system.parts WHERE database = '%s' AND active ORDER BY table, name) GROUP BY table`, d.db))
	if err != nil {
		return nil, nil, err
	}
	state := map[string]string{}
	for _, r := range parts {
		if len(r) == 3 && d.replicated[r[0]] {
			state[r[0]] = r[2] + " rows in " + r[1]
		}
	}
	return state, problems, nil
}

// caughtUp waits until replica i's queue is empty and its replicated tables hold replica 1's parts.
func caughtUp(ctx context.Context, env *devstack.Env, i int, d *chData) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	for {
		want, _, err := replicaState(ctx, env, 0, d)
		if err != nil {
			return err
		}
		got, problems, err := replicaState(ctx, env, i, d)
		if err != nil {
			return err
		}
		diff := stateDiff(want, got)
		if len(problems) == 0 && diff == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica %d has not caught up: %s %s", i+1, strings.Join(problems, "; "), diff)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// clusterWhole checks that every replica is active with an empty queue and holds the same parts
// and rows of every replicated table of d, waiting up to two minutes for replication to settle.
func clusterWhole(ctx context.Context, env *devstack.Env, d *chData) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var msg []string
		first, _, err := replicaState(ctx, env, 0, d)
		if err != nil {
			return err
		}
		for i := range env.CHNative {
			got, problems, err := replicaState(ctx, env, i, d)
			if err != nil {
				return err
			}
			msg = append(msg, problems...)
			if diff := stateDiff(first, got); diff != "" {
				msg = append(msg, fmt.Sprintf("replica %d differs from replica 1: %s", i+1, diff))
			}
		}
		if len(msg) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster is not whole: %s", strings.Join(msg, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// stateDiff names the tables whose parts differ between two replicaStates.
func stateDiff(want, got map[string]string) string {
	var diff []string
	for t, w := range want {
		if got[t] != w {
			diff = append(diff, fmt.Sprintf("%s: %q, want %q", t, got[t], w))
		}
	}
	for t := range got {
		if _, ok := want[t]; !ok {
			diff = append(diff, t+": not on the first replica")
		}
	}
	sort.Strings(diff)
	return strings.Join(diff, "; ")
}
