package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/migrate"
	"github.com/tracevault/tracevault/migrate/internal/gmtest"
	chsnap "github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// scratch is one test's ClickHouse database on the stack's cluster, dropped with its lock
// node when the test ends.
type scratch struct {
	env *devstack.Env
	db  string
	dir string
	// modern puts the database on ch-modern, a single server: no cluster, so schema_migrations
	// is golang-migrate's own table there.
	modern bool
}

func newScratch(t *testing.T) *scratch {
	env := devstack.Require(t)
	s := &scratch{env: env, db: devstack.ScratchName("mig"), dir: t.TempDir()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if srv, err := chsnap.Dial(ctx, env.CHNative[0], chsnap.ConnOptions{}); err == nil {
			if err := srv.Conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", chsnap.QuoteIdent(s.db), env.CHCluster)); err != nil {
				t.Errorf("drop scratch database %s: %v", s.db, err)
			}
			srv.Close()
		}
		if zk, err := zookeeper.Connect(ctx, []string{env.ZK}, 10*time.Second, nil); err == nil {
			// ClickHouse drops a table's replication nodes but leaves the database's parent.
			shards, _, _ := zk.Children("/clickhouse/tables")
			for _, shard := range shards {
				_ = zk.Delete("/clickhouse/tables/"+shard+"/"+s.db, -1)
			}
			_ = zk.Delete(LockRoot+"/"+s.db+"/lock", -1)
			_ = zk.Delete(LockRoot+"/"+s.db, -1)
			zk.Close()
		}
	})
	return s
}

// write puts migration files in the scratch directory; DB in a body becomes the database.
func (s *scratch) write(t *testing.T, files map[string]string) {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(strings.ReplaceAll(body, "DB", s.db)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *scratch) open(t *testing.T, syncTimeout time.Duration) *Driver {
	t.Helper()
	o := Options{Addresses: s.env.CHNative, HTTPAddresses: s.env.CHHTTP, Database: s.db, Cluster: s.env.CHCluster,
		ZooKeeper: []string{s.env.ZK}, SyncTimeout: syncTimeout}
	if s.modern {
		o.Addresses, o.HTTPAddresses, o.Cluster = []string{s.env.CHModernNative}, []string{s.env.CHModernHTTP}, ""
	}
	d, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func (s *scratch) runner(t *testing.T, d *Driver) *migrate.Runner {
	t.Helper()
	ms, err := migrate.Load(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &migrate.Runner{Driver: d, Migrations: ms, Cluster: s.env.CHCluster, LockWait: time.Minute,
		Command: "tracevault migrate --target clickhouse --database " + s.db}
	if s.modern {
		r.Cluster, r.Database = "", s.db
	}
	return r
}

// replicaSchemas returns, per replica, its schema_migrations rows and every column of every
// table in the database: what must be identical on all three.
func (s *scratch) replicaSchemas(t *testing.T, d *Driver) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, srv := range d.servers {
		if err := srv.Conn.Exec(ctx, "SYSTEM SYNC REPLICA "+d.table(migrationsTable)); err != nil {
			t.Fatalf("sync schema_migrations on %s: %v", srv.Addr, err)
		}
		var b strings.Builder
		rows, err := srv.Conn.Query(ctx, "SELECT version, dirty, sequence FROM "+d.table(migrationsTable)+" ORDER BY sequence")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v int64
			var dirty uint8
			var seq uint64
			if err := rows.Scan(&v, &dirty, &seq); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%d/%d/%d ", v, dirty, seq)
		}
		rows.Close()
		rows, err = srv.Conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ? ORDER BY table, name", s.db)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var table, name, typ string
			if err := rows.Scan(&table, &name, &typ); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "| %s.%s %s ", table, name, typ)
		}
		rows.Close()
		out = append(out, b.String())
	}
	return out
}

