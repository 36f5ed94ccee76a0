package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/store"
)

// migrationTables are a Langfuse table in miniature (three monthly partitions, 300 rows) and
// golang-migrate's schema_migrations, with ENGINE and ON CLUSTER left for the side they are on.
const (
	mcTraces = "(id UInt64, name String, ts DateTime, event_ts DateTime) ENGINE = %s PARTITION BY toYYYYMM(ts) ORDER BY id"
	mcSchema = "(version Int64, dirty UInt8, sequence UInt64) ENGINE = %s ORDER BY sequence"
	mcRows   = "INSERT INTO %s.traces SELECT number, concat('t', toString(number)), toDateTime('2026-0%d-01 00:00:00') + number, toDateTime('2026-09-01 00:00:00') FROM system.numbers LIMIT %d"
)

// migrateOnce plans and runs one pass of a migration from cfg to the target file.
func migrateOnce(t *testing.T, cfg *config.Config, repo *store.Repository, req MigrateClusterRequest) (*ClusterMigrationPlan, *PassReport) {
	t.Helper()
	plan, rep := movePlanned(t, cfg, repo, req)
	return plan, rep.PassReport
}

func writeTarget(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "target.toml")
	// The target's own configuration, as tracevault runs after the move: its own repository.
	body = fmt.Sprintf("[storage]\nurl = %q\n", "file://"+filepath.Join(dir, "repo")) + body
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMigrateClusterToModern: the 18.16 three-replica cluster to ch-modern (replicated to one
// server, old version to new): a full pass, an incremental pass after an insert into one
// partition that moves only that partition, then a cutover that drops the partition dropped on
// the source and whose proof finds every partition's rows equal and schema_migrations at the
// same clean version.
func TestMigrateClusterToModern(t *testing.T) {
	env := devstack.RequireModern(t)
	ctx := context.Background()
	db := env.CHDatabase(t, "it_mcm")
	t.Cleanup(func() { _, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + db + " SYNC") })
	exec := func(q string) {
		t.Helper()
		if err := env.CHExec(0, q); err != nil {
			t.Fatal(err)
		}
	}
	replicated := func(table string) string {
		return fmt.Sprintf("ReplicatedMergeTree('/clickhouse/tables/{shard}/%s/%s', '{replica}')", db, table)
	}
	exec(fmt.Sprintf("CREATE TABLE %s.traces ON CLUSTER %s "+mcTraces, db, env.CHCluster,
		fmt.Sprintf("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/traces', '{replica}', event_ts)", db)))
	exec(fmt.Sprintf("CREATE TABLE %s.schema_migrations ON CLUSTER %s "+mcSchema, db, env.CHCluster, replicated("schema_migrations")))
	for month := 1; month <= 3; month++ {
		exec(fmt.Sprintf(mcRows, db, month, 100))
	}
	exec("INSERT INTO " + db + ".schema_migrations VALUES (7, 0, 1)")

	cfg := daemonConfig(t, env, t.TempDir())
	cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses, cfg.ClickHouse.Cluster = env.CHNative, env.CHHTTP, env.CHCluster
	cfg.ClickHouse.Databases = []string{db}
	repo, err := CreateRepository(ctx, cfg.Storage, quiet)
	if err != nil {
		t.Fatal(err)
	}
	req := MigrateClusterRequest{Target: writeTarget(t, fmt.Sprintf("[clickhouse]\naddresses = [%q]\nhttp_addresses = [%q]\n", env.CHModernNative, env.CHModernHTTP))}

	plan, rep := migrateOnce(t, cfg, repo, req)
	if got := plan.Tables[len(plan.Tables)-1]; got.TargetEngine != "ReplacingMergeTree" || strings.Contains(got.Create, "ON CLUSTER") {
		t.Errorf("traces on one server: %+v", got)
	}
	if rep.BehindPartitions != 4 || rep.BehindRows != 301 {
		t.Errorf("full pass moved %d partitions, %d rows; want 4, 301", rep.BehindPartitions, rep.BehindRows)
	}
	exec(fmt.Sprintf(mcRows, db, 2, 10)) // ten more rows into 202602 only
	if _, rep = migrateOnce(t, cfg, repo, req); rep.BehindPartitions != 1 || rep.BehindRows != 110 {
		t.Errorf("incremental pass moved %d partitions, %d rows; want 202602 alone, 110 rows", rep.BehindPartitions, rep.BehindRows)
	}
	exec("ALTER TABLE " + db + ".traces DROP PARTITION 202601") // replicated: gone on every replica
	req.Cutover = true
	_, rep = migrateOnce(t, cfg, repo, req)
	if rep.BehindPartitions != 0 || rep.Proof == nil || !rep.Proof.Rows || rep.Proof.Partitions != 3 || strings.Join(rep.Dropped, ",") != db+".traces/202601" {
		t.Errorf("cutover: %+v proof %+v", rep, rep.Proof)
	}
	if got, _ := env.ModernQuery("SELECT count() FROM " + db + ".traces"); got != "210" {
		t.Errorf("ch-modern holds %s rows, want 210", got)
	}
}

