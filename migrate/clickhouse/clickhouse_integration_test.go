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

// Dir, Write, Open and Runner are the scratch as the conformance suite sees it (gmtest.Scratch).
func (s *scratch) Dir() string                                 { return s.dir }
func (s *scratch) Write(t *testing.T, files map[string]string) { s.write(t, files) }
func (s *scratch) Open(t *testing.T) migrate.Driver            { return s.open(t, 30*time.Second) }
func (s *scratch) Runner(t *testing.T, d migrate.Driver) *migrate.Runner {
	return s.runner(t, d.(*Driver))
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

// TestConformance runs the suite every migration driver passes (gmtest.Conformance) on the
// stack's cluster: after every command all three replicas hold identical schemas and identical
// schema_migrations rows.
func TestConformance(t *testing.T) {
	gmtest.Conformance(t, gmtest.Target{
		Scratch: func(t *testing.T) gmtest.Scratch { return newScratch(t) },
		Files:   clusterFiles,
		Check: func(t *testing.T, s gmtest.Scratch, d migrate.Driver, step string) {
			s.(*scratch).assertReplicasAgree(t, d.(*Driver), step)
			if step != "down" && step != "down 2" {
				return
			}
			got := s.(*scratch).replicaSchemas(t, d.(*Driver))[0]
			if strings.Contains(got, "traces.") || strings.Contains(got, "scores.") {
				t.Errorf("after down all, tables remain: %s", got)
			}
		},
		// The bad statement fails on the server it is sent to: see TestMigrateCLIClickHouse for
		// why it is no failing ALTER ... ON CLUSTER. Its ALTER before it stays applied.
		Failure: gmtest.Failure{
			Files: map[string]string{
				"1_traces.up.sql":   clusterFiles["1_traces.up.sql"],
				"1_traces.down.sql": clusterFiles["1_traces.down.sql"],
				"2_bad.up.sql":      "ALTER TABLE traces {{cluster}} ADD COLUMN tags Array(String);\nINSERT INTO traces (id, no_such_column) VALUES ('x', 1);",
			},
			Message: []string{"INSERT INTO traces (id, no_such_column)", "no_such_column"},
			Undo: func(t *testing.T, s gmtest.Scratch, d migrate.Driver) {
				if err := d.(*Driver).exec.Exec(context.Background(), "ALTER TABLE traces ON CLUSTER "+s.(*scratch).env.CHCluster+" DROP COLUMN tags", nil); err != nil {
					t.Fatal(err)
				}
			},
			Fixed: map[string]string{"2_bad.up.sql": "ALTER TABLE traces {{cluster}} ADD COLUMN tags Array(String);\nALTER TABLE traces {{cluster}} ADD COLUMN fixed UInt8;"},
			Check: func(t *testing.T, s gmtest.Scratch, d migrate.Driver, step string) {
				if step == "fixed" {
					s.(*scratch).assertReplicasAgree(t, d.(*Driver), "up after force")
				}
			},
		},
		// Each runner has its own connections and ZooKeeper session; each migration is applied
		// exactly once (one dirty and one clean row per version).
		Race: gmtest.Race{
			Files: map[string]string{
				"1_slow.up.sql": "SELECT sleep(1); CREATE TABLE t1 {{cluster}} (x UInt8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/DB/t1', '{replica}') ORDER BY x;",
				"2_slow.up.sql": "SELECT sleep(1); ALTER TABLE t1 {{cluster}} ADD COLUMN y UInt8;",
			},
			// Create the tables first, so both runners race on the migrations, not on the setup.
			Setup: func(t *testing.T, a migrate.Driver) {
				if err := a.Lock(context.Background(), time.Second); err != nil {
					t.Fatal(err)
				}
				if err := a.Unlock(context.Background()); err != nil {
					t.Fatal(err)
				}
			},
			Check: func(t *testing.T, d migrate.Driver) {
				a := d.(*Driver)
				var rows uint64
				if err := a.first().Conn.QueryRow(context.Background(), "SELECT count() FROM "+a.table(migrationsTable)).Scan(&rows); err != nil {
					t.Fatal(err)
				}
				if rows != 4 {
					t.Errorf("schema_migrations holds %d rows, want 4 (dirty and clean for each of 2 versions)", rows)
				}
			},
		},
		// Plain SQL, as golang-migrate runs files without templates.
		Interop: gmtest.Interop{
			Files: map[string]string{
				"1_traces.up.sql":   "CREATE TABLE traces ON CLUSTER default (id String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/DB/traces', '{replica}') ORDER BY id;",
				"1_traces.down.sql": "DROP TABLE traces ON CLUSTER default;",
				"2_tags.up.sql":     "ALTER TABLE traces ON CLUSTER default ADD COLUMN tags Array(String);",
				"2_tags.down.sql":   "ALTER TABLE traces ON CLUSTER default DROP COLUMN tags;",
				"3_env.up.sql":      "ALTER TABLE traces ON CLUSTER default ADD COLUMN env String;",
				"3_env.down.sql":    "ALTER TABLE traces ON CLUSTER default DROP COLUMN env;",
				"4_scores.up.sql":   "CREATE TABLE scores ON CLUSTER default (id String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/DB/scores', '{replica}') ORDER BY id;",
				"4_scores.down.sql": "DROP TABLE scores ON CLUSTER default;",
			},
			// 18.16 rejects golang-migrate's own CREATE of schema_migrations: tracevault creates it.
			Prepare: func(t *testing.T, s gmtest.Scratch) {
				d := s.Open(t)
				ctx := context.Background()
				if err := d.Lock(ctx, time.Second); err != nil {
					t.Fatal(err)
				}
				if err := d.Unlock(ctx); err != nil {
					t.Fatal(err)
				}
			},
			URL: func(s gmtest.Scratch) string {
				sc := s.(*scratch)
				return fmt.Sprintf("clickhouse://%s?username=default&database=%s&x-multi-statement=true&x-cluster-name=%s&x-migrations-table-engine=ReplicatedMergeTree", sc.env.CHNative[0], sc.db, sc.env.CHCluster)
			},
			Check: func(t *testing.T, s gmtest.Scratch, d migrate.Driver, step string) {
				if step == "tracevault up" {
					s.(*scratch).assertReplicasAgree(t, d.(*Driver), step)
				}
			},
		},
	})
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
