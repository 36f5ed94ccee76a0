package replica

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Fixture rows of a modern server (24.8): an Atomic database and a table with the default
// replication path, which is derived from the table's UUID. They are the fallback where no
// modern engine runs: TestModernReplicaFactsFromTheEngine gathers the same facts from
// ClickHouse 26.x (ch-modern) itself.
const (
	modernDBUUID   = "0f3a5c1e-7d2b-4e8a-9c11-2b6f0e4d8a10"
	modernUUID     = "5d8e2a47-3c1f-4b9e-8a6d-7e0c9b2f1a34"
	modernPath     = "/clickhouse/tables/" + modernUUID + "/01"
	modernIsolated = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
	modernCreate   = "CREATE TABLE default.traces UUID '" + modernUUID + "' (`id` String, `timestamp` DateTime, `event_ts` DateTime) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}', event_ts) PARTITION BY toYYYYMM(timestamp) ORDER BY id SETTINGS index_granularity = 8192"
	modernMVCreate = "CREATE MATERIALIZED VIEW default.project_environments_traces_mv UUID '1e2d3c4b-5a69-4788-9aab-bccddeeff001' TO default.project_environments (`project_id` String) AS SELECT project_id FROM default.traces"
)

var modern = clickhouse.Capabilities{Version: chtest.ModernVersion, Major: 24, Minor: 8, TableUUIDs: true, DatabaseUUIDs: true, RestoreReplica: true, DefaultReplicatedArgs: true}

func modernTraces(uuid, path string) clickhouse.Table {
	return clickhouse.Table{Database: "default", Name: "traces", Engine: "ReplicatedReplacingMergeTree", UUID: uuid,
		Create: strings.Replace(modernCreate, modernUUID, uuid, 1), ZooKeeperPath: path, ReplicaName: "ch1"}
}

func ch3() clickhouse.Replica {
	return clickhouse.Replica{Addr: "10.0.0.3:9000", Up: true, Macros: map[string]string{"replica": "ch3", "shard": "01"}}
}

func steps(p *Plan) []string {
	out := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		out[i] = string(s.Action) + " " + s.Target
	}
	return out
}

// TestPlanReplicaModernFixture is a fixture test of the modern path: a lost volume on a server
// with UUIDs and Atomic databases is rebuilt with the peers' database and table UUIDs, so the
// table lands on the same {uuid}-derived path, after its stale registration is removed.
func TestPlanReplicaModernFixture(t *testing.T) {
	b := &Rebuilder{view: &clickhouse.View{Taken: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}}
	mv := clickhouse.Table{Database: "default", Name: "project_environments_traces_mv", Engine: "MaterializedView", Create: modernMVCreate,
		UUID: "1e2d3c4b-5a69-4788-9aab-bccddeeff001", DependsOn: []string{"default.traces"}}
	st := &replicaState{target: ch3(), caps: modern, peer: "10.0.0.1:9000",
		want:       []clickhouse.Table{modernTraces(modernUUID, modernPath), mv},
		peerDBs:    []clickhouse.DatabaseRecord{{Name: "default", Engine: "Atomic", UUID: modernDBUUID}},
		haveDBs:    []clickhouse.DatabaseRecord{{Name: "system", Engine: "Atomic"}},
		registered: map[string]bool{modernPath + "/replicas/ch3": true}}
	plan, err := b.planFrom(st)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"create-database default", "drop-registration default.traces", "create-table default.traces",
		"create-view default.project_environments_traces_mv", "sync default.traces", "verify default.traces"}
	if got := steps(plan); !reflect.DeepEqual(got, want) {
		t.Fatalf("steps %v, want %v", got, want)
	}
	for i, frag := range map[int]string{
		0: "CREATE DATABASE IF NOT EXISTS `default` UUID '" + modernDBUUID + "' ENGINE = Atomic",
		2: "CREATE TABLE IF NOT EXISTS `default`.traces UUID '" + modernUUID + "' (",
		3: "CREATE MATERIALIZED VIEW IF NOT EXISTS `default`.project_environments_traces_mv UUID '1e2d3c4b-5a69-4788-9aab-bccddeeff001' TO",
	} {
		if !strings.Contains(plan.Steps[i].SQL, frag) {
			t.Errorf("step %d SQL %q lacks %q", i, plan.Steps[i].SQL, frag)
		}
	}
	if !strings.Contains(plan.Steps[2].SQL, "'/clickhouse/tables/{uuid}/{shard}', '{replica}'") {
		t.Errorf("the create should keep the peers' macro path, which gives the same path here: %s", plan.Steps[2].SQL)
	}
	if plan.Steps[1].ZooKeeperPath != modernPath+"/replicas/ch3" {
		t.Errorf("drop-registration of %q", plan.Steps[1].ZooKeeperPath)
	}
}

