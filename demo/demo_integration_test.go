package demo_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
)

func openCH(t testing.TB, addr string) driver.Conn {
	t.Helper()
	c, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Database: "default", Username: "default"}})
	if err != nil {
		t.Fatalf("open clickhouse %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// seedScratch seeds a fresh ClickHouse database and PostgreSQL database and drops both after.
func seedScratch(t testing.TB, env *devstack.Env, traces int) (demo.Options, demo.Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	opts := demo.Options{
		ClickHouse:     env.CHNative,
		ClickHouseHTTP: env.CHHTTP,
		Cluster:        env.CHCluster,
		Database:       devstack.ScratchName("it_demo"),
		PostgresDSN:    env.PGDatabase(t, "it_demo"),
		Traces:         traces,
		Seed:           7,
	}
	t.Cleanup(func() { dropScratchCH(t, env, opts.Database) })
	res, err := demo.Seed(ctx, opts)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	return opts, res
}

// TestSeedReplicatesToEveryReplica is the foundation's acceptance check: after a seed, all three
// replicas hold the same rows in every demo table, each replicated table has three active
// replicas, and PostgreSQL holds the operational tables.
func TestSeedReplicatesToEveryReplica(t *testing.T) {
	env := devstack.Require(t)
	ctx := context.Background()
	opts, res := seedScratch(t, env, 20000)
	if got := res.Rows["clickhouse:traces"]; got != 20000 {
		t.Fatalf("seeded %d traces, want 20000", got)
	}

	tables := append([]string{}, demo.ReplicatedTables...)
	counts := make([]map[string]uint64, len(env.CHNative))
	for i, addr := range env.CHNative {
		c := openCH(t, addr)
		counts[i] = map[string]uint64{}
		for _, tbl := range tables {
			var n uint64
			if err := c.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.%s", opts.Database, tbl)).Scan(&n); err != nil {
				t.Fatalf("count %s on %s: %v", tbl, addr, err)
			}
			counts[i][tbl] = n
		}
		var n uint64
		if err := c.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.event_log", opts.Database)).Scan(&n); err != nil || n == 0 {
			t.Errorf("event_log on %s: %d rows, %v; every replica should have its own rows", addr, n, err)
		}
		rows, err := c.Query(ctx, "SELECT table, active_replicas, total_replicas FROM system.replicas WHERE database = ?", opts.Database)
		if err != nil {
			t.Fatalf("system.replicas on %s: %v", addr, err)
		}
		seen := 0
		for rows.Next() {
			var table string
			var active, total uint8
			if err := rows.Scan(&table, &active, &total); err != nil {
				t.Fatal(err)
			}
			seen++
			if active != 3 || total != 3 {
				t.Errorf("%s on %s: %d active of %d replicas, want 3 of 3", table, addr, active, total)
			}
		}
		rows.Close()
		if seen != len(demo.ReplicatedTables) {
			t.Errorf("system.replicas on %s lists %d tables, want %d", addr, seen, len(demo.ReplicatedTables))
		}
	}
	for _, tbl := range tables {
		for i := 1; i < len(counts); i++ {
			if counts[i][tbl] != counts[0][tbl] {
				t.Errorf("%s: replica %d has %d rows, replica 1 has %d", tbl, i+1, counts[i][tbl], counts[0][tbl])
			}
		}
	}
	if counts[0]["observations"] < 20000 || counts[0]["project_environments"] == 0 {
		t.Errorf("implausible counts on replica 1: %v", counts[0])
	}
	var partitions uint64
	c := openCH(t, env.CHNative[0])
	if err := c.QueryRow(ctx, "SELECT uniqExact(partition) FROM system.parts WHERE database = ? AND table = 'traces' AND active", opts.Database).Scan(&partitions); err != nil || partitions < 6 {
		t.Errorf("traces spread over %d partitions (%v), want at least 6", partitions, err)
	}

	pg, err := pgx.Connect(ctx, opts.PostgresDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(ctx)
	for _, tbl := range []string{"users", "organizations", "organization_memberships", "projects", "api_keys", "prompts", "score_configs", "audit_logs"} {
		var n int64
		if err := pg.QueryRow(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil || n == 0 {
			t.Errorf("postgres %s: %d rows, %v", tbl, n, err)
		}
	}
}

func TestSeedTwiceSkips(t *testing.T) {
	env := devstack.Require(t)
	opts, _ := seedScratch(t, env, 500)
	res, err := demo.Seed(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 2 || res.Rows["clickhouse:traces"] != 0 {
		t.Errorf("second seed: skipped %v, rows %v; want both skipped, nothing inserted", res.Skipped, res.Rows)
	}
}

// BenchmarkSeed reports seeding throughput in traces per second (each trace brings 1-5
// observations and 0-3 scores); the target is 1M traces in under 2 minutes.
func BenchmarkSeed(b *testing.B) {
	env := devstack.Require(b)
	const traces = 200_000
	for i := 0; i < b.N; i++ {
		start := time.Now()
		seedScratch(b, env, traces)
		b.ReportMetric(float64(traces)/time.Since(start).Seconds(), "traces/s")
	}
}
