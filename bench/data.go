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
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/deploy/demo"
	"github.com/tracevault/tracevault/deploy/stack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// chData is one generated ClickHouse demo database.
type chData struct {
	db         string
	traces     int
	tables     []string            // tables holding data, sorted
	partitions map[string][]string // partition ids of each table
	replicated map[string]bool
	feeds      map[string][]string // table → the tables its materialized views insert into
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

// seedClickHouse makes (or finds from an earlier run) the demo database with traces traces
// over o.Months monthly partitions, with every partition merged to one part on every replica,
// so that no merge changes parts while the steps run.
func seedClickHouse(ctx context.Context, env *stack.Env, o options, traces int, log *slog.Logger) (*chData, error) {
	d := &chData{db: fmt.Sprintf("bench_%d_%dm", traces, o.Months), traces: traces}
	h := chHTTP(env, 0)
	n, err := chInt(ctx, h, fmt.Sprintf("SELECT count() FROM system.tables WHERE database = '%s' AND name = 'traces'", d.db))
	if err != nil {
		return nil, err
	}
	if n == 1 {
		if n, err = chInt(ctx, h, fmt.Sprintf("SELECT count() FROM %s.traces", d.db)); err != nil {
			return nil, err
		}
	}
	if n == 0 {
		// An interrupted seed leaves a part of the rows: start again.
		if err := dropCH(ctx, env, d.db); err != nil {
			return nil, err
		}
		log.Info("seeding clickhouse", "database", d.db, "traces", traces)
		start, last := time.Now(), time.Now()
		_, err := demo.Seed(ctx, demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster,
			Database: d.db, ZooKeeper: []string{env.ZK}, Traces: traces, Months: o.Months,
			Progress: func(table string, rows int64) {
				if time.Since(last) > 10*time.Second {
					last = time.Now()
					log.Info("seeding", "table", table, "rows", rows)
				}
			}})
		if err != nil {
			return nil, fmt.Errorf("seed %s: %w", d.db, err)
		}
		log.Info("seeded", "database", d.db, "seconds", time.Since(start).Seconds())
	}
	if err := d.list(ctx, h); err != nil {
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
	return d, d.list(ctx, h)
}

// list reads the database's tables, partitions and sizes from system.parts on replica 1.
func (d *chData) list(ctx context.Context, h *clickhouse.HTTP) error {
	rows, err := chRows(ctx, h, fmt.Sprintf(`SELECT table, partition_id, sum(rows), sum(data_uncompressed_bytes), sum(data_compressed_bytes)
		FROM system.parts WHERE database = '%s' AND active GROUP BY table, partition_id ORDER BY table, partition_id`, d.db))
	if err != nil {
		return err
	}
	d.tables, d.partitions, d.rows, d.raw, d.stored = nil, map[string][]string{}, 0, 0, 0
	for _, r := range rows {
		if len(r) != 5 {
			return fmt.Errorf("system.parts of %s: unexpected row %q", d.db, r)
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
	d.replicated, d.feeds = map[string]bool{}, map[string][]string{}
	for _, r := range engines {
		d.replicated[r[0]] = len(r) == 2 && strings.HasPrefix(r[1], "Replicated")
		if len(r) == 2 && r[1] == "MaterializedView" {
			q, err := chRows(ctx, h, fmt.Sprintf("SHOW CREATE TABLE %s.%s", d.db, r[0]))
			if err != nil || len(q) != 1 {
				return fmt.Errorf("definition of %s.%s: %v", d.db, r[0], err)
			}
			// "... TO db.target (...) AS SELECT ... FROM db.source ...": an insert into the
			// source changes the target too.
			to, from := wordAfter(q[0][0], " TO "+d.db+"."), wordAfter(q[0][0], " FROM "+d.db+".")
			if to != "" && from != "" {
				d.feeds[from] = append(d.feeds[from], to)
			}
		}
	}
	return nil
}

func wordAfter(s, prefix string) string {
	_, rest, ok := strings.Cut(s, prefix)
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, " (\\"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

func (d *chData) String() string {
	return fmt.Sprintf("demo %d traces: %d rows in %d tables, %d partitions of traces, %s uncompressed, %s on disk",
		d.traces, d.rows, len(d.tables), len(d.partitions["traces"]), mib(d.raw), mib(d.stored))
}

// seedPgbench makes (or finds) a database initialised by pgbench -i -s scale.
func seedPgbench(ctx context.Context, env *stack.Env, scale int, log *slog.Logger) (*pgData, error) {
	d := &pgData{db: fmt.Sprintf("bench_pgbench_%d", scale), what: fmt.Sprintf("pgbench -i -s %d", scale)}
	fresh, err := ensurePG(ctx, env, d.db)
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
		if err := markPG(ctx, env, d.db); err != nil {
			return nil, err
		}
	}
	return d, d.size(ctx, env)
}

// seedPGDemo makes (or finds) a database holding the demo's PostgreSQL schema and rows.
func seedPGDemo(ctx context.Context, env *stack.Env, log *slog.Logger) (*pgData, error) {
	d := &pgData{db: "bench_pgdemo", what: "demo (Langfuse's PostgreSQL schema)"}
	fresh, err := ensurePG(ctx, env, d.db)
	if err != nil {
		return nil, err
	}
	if fresh {
		log.Info("seeding postgres", "database", d.db)
		if _, err := demo.Seed(ctx, demo.Options{PostgresDSN: pgURL(env, d.db)}); err != nil {
			_ = dropPG(context.Background(), env, d.db)
			return nil, fmt.Errorf("seed %s: %w", d.db, err)
		}
		if err := settlePG(ctx, env, d.db); err != nil {
			return nil, err
		}
		if err := markPG(ctx, env, d.db); err != nil {
			return nil, err
		}
	}
	return d, d.size(ctx, env)
}

func (d *pgData) size(ctx context.Context, env *stack.Env) error {
	return withPG(ctx, env, d.db, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&d.bytes)
	})
}

func (d *pgData) String() string { return fmt.Sprintf("%s: %s", d.what, mib(d.bytes)) }

// settlePG sets hint bits and the visibility map once, so that neither side of a step pays
// for them, and flushes the data.
func settlePG(ctx context.Context, env *stack.Env, db string) error {
	return withPG(ctx, env, db, func(c *pgx.Conn) error {
		for _, q := range []string{"VACUUM ANALYZE", "CHECKPOINT"} {
			if _, err := c.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s in %s: %w", q, db, err)
			}
		}
		return nil
	})
}