// TestPlanReplicaIsolated covers a table in the wrong group: by UUID on a modern server
// (fixture) and by path on 18.16. Its own rows are kept aside before it is dropped.
func TestPlanReplicaIsolated(t *testing.T) {
	legacy := clickhouse.Table{Database: "default", Name: "traces", Engine: "ReplicatedReplacingMergeTree", ZooKeeperPath: chtest.TracesPath, ReplicaName: "ch1",
		Create: chtest.TracesCreate}
	isolatedLegacy := legacy
	isolatedLegacy.ZooKeeperPath = chtest.TracesPath + "_v2"
	tests := []struct {
		name     string
		caps     clickhouse.Capabilities
		want     clickhouse.Table
		have     clickhouse.Table
		dropSQL  string
		createIn string
	}{
		{"fixture: modern server, new UUID", modern, modernTraces(modernUUID, modernPath), modernTraces(modernIsolated, "/clickhouse/tables/"+modernIsolated+"/01"),
			"DROP TABLE IF EXISTS `default`.`traces` SYNC", "UUID '" + modernUUID + "'"},
		{"18.16, other path", clickhouse.Capabilities{Version: "18.16.1", Major: 18, Minor: 16}, legacy, isolatedLegacy,
			"DROP TABLE IF EXISTS `default`.`traces`", "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/default/traces', '{replica}'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Rebuilder{view: &clickhouse.View{Taken: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}}
			plan, err := b.planFrom(&replicaState{target: ch3(), caps: tt.caps, peer: "10.0.0.1:9000", want: []clickhouse.Table{tt.want}, have: []clickhouse.Table{tt.have},
				haveDBs: []clickhouse.DatabaseRecord{{Name: "default"}}, registered: map[string]bool{}})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"recover-rows default.traces", "drop-table default.traces", "create-table default.traces", "sync default.traces", "verify default.traces"}
			if got := steps(plan); !reflect.DeepEqual(got, want) {
				t.Fatalf("steps %v, want %v", got, want)
			}
			if plan.Steps[1].SQL != tt.dropSQL {
				t.Errorf("drop: %q, want %q", plan.Steps[1].SQL, tt.dropSQL)
			}
			if !strings.Contains(plan.Steps[2].SQL, tt.createIn) || strings.Contains(plan.Steps[2].SQL, "ON CLUSTER") {
				t.Errorf("create: %q; want %q, on this replica only", plan.Steps[2].SQL, tt.createIn)
			}
			if !strings.Contains(plan.Steps[0].Detail, "__tracevault_recovered_traces_20261125T080000") {
				t.Errorf("recover-rows: %q", plan.Steps[0].Detail)
			}
		})
	}
}

// TestPlanReplicaPathFromPeers: when the target's macros would give another path than its
// peers' (a {shard} macro set differently), the peers' path is written out literally.
func TestPlanReplicaPathFromPeers(t *testing.T) {
	target := ch3()
	target.Macros["shard"] = "02"
	b := &Rebuilder{view: &clickhouse.View{}}
	tbl := clickhouse.Table{Database: "default", Name: "traces", Engine: "ReplicatedReplacingMergeTree", ZooKeeperPath: chtest.TracesPath, Create: chtest.TracesCreate}
	plan, err := b.planFrom(&replicaState{target: target, caps: clickhouse.Capabilities{Major: 18, Minor: 16}, want: []clickhouse.Table{tbl}, haveDBs: []clickhouse.DatabaseRecord{{Name: "default"}}})
	if err != nil {
		t.Fatal(err)
	}
	if sql := plan.Steps[0].SQL; !strings.Contains(sql, "ReplicatedReplacingMergeTree('"+chtest.TracesPath+"', '{replica}'") {
		t.Errorf("create: %s", sql)
	}
}