func (s *scratch) assertReplicasAgree(t *testing.T, d *Driver, step string) {
	t.Helper()
	got := s.replicaSchemas(t, d)
	if len(got) != 3 {
		t.Fatalf("%s: %d replicas, want 3", step, len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[0] {
			t.Errorf("%s: replica %d differs from replica 1:\n%s\nvs\n%s", step, i+1, got[i], got[0])
		}
	}
}

func assertVersion(t *testing.T, d *Driver, step string, want int64) {
	t.Helper()
	v, dirty, err := d.Version(context.Background())
	if err != nil || v != want || dirty {
		t.Fatalf("%s: version %d dirty %v err %v; want %d clean", step, v, dirty, err, want)
	}
}

// clusterFiles are three migrations in Langfuse's clustered style: unqualified names, ON
// CLUSTER through the template, replicated engines with explicit paths (18.16).
var clusterFiles = map[string]string{
	"1_traces.up.sql":   "CREATE TABLE traces {{cluster}} (id String, ts DateTime) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/DB/traces', '{replica}') ORDER BY id;",
	"1_traces.down.sql": "DROP TABLE traces {{cluster}};",
	"2_tags.up.sql": `-- two statements; the ';' in this comment and in the default are not separators
ALTER TABLE traces {{cluster}} ADD COLUMN tags Array(String);
ALTER TABLE traces {{cluster}} ADD COLUMN env String DEFAULT 'a;b';`,
	"2_tags.down.sql":   "ALTER TABLE traces {{cluster}} DROP COLUMN env; ALTER TABLE traces {{cluster}} DROP COLUMN tags;",
	"3_scores.up.sql":   "CREATE TABLE scores {{cluster}} (id String, value Float64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/DB/scores', '{replica}') ORDER BY id;\nINSERT INTO scores VALUES ('s1', 0.5);",
	"3_scores.down.sql": "DROP TABLE scores {{cluster}};",
}

// TestUpDownGotoForceOnCluster: after every command all three replicas hold identical
// schemas and identical schema_migrations rows.
func TestUpDownGotoForceOnCluster(t *testing.T) {
	s := newScratch(t)
	s.write(t, clusterFiles)
	d := s.open(t, 30*time.Second)
	r := s.runner(t, d)
	ctx := context.Background()

	steps := []struct {
		name string
		do   func() error
		want int64
	}{
		{"up 2", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "up", N: 2}, nil); return err }, 2},
		{"up", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); return err }, 3},
		{"down 1", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "down", N: 1}, nil); return err }, 2},
		{"goto 1", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "goto", Version: 1}, nil); return err }, 1},
		{"goto 3", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "goto", Version: 3}, nil); return err }, 3},
		{"force 2", func() error { return r.Force(ctx, 2) }, 2},
		{"force 3", func() error { return r.Force(ctx, 3) }, 3},
		{"down", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "down"}, nil); return err }, migrate.NilVersion},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		assertVersion(t, d, st.name, st.want)
		s.assertReplicasAgree(t, d, st.name)
	}
	got := s.replicaSchemas(t, d)[0]
	if strings.Contains(got, "traces.") || strings.Contains(got, "scores.") {
		t.Errorf("after down all, tables remain: %s", got)
	}
}

// TestFailureDirtyForceUp: a failing statement leaves dirty=1 at its version with the
// statement, the server's error and the force commands; up refuses; force then up works.
// The bad statement fails on the server it is sent to: see TestMigrateCLIClickHouse for why
// it is no failing ALTER ... ON CLUSTER.
func TestFailureDirtyForceUp(t *testing.T) {
	s := newScratch(t)
	s.write(t, map[string]string{
		"1_traces.up.sql":   clusterFiles["1_traces.up.sql"],
		"1_traces.down.sql": clusterFiles["1_traces.down.sql"],
		"2_bad.up.sql":      "ALTER TABLE traces {{cluster}} ADD COLUMN tags Array(String);\nINSERT INTO traces (id, no_such_column) VALUES ('x', 1);",
	})
	d := s.open(t, 30*time.Second)
	r := s.runner(t, d)
	ctx := context.Background()
	_, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil)
	var de *migrate.DirtyError
	if !errors.As(err, &de) {
		t.Fatalf("up with a bad statement: err = %v, want a DirtyError", err)
	}
	for _, want := range []string{"INSERT INTO traces (id, no_such_column)", "no_such_column", "--database " + s.db + " force 2", "--database " + s.db + " force 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("failure message lacks %q:\n%v", want, err)
		}
	}
	if v, dirty, _ := d.Version(ctx); v != 2 || !dirty {
		t.Fatalf("after the failure: version %d dirty %v, want 2 dirty", v, dirty)
	}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); !errors.As(err, &de) || !strings.Contains(err.Error(), "dirty at version 2") {
		t.Fatalf("up on a dirty database: err = %v, want the dirty refusal", err)
	}
	// The operator undoes the half-applied step and fixes the file.
	if err := d.exec.Exec(ctx, "ALTER TABLE traces ON CLUSTER "+s.env.CHCluster+" DROP COLUMN tags", nil); err != nil {
		t.Fatal(err)
	}
	s.write(t, map[string]string{"2_bad.up.sql": "ALTER TABLE traces {{cluster}} ADD COLUMN tags Array(String);\nALTER TABLE traces {{cluster}} ADD COLUMN fixed UInt8;"})
	if err := r.Force(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil {
		t.Fatalf("up after force: %v", err)
	}
	assertVersion(t, d, "up after force", 2)
	s.assertReplicasAgree(t, d, "up after force")
}