// TestMigrateClusterToReplicas: ch-modern (one server) to the 18.16 cluster (three replicas, ON
// CLUSTER, types both have): after the cutover every replica holds every row and the TinyLog
// schema_migrations' version; a type 18.16 lacks, and a target database that already holds
// tables without --allow-nonempty, are refused.
func TestMigrateClusterToReplicas(t *testing.T) {
	env := devstack.RequireModern(t)
	ctx := context.Background()
	db := env.CHDatabase(t, "it_mcr") // the target's database, empty; dropped with its zookeeper paths
	modern := func(q string) {
		t.Helper()
		if _, err := env.ModernQuery(q); err != nil {
			t.Fatal(err)
		}
	}
	modern("CREATE DATABASE " + db + " ENGINE = Atomic")
	t.Cleanup(func() { _, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + db + " SYNC") })
	modern(fmt.Sprintf("CREATE TABLE %s.traces "+mcTraces, db, "ReplacingMergeTree(event_ts)"))
	// golang-migrate's default on one server: TinyLog, whose rows no backup holds.
	modern("CREATE TABLE " + db + ".schema_migrations (version Int64, dirty UInt8, sequence UInt64) ENGINE = TinyLog")
	for month := 1; month <= 2; month++ {
		modern(fmt.Sprintf(mcRows, db, month, 150))
	}
	modern("INSERT INTO " + db + ".schema_migrations VALUES (3, 0, 1)")

	cfg, repo, req := modernToCluster(t, env, db, env.CHCluster)

	// A type 18.16 lacks is refused by name before anything is written.
	modern(fmt.Sprintf("CREATE TABLE %s.events (id UInt64, payload JSON) ENGINE = MergeTree ORDER BY id", db))
	if _, err := NewClusterMigration(ctx, cfg, repo, req, quiet); err == nil || !strings.Contains(err.Error(), db+".events needs JSON type") {
		t.Errorf("a JSON column into 18.16: %v, want refused", err)
	}
	modern("DROP TABLE " + db + ".events SYNC")

	if err := env.CHExec(0, "CREATE TABLE "+db+".other ON CLUSTER "+env.CHCluster+" (x UInt8) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	m, err := NewClusterMigration(ctx, cfg, repo, req, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Pass(ctx, repo); err == nil || !strings.Contains(err.Error(), "--allow-nonempty") {
		t.Errorf("a target holding tables: %v, want refused", err)
	}
	m.Close()
	req.AllowNonEmpty, req.Cutover = true, true
	plan, rep := migrateOnce(t, cfg, repo, req)
	if got := plan.Tables[len(plan.Tables)-1]; got.TargetEngine != "ReplicatedReplacingMergeTree" ||
		!strings.Contains(got.Create, "ON CLUSTER `"+env.CHCluster+"`") || !strings.Contains(got.Create, "'/clickhouse/tables/{shard}/"+db+"/traces', '{replica}', event_ts") {
		t.Errorf("traces on replicas: %+v", got)
	}
	if rep.Proof == nil || !rep.Proof.Rows || rep.Proof.Replicas != 3 || rep.BehindRows != 300 {
		t.Errorf("cutover: %+v proof %+v", rep, rep.Proof)
	}
	for i := range env.CHHTTP {
		if err := env.CHExec(i, "SELECT throwIf(count() != 300) FROM "+db+".traces"); err != nil {
			t.Errorf("replica %d: %v", i+1, err)
		}
		if err := env.CHExec(i, "SELECT throwIf(max(version) != 3) FROM "+db+".schema_migrations"); err != nil {
			t.Errorf("replica %d: %v", i+1, err)
		}
	}
}
