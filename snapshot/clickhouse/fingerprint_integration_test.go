package clickhouse_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// A table dropped and re-created, then loaded with other rows that give the same part names
// and row counts, is backed up anew: its objects are not the dropped table's.
func TestIncrementalBackupOfRecreatedTable(t *testing.T) {
	for _, mode := range []string{clickhouse.ModeLogical, clickhouse.ModeFreeze} {
		t.Run(mode, func(t *testing.T) { testRecreatedTable(t, mode) })
	}
}

func testRecreatedTable(t *testing.T, mode string) {
	env := devstack.Require(t)
	db := env.CHDatabase(t, "it_fp")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repo := chtest.Repo(t)
	exec := func(sql string) {
		t.Helper()
		if err := env.CHExec(0, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	srv, err := clickhouse.Dial(ctx, env.CHNative[0], clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	query := func(sql string) string {
		t.Helper()
		var out string
		if err := srv.Conn.QueryRow(ctx, sql).Scan(&out); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return out
	}
	tables := map[string]string{ // name -> engine; event_log in Langfuse is the local kind
		"r": "ReplicatedMergeTree('/clickhouse/tables/{shard}/" + db + "/r', '{replica}')",
		"l": "MergeTree",
	}
	load := func(x0 int) {
		for name, engine := range tables {
			exec(fmt.Sprintf("CREATE TABLE %s.%s ON CLUSTER %s (d Date, x UInt32) ENGINE = %s PARTITION BY toYYYYMM(d) ORDER BY x", db, name, env.CHCluster, engine))
			// One insert of two rows: part 202607_<n>_<n>_0 whatever the values.
			exec(fmt.Sprintf("INSERT INTO %s.%s VALUES ('2026-07-01', %d), ('2026-07-02', %d)", db, name, x0, x0+1))
		}
	}
	partsOf := func() string {
		return query(fmt.Sprintf("SELECT arrayStringConcat(groupArray(concat(table, ':', name, ':', toString(rows))), ' ') FROM (SELECT table, name, rows FROM system.parts WHERE database = '%s' AND active ORDER BY table, name)", db))
	}
	backup := func() *store.Manifest {
		t.Helper()
		src := &clickhouse.Source{Native: env.CHNative, HTTP: env.CHHTTP, Conn: clickhouse.ConnOptions{User: "default"}, Filter: clickhouse.Filter{Databases: []string{db}},
			Cluster: env.CHCluster, Mode: mode, Log: chtest.Quiet}
		m, err := snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		return m
	}
	objects := func(m *store.Manifest) map[string]store.ManifestObject {
		out := map[string]store.ManifestObject{}
		for _, o := range m.Objects {
			if o.Replica == env.CHNative[0] || o.Table == "r" {
				out[o.Table] = o
			}
		}
		return out
	}

	load(1)
	before := partsOf()
	first := objects(backup())
	if again := objects(backup()); again["r"].ID != first["r"].ID || !again["r"].Reused || again["l"].ID != first["l"].ID || !again["l"].Reused {
		t.Fatalf("unchanged tables were not reused: %+v then %+v", first, again)
	}

	for name := range tables {
		exec(fmt.Sprintf("DROP TABLE %s.%s ON CLUSTER %s", db, name, env.CHCluster))
	}
	time.Sleep(1100 * time.Millisecond) // parts written in another second, as any real re-creation is
	load(100)
	if after := partsOf(); after != before {
		t.Fatalf("the re-created tables' parts are %q, the dropped ones' %q: the test needs them equal", after, before)
	}
	second := backup()
	for name, o := range objects(second) {
		if o.Reused || o.ID == first[name].ID {
			t.Errorf("re-created table %s: object %s reused from the dropped table's backup", name, o.ID)
		}
	}

	rs, err := restore.New(ctx, restore.Options{Native: env.CHNative, HTTP: env.CHHTTP, Conn: clickhouse.ConnOptions{User: "default"}, Cluster: env.CHCluster,
		DatabaseMap: map[string]string{db: db + "_copy"}, Log: chtest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	t.Cleanup(func() {
		_ = env.CHExec(0, fmt.Sprintf("DROP DATABASE IF EXISTS %s_copy ON CLUSTER %s", db, env.CHCluster))
	})
	plan, err := rs.Plan(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Execute(ctx, repo, plan, nil); err != nil {
		t.Fatal(err)
	}
	for name := range tables {
		if got := query(fmt.Sprintf("SELECT toString(sum(x)) FROM %s_copy.%s", db, name)); got != "201" {
			t.Errorf("restored %s holds sum(x) = %s; want the re-created table's 201", name, got)
		}
	}
}
