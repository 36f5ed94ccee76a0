package replica

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// TestModernReplicaFactsFromTheEngine feeds check's per-replica logic and restore-replica's
// planning from ClickHouse 26.x's own system.tables, system.replicas, system.databases and
// SHOW CREATE output, which the fixture tests (TestJudge, TestPlanReplicaModernFixture) only
// imitate. ch-modern has no Keeper: a ReplicatedReplacingMergeTree table cannot be created
// there, but ATTACH opens one read-only with its real metadata, path from its UUID.
func TestModernReplicaFactsFromTheEngine(t *testing.T) {
	env := devstack.RequireModern(t)
	ctx := context.Background()
	db := env.ModernDatabase(t, "it_modrep")
	id := randomUUID(t)
	path := "/clickhouse/tables/" + id + "/01"
	// Dropping a replicated table waits for a Keeper that is not there, and DROP DATABASE
	// with it: detach it first (cleanups run last registered first).
	t.Cleanup(func() { _, _ = env.ModernQuery("DETACH TABLE IF EXISTS " + db + ".traces") })
	for _, sql := range []string{
		fmt.Sprintf("ATTACH TABLE %s.traces UUID '%s' (id String, timestamp DateTime, event_ts DateTime) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/01', 'ch-modern', event_ts) PARTITION BY toYYYYMM(timestamp) ORDER BY id", db, id),
		fmt.Sprintf("CREATE TABLE %s.event_log (id String, ts DateTime) ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY id", db),
		fmt.Sprintf("INSERT INTO %s.event_log SELECT toString(number), toDateTime('2026-03-31 12:00:00') + number * 3600 FROM numbers(30)", db),
	} {
		if _, err := env.ModernQuery(sql); err != nil {
			t.Fatal(err)
		}
	}
	dbUUID, err := env.ModernQuery("SELECT toString(uuid) FROM system.databases WHERE name = '" + db + "'")
	if err != nil || !clickhouse.WellFormedUUID(dbUUID) {
		t.Fatalf("database UUID %q, %v", dbUUID, err)
	}
	srv, err := clickhouse.Dial(ctx, env.CHModernNative, clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	filter := clickhouse.Filter{Databases: []string{db}}

	t.Run("SHOW CREATE with the UUID replays with it in place and without it as a copy", func(t *testing.T) {
		var show string
		if err := srv.Conn.QueryRow(ctx, "SHOW CREATE TABLE "+db+".traces SETTINGS show_table_uuid_in_table_create_query_if_not_nil = 1").Scan(&show); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(show, "UUID '"+id+"'") {
			t.Fatalf("the engine's SHOW CREATE lacks the UUID: %s", show)
		}
		same, err := clickhouse.RewriteCreate(show, clickhouse.Rewrite{Database: db, UUID: id})
		if err != nil || strings.Count(same, "UUID '") != 1 || !strings.Contains(same, "IF NOT EXISTS `"+db+"`.traces UUID '"+id+"'") {
			t.Errorf("in place: %q, %v; want the one UUID %s", same, err, id)
		}
		copied, err := clickhouse.RewriteCreate(show, clickhouse.Rewrite{Database: db + "_copy", ZKPathMap: func(p string) string { return clickhouse.MapZooKeeperPath(p, db, db+"_copy") }})
		if err != nil || strings.Contains(copied, "UUID '") {
			t.Errorf("a copy keeps the original's UUID: %q, %v", copied, err)
		}
	})

	tables, err := clickhouse.Discover(ctx, srv, filter)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]clickhouse.Table{}
	for _, tb := range tables {
		byName[tb.Name] = tb
	}
	traces := byName["traces"]
	t.Run("Discover", func(t *testing.T) {
		if traces.UUID != id || traces.Engine != "ReplicatedReplacingMergeTree" || traces.ZooKeeperPath != path || traces.ReplicaName != "ch-modern" {
			t.Errorf("traces: uuid %q engine %q path %q replica %q; want %s, ReplicatedReplacingMergeTree, %s, ch-modern", traces.UUID, traces.Engine, traces.ZooKeeperPath, traces.ReplicaName, id, path)
		}
		if got := clickhouse.RegistrationPath(&traces, nil); got != path+"/replicas/ch-modern" {
			t.Errorf("registration path %q from the engine's create %q", got, traces.Create)
		}
		if el := byName["event_log"]; el.Replicated() || el.UUID == "" || el.UUID == traces.UUID {
			t.Errorf("event_log: %+v", el)
		}
	})

	view := clickhouse.Observe(ctx, []*clickhouse.Server{srv}, []string{srv.Addr}, nil)
	facts, err := gatherFacts(ctx, srv, filter)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("check", func(t *testing.T) {
		var live *clickhouse.ReplicaTable
		for i, rt := range view.Replicas[0].Tables {
			if rt.FullName() == db+".traces" {
				live = &view.Replicas[0].Tables[i]
			}
		}
		if !view.Replicas[0].Up || live == nil || live.UUID != id || live.ZooKeeperPath != path || live.ReplicaName != "ch-modern" || !live.IsReadonly {
			t.Fatalf("system.replicas on the engine: %+v, %+v", view.Replicas[0], live)
		}
		if f := facts[db+".traces"]; f == nil || f.UUID != id || f.Engine != "ReplicatedReplacingMergeTree" || len(f.Columns) != 3 {
			t.Errorf("facts of traces: %+v", f)
		}
		if f := facts[db+".event_log"]; f == nil || len(f.Partitions) != 2 || f.Partitions["202603"] != 12 || f.Partitions["202604"] != 18 {
			t.Errorf("facts of event_log: %+v", f)
		}
		rep := judge(view, []replicaFacts{facts}, nil, CheckOptions{Filter: filter})
		verdicts := map[string]string{}
		for _, tc := range rep.Tables {
			verdicts[tc.Table] = tc.Cells[0].Verdict
			if tc.Table == db+".traces" && (tc.UUID != id || tc.ZooKeeperPath != path || !tc.Replicated) {
				t.Errorf("check's reference group for traces: uuid %q path %q replicated %v", tc.UUID, tc.ZooKeeperPath, tc.Replicated)
			}
		}
		// With no Keeper the engine reports the table read-only and its session expired: check
		// must say the worse, and that the local table is fine.
		if !live.IsSessionExpired || verdicts[db+".traces"] != VerdictExpired || verdicts[db+".event_log"] != VerdictOK {
			t.Errorf("session expired %v, verdicts %v; want traces %s, event_log %s", live.IsSessionExpired, verdicts, VerdictExpired, VerdictOK)
		}
	})

	t.Run("restore-replica plan for a lost volume, this engine the peer", func(t *testing.T) {
		peerDBs, err := clickhouse.Databases(ctx, srv)
		if err != nil {
			t.Fatal(err)
		}
		b := &Rebuilder{view: view}
		st := &replicaState{target: ch3(), caps: srv.Caps, peer: srv.Addr, want: tables, peerDBs: peerDBs, registered: map[string]bool{}}
		plan, err := b.planFrom(st)
		if err != nil {
			t.Fatal(err)
		}
		sqls := map[string]string{}
		for _, s := range plan.Steps {
			sqls[string(s.Action)+" "+s.Target] = s.SQL
		}
		for step, frag := range map[string]string{
			"create-database " + db:          "CREATE DATABASE IF NOT EXISTS `" + db + "` UUID '" + dbUUID + "' ENGINE = Atomic",
			"create-table " + db + ".traces": "UUID '" + id + "'",
			"sync " + db + ".traces":         "",
		} {
			sql, ok := sqls[step]
			if !ok || !strings.Contains(sql, frag) {
				t.Errorf("step %q: %q, want it with %q; plan %v", step, sql, frag, steps(plan))
			}
		}
		// The engine's own definition ('/clickhouse/tables/{uuid}/01') gives the peer's path on
		// the rebuilt replica too, so it is kept as written.
		if sql := sqls["create-table "+db+".traces"]; !strings.Contains(sql, "ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/01', 'ch-modern', event_ts)") {
			t.Errorf("create-table traces: %s", sql)
		}
		if sql := sqls["create-table "+db+".event_log"]; !strings.Contains(sql, "UUID '"+byName["event_log"].UUID+"'") {
			t.Errorf("create-table event_log: %s", sql)
		}
	})
}

func randomUUID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