// TestConcurrentRunnersApplyEachOnce: two runners with their own connections and ZooKeeper
// sessions start together; each migration is applied exactly once (one dirty and one clean
// row per version), and the second runner waits for the first.
func TestConcurrentRunnersApplyEachOnce(t *testing.T) {
	s := newScratch(t)
	s.write(t, map[string]string{
		"1_slow.up.sql": "SELECT sleep(1); CREATE TABLE t1 {{cluster}} (x UInt8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/DB/t1', '{replica}') ORDER BY x;",
		"2_slow.up.sql": "SELECT sleep(1); ALTER TABLE t1 {{cluster}} ADD COLUMN y UInt8;",
	})
	a, b := s.open(t, 30*time.Second), s.open(t, 30*time.Second)
	// Create the tables first, so both runners race on the migrations, not on the setup.
	if err := a.Lock(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	gmtest.RaceUp(t, s.runner(t, a), s.runner(t, b), 2)
	var rows uint64
	if err := a.first().Conn.QueryRow(context.Background(), "SELECT count() FROM "+a.table(migrationsTable)).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 4 {
		t.Errorf("schema_migrations holds %d rows, want 4 (dirty and clean for each of 2 versions)", rows)
	}
}

// TestLockWaitIsBoundedAndNamesHolder: while one migrator holds the lock, another gives up
// after --lock-wait and says who holds it.
func TestLockWaitIsBoundedAndNamesHolder(t *testing.T) {
	s := newScratch(t)
	s.write(t, map[string]string{"1_x.up.sql": "SELECT 1;"})
	a, b := s.open(t, time.Second), s.open(t, time.Second)
	ctx := context.Background()
	if err := a.Lock(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	r := s.runner(t, b)
	r.LockWait = 500 * time.Millisecond
	start := time.Now()
	_, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil)
	if !errors.Is(err, migrate.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) || time.Since(start) > 10*time.Second {
		t.Errorf("second migrator: err = %v after %s; want ErrLocked naming pid %d, promptly", err, time.Since(start), os.Getpid())
	}
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil {
		t.Errorf("after the holder released the lock: %v", err)
	}
}

// TestClusterCheckNamesLaggingReplica: a migration whose statement reaches only the first
// replica (no ON CLUSTER, not replicated) stops the run, naming a replica that lacks it.
func TestClusterCheckNamesLaggingReplica(t *testing.T) {
	s := newScratch(t)
	s.write(t, map[string]string{
		"1_local.up.sql": "CREATE TABLE only_here (x UInt8) ENGINE = TinyLog;",
		"2_next.up.sql":  "SELECT 1;",
	})
	d := s.open(t, 2*time.Second)
	r := s.runner(t, d)
	done, err := r.Migrate(context.Background(), migrate.Op{Kind: "up"}, nil)
	var ce *migrate.ClusterError
	if !errors.As(err, &ce) || len(done) != 0 || !strings.Contains(err.Error(), "replica "+s.env.CHNative[1]+" lags") || !strings.Contains(err.Error(), s.db+".only_here columns no such table") {
		t.Fatalf("up: done %d, err = %v; want a ClusterError naming replica %s and the missing table", len(done), err, s.env.CHNative[1])
	}
	assertVersion(t, d, "after the check failed", 1)
	// Drop the local table on the first replica only; the test's cleanup drops the rest.
	if err := d.exec.Exec(context.Background(), "DROP TABLE only_here", nil); err != nil {
		t.Fatal(err)
	}
}

// TestDriftReported: a file changed after it was applied is reported by status.
func TestDriftReported(t *testing.T) {
	s := newScratch(t)
	s.write(t, map[string]string{"1_traces.up.sql": clusterFiles["1_traces.up.sql"], "2_x.up.sql": "SELECT 1;"})
	d := s.open(t, 30*time.Second)
	if _, err := s.runner(t, d).Migrate(context.Background(), migrate.Op{Kind: "up"}, nil); err != nil {
		t.Fatal(err)
	}
	s.write(t, map[string]string{"2_x.up.sql": "SELECT 2;"})
	st, err := s.runner(t, d).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Drift) != 1 || st.Drift[0].Version != 2 || st.Applied[0].Drift || st.Applied[0].Recorded == "" {
		t.Errorf("status drift = %+v, applied = %+v; want drift on version 2 only, with checksums recorded", st.Drift, st.Applied)
	}
}

