package clickhouse_test

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// fixture is a seeded scratch database and a filesystem repository.
type fixture struct {
	env  *devstack.Env
	db   string
	repo *store.Repository
	mode string // export mode of backup; empty is logical
}

// modes are the export modes every backup-and-restore test runs in; the stack's replicas run
// on this host, so freeze mode reads their data paths as the servers report them.
var modes = []string{clickhouse.ModeLogical, clickhouse.ModeFreeze}

func newFixture(t *testing.T, traces int) *fixture {
	t.Helper()
	env := devstack.Require(t)
	ctx := context.Background()
	f := &fixture{env: env, db: devstack.ScratchName("it_ch")}
	if _, err := demo.Seed(ctx, demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster, Database: f.db, Traces: traces, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.sql(t, 0, fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", f.db, env.CHCluster))
		f.sql(t, 0, fmt.Sprintf("DROP DATABASE IF EXISTS %s_copy ON CLUSTER %s", f.db, env.CHCluster))
	})
	f.repo = chtest.Repo(t)
	return f
}

func (f *fixture) http(i int) *clickhouse.HTTP {
	return &clickhouse.HTTP{Addr: f.env.CHHTTP[i], User: "default"}
}

func (f *fixture) sql(t *testing.T, replica int, q string) string {
	t.Helper()
	rc, err := f.http(replica).Query(context.Background(), q, nil)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return strings.TrimSpace(string(b))
}

func (f *fixture) backup(t *testing.T) *store.Manifest {
	t.Helper()
	src := &clickhouse.Source{Native: f.env.CHNative, HTTP: f.env.CHHTTP, Conn: clickhouse.ConnOptions{User: "default"},
		Filter: clickhouse.Filter{Databases: []string{f.db}}, Cluster: f.env.CHCluster, Mode: f.mode, Log: chtest.Quiet}
	m, err := snapshot.Run(context.Background(), f.repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return m
}

func (f *fixture) restore(t *testing.T, m *store.Manifest, o restore.Options) {
	t.Helper()
	o.Native, o.HTTP, o.Conn, o.Cluster, o.Log = f.env.CHNative, f.env.CHHTTP, clickhouse.ConnOptions{User: "default"}, f.env.CHCluster, chtest.Quiet
	rs, err := restore.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	plan, err := rs.Plan(context.Background(), m)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if err := rs.Execute(context.Background(), f.repo, plan, nil); err != nil {
		t.Fatalf("restore: %v", err)
	}
}

// checksums is, per replica, every data table's per-partition row count and content hash;
// project_environments is compared by its merged value, which merges do not change.
func (f *fixture) checksums(t *testing.T, db string) []map[string]string {
	t.Helper()
	out := make([]map[string]string, len(f.env.CHHTTP))
	for i := range f.env.CHHTTP {
		out[i] = map[string]string{}
		for _, tbl := range []string{"traces", "observations", "scores", "blob_storage_file_log", "event_log"} {
			out[i][tbl] = f.sql(t, i, fmt.Sprintf("SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM %s.%s GROUP BY _partition_id ORDER BY _partition_id", db, tbl))
		}
		out[i]["project_environments"] = f.sql(t, i, fmt.Sprintf("SELECT project_id, arraySort(groupUniqArrayMerge(environments)) FROM %s.project_environments GROUP BY project_id ORDER BY project_id", db))
	}
	return out
}

// sameChecksums fails unless every replica's checksums of the fixture's database are before's.
func (f *fixture) sameChecksums(t *testing.T, before []map[string]string) {
	t.Helper()
	after := f.checksums(t, f.db)
	for i := range before {
		for tbl, want := range before[i] {
			if after[i][tbl] != want {
				t.Errorf("replica %d %s after restore:\n%s\nwant\n%s", i+1, tbl, after[i][tbl], want)
			}
		}
	}
}

func TestBackupDropRestore(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { testBackupDropRestore(t, mode) })
	}
}