// ensurePG creates db unless a complete one is there from an earlier run (marked by
// markPG once filled; a partly filled one is dropped); it reports whether db must be filled.
func ensurePG(ctx context.Context, env *stack.Env, db string) (bool, error) {
	var exists, complete bool
	err := withPG(ctx, env, "", func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT count(*) > 0, coalesce(bool_or(shobj_description(oid, 'pg_database') = $2), false)
			FROM pg_database WHERE datname = $1`, db, completeMark).Scan(&exists, &complete)
	})
	if err != nil || complete {
		return false, err
	}
	if exists {
		if err := dropPG(ctx, env, db); err != nil {
			return false, err
		}
	}
	return true, createPG(ctx, env, db)
}

const completeMark = "tracevault bench: complete"

// markPG records that db is filled, for ensurePG.
func markPG(ctx context.Context, env *stack.Env, db string) error {
	return withPG(ctx, env, "", func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, fmt.Sprintf("COMMENT ON DATABASE %s IS '%s'", pgx.Identifier{db}.Sanitize(), completeMark))
		return err
	})
}

func dropPG(ctx context.Context, env *stack.Env, db string) error {
	return withPG(ctx, env, "", func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
		if err != nil {
			return fmt.Errorf("drop database %s: %w", db, err)
		}
		return nil
	})
}

func createPG(ctx context.Context, env *stack.Env, db string) error {
	return withPG(ctx, env, "", func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
		return err
	})
}

// withPG runs fn on a connection to db ("" for the stack's own database).
func withPG(ctx context.Context, env *stack.Env, db string, fn func(*pgx.Conn) error) error {
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
func pgURL(env *stack.Env, db string) string {
	u, err := url.Parse(env.PGDSN)
	if err != nil {
		return env.PGDSN
	}
	u.Path = "/" + db
	return u.String()
}

func chHTTP(env *stack.Env, replica int) *clickhouse.HTTP {
	return &clickhouse.HTTP{Addr: env.CHHTTP[replica], User: "default"}
}

// chPort is replica i's native port, for clickhouse-client.
func chPort(env *stack.Env, i int) string {
	a := env.CHNative[i]
	return a[strings.LastIndexByte(a, ':')+1:]
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

// dropCH drops db on every replica; the replicated tables leave ZooKeeper with the last one.
func dropCH(ctx context.Context, env *stack.Env, db string) error {
	for i := range env.CHHTTP {
		if err := chHTTP(env, i).Exec(ctx, "DROP DATABASE IF EXISTS "+db, nil); err != nil {
			return fmt.Errorf("drop %s on replica %d: %w", db, i+1, err)
		}
	}
	return nil
}

func syncReplica(ctx context.Context, env *stack.Env, replica int, db, table string) error {
	if err := chHTTP(env, replica).Exec(ctx, fmt.Sprintf("SYSTEM SYNC REPLICA %s.%s", db, table), nil); err != nil {
		return fmt.Errorf("sync replica %d of %s.%s: %w", replica+1, db, table, err)
	}
	return nil
}

// copySchema creates dst on every replica with src's data tables (no views), each replicated
// table under its own ZooKeeper path, for a baseline to insert into.
func copySchema(ctx context.Context, env *stack.Env, d *chData, dst string) error {
	if err := dropCH(ctx, env, dst); err != nil {
		return err
	}
	h := chHTTP(env, 0)
	var ddl []string
	for _, t := range d.tables {
		rows, err := chRows(ctx, h, fmt.Sprintf("SHOW CREATE TABLE %s.%s", d.db, t))
		if err != nil || len(rows) != 1 {
			return fmt.Errorf("schema of %s.%s: %v", d.db, t, err)
		}
		// TabSeparated escapes the statement's newlines and quotes.
		q := strings.NewReplacer(`\n`, "\n", `\'`, "'", `\\`, `\`).Replace(rows[0][0])
		q = strings.Replace(q, "CREATE TABLE "+d.db+".", "CREATE TABLE "+dst+".", 1)
		q = strings.ReplaceAll(q, "/"+d.db+"/", "/"+dst+"/")
		ddl = append(ddl, q)
	}
	for i := range env.CHHTTP {
		r := chHTTP(env, i)
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

// clearShadow removes every frozen copy in replica 1's shadow directory (the stack is this
// bench's own, so no other tool's freezes are there).
func clearShadow(env *stack.Env) error {
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