// TestPlanReplicaLocalTables: a local table is created with the peers' definition and loaded
// from the snapshot's rows of this replica only; without a snapshot it is created empty, noted.
func TestPlanReplicaLocalTables(t *testing.T) {
	eventLog := clickhouse.Table{Database: "default", Name: "event_log", Engine: "MergeTree",
		Create: "CREATE TABLE default.event_log (`id` String, `created_at` DateTime) ENGINE = MergeTree PARTITION BY toYYYYMM(created_at) ORDER BY id"}
	sec := &clickhouse.Section{Tables: []clickhouse.TableRecord{{Table: eventLog, Partitions: []clickhouse.PartitionRecord{
		{Partition: clickhouse.Partition{ID: "202605", Rows: 7}, Replica: "10.0.0.3:9000", Object: "obj3"},
		{Partition: clickhouse.Partition{ID: "202605", Rows: 9}, Replica: "10.0.0.1:9000", Object: "obj1"},
	}}}}
	st := &replicaState{target: ch3(), caps: clickhouse.Capabilities{Major: 18, Minor: 16}, want: []clickhouse.Table{eventLog}, haveDBs: []clickhouse.DatabaseRecord{{Name: "default"}}}
	b := &Rebuilder{view: &clickhouse.View{}}
	plan, _ := b.planFrom(st)
	if got := steps(plan); !reflect.DeepEqual(got, []string{"create-table default.event_log"}) || len(plan.Notes) != 1 {
		t.Errorf("without a snapshot: %v, notes %v", got, plan.Notes)
	}
	b.opts.Snapshot = sec
	b.opts.Objects = map[string]store.ObjectRef{"obj3": {}, "obj1": {}}
	plan, _ = b.planFrom(st)
	if got := steps(plan); !reflect.DeepEqual(got, []string{"create-table default.event_log", "load-partition default.event_log"}) || plan.Steps[1].Object != "obj3" || len(plan.Notes) != 0 {
		t.Errorf("with a snapshot: %v (object %s), notes %v", got, plan.Steps[1].Object, plan.Notes)
	}
}

// TestPlanReplicaOrphaned: a table in its group whose registration ZooKeeper lost is readonly.
// On a modern server (fixture test) SYSTEM RESTORE REPLICA re-registers it from its own parts;
// 18.16 cannot, and the plan says what to do by hand instead of half-doing it.
func TestPlanReplicaOrphaned(t *testing.T) {
	tests := []struct {
		name string
		caps clickhouse.Capabilities
		tbl  clickhouse.Table
		want []string
		err  string
	}{
		{"fixture: modern server", modern, modernTraces(modernUUID, modernPath),
			[]string{"restore-metadata default.traces", "sync default.traces", "verify default.traces"}, ""},
		{"18.16", clickhouse.Capabilities{Version: "18.16.1", Major: 18, Minor: 16},
			clickhouse.Table{Database: "default", Name: "traces", Engine: "ReplicatedReplacingMergeTree", ZooKeeperPath: chtest.TracesPath, Create: chtest.TracesCreate},
			nil, "DETACH TABLE default.traces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Rebuilder{view: &clickhouse.View{}}
			st := &replicaState{target: ch3(), caps: tt.caps, peer: "10.0.0.1:9000", want: []clickhouse.Table{tt.tbl}, have: []clickhouse.Table{tt.tbl},
				haveDBs: []clickhouse.DatabaseRecord{{Name: "default"}}, registered: map[string]bool{}, zkKnown: true, readonly: map[string]bool{"default.traces": true}}
			plan, err := b.planFrom(st)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := steps(plan); !reflect.DeepEqual(got, tt.want) || plan.Steps[0].SQL != "SYSTEM RESTORE REPLICA `default`.`traces`" {
				t.Errorf("steps %v (%s), want %v", got, plan.Steps[0].SQL, tt.want)
			}
			// Registered, or not readonly: nothing to do.
			st.readonly["default.traces"] = false
			if plan, err := b.planFrom(st); err != nil || len(plan.Steps) != 0 {
				t.Errorf("writable table: %v, %v", err, plan.Steps)
			}
		})
	}
}