func testBackupDropRestore(t *testing.T, mode string) {
	f := newFixture(t, 3000)
	f.mode = mode
	before := f.checksums(t, f.db)
	m := f.backup(t)
	wantFormat(t, m, mode)
	f.sql(t, 0, fmt.Sprintf("DROP DATABASE %s ON CLUSTER %s", f.db, f.env.CHCluster))
	f.restore(t, m, restore.Options{})
	f.sameChecksums(t, before)
	rows := f.sql(t, 1, fmt.Sprintf("SELECT count() FROM %s.project_environments", f.db))
	if rows == "0" {
		t.Error("project_environments is empty on replica 2")
	}
	// Views come back too, and read the restored data.
	if got := f.sql(t, 2, fmt.Sprintf("SELECT sum(count_all) FROM %s.analytics_traces", f.db)); got != "3000" {
		t.Errorf("analytics_traces on replica 3 counts %s traces, want 3000", got)
	}
}

// wantFormat checks that every partition object was made the way the mode makes them.
func wantFormat(t *testing.T, m *store.Manifest, mode string) {
	t.Helper()
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{clickhouse.ModeLogical: clickhouse.FormatNative, clickhouse.ModeFreeze: clickhouse.FormatPartsTar}[mode]
	n := 0
	for _, tbl := range sec.Tables {
		for _, p := range tbl.Partitions {
			n++
			if p.Format != want {
				t.Errorf("%s partition %s has format %q in %s mode; want %q", tbl.Name, p.ID, p.Format, mode, want)
			}
		}
	}
	if n == 0 {
		t.Error("the snapshot has no partitions")
	}
}

func TestIncrementalBackupAndPartitionRestore(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { testIncrementalBackupAndPartitionRestore(t, mode) })
	}
}

func testIncrementalBackupAndPartitionRestore(t *testing.T, mode string) {
	f := newFixture(t, 2000)
	f.mode = mode
	// The migration tables got one part per write while the fixture was seeded; merges of
	// them in the background, between two backups, would make a partition new that no write
	// touched. One part each leaves nothing to merge.
	for _, tbl := range []string{"schema_migrations", "tracevault_migrations"} {
		f.sql(t, 0, fmt.Sprintf("OPTIMIZE TABLE %s.%s FINAL", f.db, tbl))
		for i := range f.env.CHNative {
			f.sql(t, i, fmt.Sprintf("SYSTEM SYNC REPLICA %s.%s", f.db, tbl))
		}
	}
	first := f.backup(t)
	second := f.backup(t)
	if tot := second.Totals(); tot.NewBytes != 0 || tot.Reused != tot.Objects {
		t.Fatalf("a backup with no writes uploaded %d bytes (%d of %d objects reused)", tot.NewBytes, tot.Reused, tot.Objects)
	}
	insert := fmt.Sprintf("INSERT INTO %s.traces (id, timestamp, project_id, environment, created_at, updated_at, event_ts) FORMAT Values", f.db)
	if err := f.http(0).Exec(context.Background(), insert, strings.NewReader("('extra-1', '2026-07-15 10:00:00', 'proj-01-01', 'production', now(), now(), now())")); err != nil {
		t.Fatal(err)
	}
	f.sql(t, 1, fmt.Sprintf("SYSTEM SYNC REPLICA %s.traces", f.db))
	third := f.backup(t)
	var fresh []string
	for _, o := range third.Objects {
		if !o.Reused {
			fresh = append(fresh, o.Table+"/"+o.Partition)
		}
	}
	// The insert also fired the materialized view into project_environments, which changed too.
	if want := []string{"project_environments/all", "traces/202607"}; !reflect.DeepEqual(fresh, want) {
		t.Fatalf("after one insert into July, the backup exported %v; want only %v", fresh, want)
	}
	if len(first.Objects) != len(third.Objects) {
		t.Errorf("object count changed: %d then %d", len(first.Objects), len(third.Objects))
	}

	// Alter July on the live cluster, then restore just that partition from the third snapshot.
	snap := f.checksums(t, f.db)
	if err := f.http(0).Exec(context.Background(), insert, strings.NewReader("('extra-2', '2026-07-16 10:00:00', 'proj-01-01', 'production', now(), now(), now()),('extra-1', '2026-07-15 10:00:00', 'proj-09-09', 'staging', now(), now(), now())")); err != nil {
		t.Fatal(err)
	}
	f.restore(t, third, restore.Options{Tables: []string{f.db + ".traces"}, Partitions: []string{"202607"}, Replace: true})
	f.sql(t, 0, fmt.Sprintf("OPTIMIZE TABLE %s.traces PARTITION 202607 FINAL", f.db))
	f.sql(t, 0, fmt.Sprintf("SYSTEM SYNC REPLICA %s.traces", f.db))
	got := f.checksums(t, f.db)
	for i := range snap {
		if got[i]["traces"] != snap[i]["traces"] {
			t.Errorf("replica %d traces after partition restore:\n%s\nwant\n%s", i+1, got[i]["traces"], snap[i]["traces"])
		}
	}
}

