package clickhouse_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/replica"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

func connectZK(t *testing.T, env *devstack.Env) *zk.Conn {
	t.Helper()
	conn, err := zookeeper.Connect(context.Background(), []string{env.ZK}, 10*time.Second, chtest.Quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// rebuild plans and runs restore-replica over the given databases, from a snapshot when m is set.
func rebuild(t *testing.T, env *devstack.Env, dbs []string, which string, repo *store.Repository, m *store.Manifest) (*replica.Plan, *replica.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	servers := dialAll(t, env)
	o := replica.Options{Filter: clickhouse.Filter{Databases: dbs}, Conn: clickhouse.ConnOptions{User: "default"}, Log: chtest.Quiet, SyncTimeout: 2 * time.Minute,
		HTTP: map[string]string{}}
	for i, addr := range env.CHNative {
		o.HTTP[addr] = env.CHHTTP[i]
	}
	if m != nil {
		var err error
		if o.Snapshot, o.Objects, err = clickhouse.SnapshotSection(m); err != nil {
			t.Fatal(err)
		}
		o.SnapshotID = m.ID
	}
	b := replica.NewRebuilder(ctx, servers, env.CHNative, connectZK(t, env), o)
	plan, err := b.Plan(ctx, which)
	if err != nil {
		return nil, nil, err
	}
	res, err := b.Execute(ctx, repo, plan, nil)
	return plan, res, err
}

func check(t *testing.T, env *devstack.Env, dbs []string) *replica.Report {
	t.Helper()
	rep, err := replica.Check(context.Background(), dialAll(t, env), env.CHNative, connectZK(t, env), replica.CheckOptions{Filter: clickhouse.Filter{Databases: dbs}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// activeParts lists a replica's active parts of a database as "table partition min max".
func (f *fixture) activeParts(t *testing.T, replica int) []string {
	out := f.sql(t, replica, fmt.Sprintf("SELECT table, partition_id, min_block_number, max_block_number FROM system.parts WHERE database = '%s' AND active ORDER BY table, partition_id, min_block_number", f.db))
	return strings.Split(out, "\n")
}

// onlyMerged fails unless every part in after is before's parts or a merge of them: block
// ranges that start and end where parts of before started and ended, and no new blocks.
func onlyMerged(t *testing.T, replica int, before, after []string) {
	t.Helper()
	starts, ends := map[string]bool{}, map[string]bool{}
	for _, p := range before {
		f := strings.Fields(p)
		starts[f[0]+f[1]+" "+f[2]] = true
		ends[f[0]+f[1]+" "+f[3]] = true
	}
	for _, p := range after {
		f := strings.Fields(p)
		if !starts[f[0]+f[1]+" "+f[2]] || !ends[f[0]+f[1]+" "+f[3]] {
			t.Errorf("replica %d gained part %q, which is no merge of the parts it had before", replica+1, p)
		}
	}
}

// TestIsolatedReplicaRejoinsItsGroup is the "empty traces appearing intermittently" failure:
// replica 3's traces is re-created locally under another ZooKeeper path. check names it;
// restore-replica keeps its own rows aside, puts it back in the group, and the peers are only
// read from.
func TestIsolatedReplicaRejoinsItsGroup(t *testing.T) {
	f := newFixture(t, 2000)
	env := f.env
	dbs := []string{f.db}
	create := f.sql(t, 0, fmt.Sprintf("SHOW CREATE TABLE %s.traces", f.db))
	create = strings.NewReplacer(`\n`, "\n", `\'`, "'").Replace(create)
	isolatedPath := "/clickhouse/tables/{shard}/" + f.db + "/traces_isolated"
	f.sql(t, 2, fmt.Sprintf("DROP TABLE %s.traces", f.db))
	f.sql(t, 2, strings.Replace(create, "/clickhouse/tables/{shard}/"+f.db+"/traces", isolatedPath, 1))
	// Two rows only the isolated replica has, and one its peers have too.
	insert := fmt.Sprintf("INSERT INTO %s.traces (id, timestamp, project_id, environment, created_at, updated_at, event_ts) VALUES", f.db)
	f.sql(t, 2, insert+" ('only-here-1', '2026-07-15 10:00:00', 'proj-01-01', 'production', now(), now(), now()), ('only-here-2', '2026-08-15 10:00:00', 'proj-01-01', 'production', now(), now(), now())")
	f.sql(t, 2, fmt.Sprintf("INSERT INTO %s.traces SELECT * FROM remote('%s', %s.traces) WHERE _partition_id = '202607' LIMIT 1", f.db, env.CHNative[0], f.db))
	for i := 0; i < 3; i++ {
		for _, tbl := range []string{"traces", "project_environments"} {
			f.sql(t, i, fmt.Sprintf("SYSTEM SYNC REPLICA %s.%s", f.db, tbl))
		}
	}
	counts := []string{f.sql(t, 0, "SELECT count() FROM "+f.db+".traces"), f.sql(t, 1, "SELECT count() FROM "+f.db+".traces"), f.sql(t, 2, "SELECT count() FROM "+f.db+".traces")}
	if counts[2] == counts[0] || counts[0] != counts[1] {
		t.Fatalf("traces counts %v: replica 3 should differ from replicas 1 and 2", counts)
	}
	peersBefore := [][]string{f.activeParts(t, 0), f.activeParts(t, 1)}
	sumsBefore := f.checksums(t, f.db)

	rep := check(t, env, dbs)
	found := false
	for _, p := range rep.Problems {
		if p.Kind == replica.VerdictIsolated && p.Table == f.db+".traces" && p.Replica == "ch3" {
			found = true
		} else {
			t.Errorf("unexpected problem: %+v", p)
		}
	}
	if rep.Healthy || !found {
		t.Fatalf("check: healthy=%v, isolated %s.traces on ch3 found=%v; problems %+v", rep.Healthy, f.db, found, rep.Problems)
	}

	plan, res, err := rebuild(t, env, dbs, "ch3", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range plan.Steps {
		got = append(got, string(s.Action)+" "+s.Target)
	}
	tr := f.db + ".traces"
	if want := []string{"recover-rows " + tr, "drop-table " + tr, "create-table " + tr, "sync " + tr, "verify " + tr}; !reflect.DeepEqual(got, want) {
		t.Errorf("plan %v, want %v", got, want)
	}
	if len(res.Recovered) != 1 || res.Recovered[0].Rows != 2 {
		t.Fatalf("recovered %+v; want the 2 rows only replica 3 had", res.Recovered)
	}
	if ids := f.sql(t, 2, "SELECT arraySort(groupArray(id)) FROM "+res.Recovered[0].RecoveryTable); ids != "['only-here-1','only-here-2']" {
		t.Errorf("recovery table holds %s", ids)
	}

	after := f.checksums(t, f.db)
	for i := range after {
		for tbl, want := range sumsBefore[0] {
			if after[i][tbl] != want && tbl != "event_log" {
				t.Errorf("replica %d %s after restore-replica:\n%s\nwant replica 1's before:\n%s", i+1, tbl, after[i][tbl], want)
			}
		}
	}
	for i := 0; i < 2; i++ {
		if after[i]["event_log"] != sumsBefore[i]["event_log"] {
			t.Errorf("replica %d's event_log changed", i+1)
		}
		onlyMerged(t, i, peersBefore[i], f.activeParts(t, i))
	}
	if rep := check(t, env, dbs); !rep.Healthy {
		t.Errorf("check after restore-replica: %+v", rep.Problems)
	}
	// A rerun finds nothing left to do.
	if plan, _, err := rebuild(t, env, dbs, env.CHNative[2], nil, nil); err != nil || len(plan.Steps) != 0 {
		t.Errorf("rerun: %v, steps %+v", err, plan)
	}
}

// TestLostVolumeReplicaIsRebuilt: replica 3 starts with an empty data directory; restore-replica
// re-creates every database and table, replaces its stale ZooKeeper registrations, and it
// converges to its peers' data; its local event_log comes back from the snapshot.
func TestLostVolumeReplicaIsRebuilt(t *testing.T) {
	devstack.Disruptive(t)
	f := newFixture(t, 2000)
	env := f.env
	ctx := context.Background()
	want := f.checksums(t, f.db)
	objects := func(cond string) int {
		n, _ := strconv.Atoi(f.sql(t, 0, fmt.Sprintf("SELECT count() FROM system.tables WHERE database = '%s' AND %s", f.db, cond)))
		return n
	}
	all, replicated, views := objects("1"), objects("engine LIKE 'Replicated%'"), objects("engine LIKE '%View'")
	// Every database, so that the rebuild also brings back the rows other databases' local
	// tables had on replica 3: the stack is left as it was found.
	src := &clickhouse.Source{Native: env.CHNative, HTTP: env.CHHTTP, Conn: clickhouse.ConnOptions{User: "default"},
		Filter: clickhouse.Filter{Databases: []string{"*"}}, Cluster: env.CHCluster, Log: chtest.Quiet}
	snap, err := snapshot.Run(ctx, f.repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	localRows := "SELECT database, sum(rows) FROM system.parts WHERE active AND table = 'event_log' GROUP BY database ORDER BY database"
	localBefore := f.sql(t, 2, localRows)
	if err := env.Stop(ctx, "ch3"); err != nil {
		t.Fatal(err)
	}
	healed := false
	t.Cleanup(func() {
		if healed {
			return
		}
		// Leave the stack whole for the tests after this one, whatever failed above.
		if err := env.Start(context.Background(), "ch3"); err != nil {
			t.Errorf("restart ch3: %v", err)
		}
		if _, _, err := rebuild(t, env, []string{"*"}, "ch3", f.repo, snap); err != nil {
			t.Errorf("heal ch3: %v", err)
		}
	})
	dir := env.CHDataDirs[2]
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Start(ctx, "ch3"); err != nil {
		t.Fatal(err)
	}
	if n := f.sql(t, 2, fmt.Sprintf("SELECT count() FROM system.tables WHERE database = '%s'", f.db)); n != "0" {
		t.Fatalf("replica 3 still has %s tables of %s after losing its volume", n, f.db)
	}
	rep := check(t, env, []string{f.db})
	missing := 0
	for _, p := range rep.Problems {
		if p.Kind == replica.VerdictMissing && p.Replica == "ch3" {
			missing++
		}
	}
	if missing != all {
		t.Errorf("check found %d objects missing on ch3, want %d: %+v", missing, all, rep.Problems)
	}

	plan, res, err := rebuild(t, env, []string{"*"}, "ch3", f.repo, snap)
	if err != nil {
		t.Fatal(err)
	}
	healed = true
	count := map[string]int{}
	for _, s := range plan.Steps {
		if strings.HasPrefix(s.Target, f.db) {
			count[string(s.Action)]++
		}
	}
	if count["drop-registration"] != replicated || count["create-table"] != all-views || count["create-view"] != views || count["verify"] != replicated ||
		count["create-database"] != 1 || count["load-partition"] == 0 {
		t.Errorf("plan for %s: %v; want the database, %d tables, %d views, %d stale registrations replaced and verified, event_log loaded", f.db, count, all-views, views, replicated)
	}
	if len(res.Verified) < replicated {
		t.Errorf("verified only %v", res.Verified)
	}
	got := f.checksums(t, f.db)
	for tbl, sum := range want[0] {
		if tbl != "event_log" && got[2][tbl] != sum {
			t.Errorf("replica 3 %s after rebuild:\n%s\nwant\n%s", tbl, got[2][tbl], sum)
		}
	}
	if got[2]["event_log"] != want[2]["event_log"] || want[2]["event_log"] == want[0]["event_log"] {
		t.Errorf("replica 3's own event_log after rebuild:\n%s\nwant its own from the snapshot\n%s", got[2]["event_log"], want[2]["event_log"])
	}
	if after := f.sql(t, 2, localRows); after != localBefore {
		t.Errorf("replica 3's event_log rows per database after rebuild:\n%s\nbefore:\n%s", after, localBefore)
	}
	if rep := check(t, env, []string{f.db}); !rep.Healthy {
		t.Errorf("check after rebuild: %+v", rep.Problems)
	}
	zkConn := connectZK(t, env)
	active, _, err := zkConn.Exists("/clickhouse/tables/01/" + f.db + "/traces/replicas/ch3/is_active")
	if err != nil || !active {
		t.Errorf("ch3 is not active in the traces group after the rebuild (%v)", err)
	}
}

// TestTotalLossRestoreCluster: every replica lost the database (its data and metadata
// directories, with the servers stopped), and in the first case ZooKeeper lost its tables'
// subtree too; restore --cluster rebuilds the cluster from a snapshot, and every table's
// per-partition checksum equals the snapshot's on every replica. In the second case
// ZooKeeper kept the lost tables' groups, which the plan removes before creating.
// The loss is scoped to the test's database so that the shared stack's other data survives.
func TestTotalLossRestoreCluster(t *testing.T) {
	devstack.Disruptive(t)
	for _, tt := range []struct {
		name          string
		loseZooKeeper bool
		groups        bool // one drop-group step per replicated table expected
	}{
		{"zookeeper lost too", true, false},
		{"zookeeper kept the lost groups", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 1000)
			env := f.env
			ctx := context.Background()
			want := f.checksums(t, f.db)
			replicated, _ := strconv.Atoi(f.sql(t, 0, fmt.Sprintf("SELECT count() FROM system.replicas WHERE database = '%s'", f.db)))
			if replicated == 0 {
				t.Fatal("the demo database has no replicated table")
			}
			m := f.backup(t)
			svcs := []string{"ch1", "ch2", "ch3"}
			t.Cleanup(func() {
				for _, svc := range svcs {
					if err := env.Start(context.Background(), svc); err != nil {
						t.Errorf("restart %s: %v", svc, err)
					}
				}
			})
			for _, svc := range svcs {
				if err := env.Stop(ctx, svc); err != nil {
					t.Fatal(err)
				}
			}
			for _, dir := range env.CHDataDirs {
				for _, p := range []string{"data/" + f.db, "metadata/" + f.db, "metadata/" + f.db + ".sql"} {
					if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
						t.Fatal(err)
					}
				}
			}
			zkConn := connectZK(t, env)
			if tt.loseZooKeeper {
				if err := deleteZK(zkConn, "/clickhouse/tables/01/"+f.db); err != nil {
					t.Fatal(err)
				}
			}
			for _, svc := range svcs {
				if err := env.Start(ctx, svc); err != nil {
					t.Fatal(err)
				}
			}
			if n := f.sql(t, 0, fmt.Sprintf("SELECT count() FROM system.tables WHERE database = '%s'", f.db)); n != "0" {
				t.Fatalf("replica 1 still has %s tables of %s", n, f.db)
			}
			rs, err := restore.New(ctx, restore.Options{Native: env.CHNative, HTTP: env.CHHTTP, Conn: clickhouse.ConnOptions{User: "default"},
				Cluster: env.CHCluster, WholeCluster: true, ZooKeeper: zkConn, Log: chtest.Quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			plan, err := rs.Plan(ctx, m)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			drops := 0
			for _, s := range plan.Steps {
				if s.Action == "drop-group" {
					drops++
				}
			}
			if wantDrops := map[bool]int{true: replicated}[tt.groups]; drops != wantDrops {
				t.Errorf("plan removes %d groups, want %d", drops, wantDrops)
			}
			if err := rs.Execute(ctx, f.repo, plan, nil); err != nil {
				t.Fatalf("restore: %v", err)
			}
			got := f.checksums(t, f.db)
			for i := range want {
				for tbl, sum := range want[i] {
					if got[i][tbl] != sum {
						t.Errorf("replica %d %s after restore --cluster:\n%s\nwant the snapshot's\n%s", i+1, tbl, got[i][tbl], sum)
					}
				}
			}
			if rep := check(t, env, []string{f.db}); !rep.Healthy {
				t.Errorf("check after restore --cluster: %+v", rep.Problems)
			}
		})
	}
}

// deleteZK removes a subtree, as a lost ensemble would have.
func deleteZK(conn *zk.Conn, path string) error {
	children, _, err := conn.Children(path)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := deleteZK(conn, path+"/"+c); err != nil {
			return err
		}
	}
	return conn.Delete(path, -1)
}