// TestGolangMigrateInterop: golang-migrate (the real CLI) applies 1..2, tracevault reads 2 and
// continues to 4, golang-migrate reads 4 and can go down again through tracevault's rows.
func TestGolangMigrateInterop(t *testing.T) {
	s := newScratch(t)
	bin := gmtest.Binary(t)
	// Plain SQL, as golang-migrate runs files without templates.
	s.write(t, map[string]string{
		"1_traces.up.sql":   "CREATE TABLE traces ON CLUSTER default (id String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/DB/traces', '{replica}') ORDER BY id;",
		"1_traces.down.sql": "DROP TABLE traces ON CLUSTER default;",
		"2_tags.up.sql":     "ALTER TABLE traces ON CLUSTER default ADD COLUMN tags Array(String);",
		"2_tags.down.sql":   "ALTER TABLE traces ON CLUSTER default DROP COLUMN tags;",
		"3_env.up.sql":      "ALTER TABLE traces ON CLUSTER default ADD COLUMN env String;",
		"3_env.down.sql":    "ALTER TABLE traces ON CLUSTER default DROP COLUMN env;",
		"4_scores.up.sql":   "CREATE TABLE scores ON CLUSTER default (id String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/DB/scores', '{replica}') ORDER BY id;",
		"4_scores.down.sql": "DROP TABLE scores ON CLUSTER default;",
	})
	d := s.open(t, 30*time.Second)
	// 18.16 rejects golang-migrate's own CREATE of schema_migrations: tracevault creates it.
	ctx := context.Background()
	if err := d.Lock(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("clickhouse://%s?username=default&database=%s&x-multi-statement=true&x-cluster-name=%s&x-migrations-table-engine=ReplicatedMergeTree", s.env.CHNative[0], s.db, s.env.CHCluster)
	gm := func(args ...string) string {
		t.Helper()
		out, err := gmtest.Run(t, bin, append([]string{"-path", s.dir, "-database", url}, args...)...)
		if err != nil {
			t.Fatalf("golang-migrate %v: %v\n%s", args, err, out)
		}
		return out
	}
	gm("up", "2")
	r := s.runner(t, d)
	st, err := r.Status(ctx)
	if err != nil || st.Version != 2 || st.Dirty || len(st.Pending) != 2 {
		t.Fatalf("tracevault status after golang-migrate up 2: %+v, %v; want version 2 clean, 2 pending", st, err)
	}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil {
		t.Fatalf("tracevault up after golang-migrate: %v", err)
	}
	s.assertReplicasAgree(t, d, "tracevault up")
	if out := gm("version"); out != "4" {
		t.Errorf("golang-migrate version after tracevault up = %q, want 4", out)
	}
	gm("down", "1")
	assertVersion(t, d, "golang-migrate down 1", 3)
}