func TestBackupWithReplicaDownAndRestoreNextToOriginal(t *testing.T) {
	devstack.Disruptive(t)
	f := newFixture(t, 1000)
	ctx := context.Background()
	if err := f.env.Stop(ctx, "ch1"); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = f.env.Start(context.Background(), "ch1")
		}
	})
	m := f.backup(t)
	for _, o := range m.Objects {
		if o.Replica == f.env.CHNative[0] {
			t.Errorf("object %s/%s read from the stopped replica", o.Table, o.Partition)
		}
	}
	if err := f.env.Start(ctx, "ch1"); err != nil {
		t.Fatal(err)
	}
	restarted = true
	time.Sleep(time.Second) // let ch1 re-open its ZooKeeper session before DDL
	copyDB := f.db + "_copy"
	f.restore(t, m, restore.Options{DatabaseMap: map[string]string{f.db: copyDB}})
	orig, cp := f.checksums(t, f.db), f.checksums(t, copyDB)
	for i := 1; i < len(orig); i++ { // replica 1's event_log was not in the snapshot
		for _, tbl := range []string{"traces", "observations", "scores", "project_environments"} {
			if orig[i][tbl] != cp[i][tbl] {
				t.Errorf("replica %d: %s copy differs from the original", i+1, tbl)
			}
		}
	}
	path := f.sql(t, 0, fmt.Sprintf("SELECT zookeeper_path FROM system.replicas WHERE database = '%s' AND table = 'traces'", copyDB))
	if !strings.Contains(path, "/"+copyDB+"/") {
		t.Errorf("the copy replicates under %q; it must not share the original's path", path)
	}
}

// TestBackupOldSyntaxMergeTree backs up a table of the old MergeTree syntax, whose parts are
// named by dates rather than by their partition id: the export's partition condition must not
// rely on the names (it once selected no row of such a table and recorded empty partitions).
func TestBackupOldSyntaxMergeTree(t *testing.T) {
	env := devstack.Require(t)
	f := &fixture{env: env, db: devstack.ScratchName("it_ch_old"), repo: chtest.Repo(t)}
	f.sql(t, 0, "CREATE DATABASE "+f.db)
	t.Cleanup(func() { f.sql(t, 0, fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", f.db, env.CHCluster)) })
	f.sql(t, 0, "CREATE TABLE "+f.db+".events (d Date, x UInt64) ENGINE = MergeTree(d, x, 8192)")
	f.sql(t, 0, "INSERT INTO "+f.db+".events SELECT toDate('2024-01-05') + number % 40, number FROM numbers(1000)")
	want := f.sql(t, 0, "SELECT _partition_id, count() FROM "+f.db+".events GROUP BY _partition_id ORDER BY _partition_id")
	m := f.backup(t)
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tbl := range sec.Tables {
		for _, p := range tbl.Partitions {
			got = append(got, fmt.Sprintf("%s\t%d", p.ID, p.Rows))
		}
	}
	if strings.Join(got, "\n") != want {
		t.Fatalf("the snapshot records partitions\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
	f.sql(t, 0, "DROP TABLE "+f.db+".events")
	f.restore(t, m, restore.Options{})
	if after := f.sql(t, 0, "SELECT _partition_id, count() FROM "+f.db+".events GROUP BY _partition_id ORDER BY _partition_id"); after != want {
		t.Errorf("after restore:\n%s\nwant\n%s", after, want)
	}
}
