package clickhouse

import (
	"fmt"
	"testing"
)

// TestCapabilitiesFor covers 18.16 (the stack) and modern servers. The modern rows are the
// fallback for versions the stack does not run; 26.7's detection runs live in
// TestModernFreezeBackupRestore.
func TestCapabilitiesFor(t *testing.T) {
	modern := map[string]bool{"tables.uuid": true, "databases.uuid": true, "tables.data_paths": true, "parts.hash_of_all_files": true, "disks.path": true, "settings.optimize_on_insert": true}
	withDeletes := map[string]bool{"tables.uuid": true, "databases.uuid": true, "tables.data_paths": true, "parts.hash_of_all_files": true, "disks.path": true, "settings.optimize_on_insert": true, "parts.has_lightweight_delete": true, "functions.formatRow": true}
	withPatches := map[string]bool{"settings.apply_patch_parts": true}
	for k := range withDeletes {
		withPatches[k] = true
	}
	tests := []struct {
		version string
		columns map[string]bool
		want    Capabilities
	}{
		{"18.16.1", nil, Capabilities{Version: "18.16.1", Major: 18, Minor: 16}},
		{"20.3.19.4", map[string]bool{"tables.data_paths": true, "disks.path": true}, Capabilities{Version: "20.3.19.4", Major: 20, Minor: 3, FreezeWithName: true, TableDataPaths: true, Disks: true}},
		{"21.8.15.7", modern, Capabilities{Version: "21.8.15.7", Major: 21, Minor: 8, TableUUIDs: true, DatabaseUUIDs: true, OptimizeOnInsert: true, RestoreReplica: true, DefaultReplicatedArgs: true, FreezeWithName: true, PartHashes: true, TableDataPaths: true, Disks: true}},
		{"24.8.4.13", withDeletes, Capabilities{Version: "24.8.4.13", Major: 24, Minor: 8, TableUUIDs: true, DatabaseUUIDs: true, OptimizeOnInsert: true, RestoreReplica: true, DefaultReplicatedArgs: true, FreezeWithName: true, PartHashes: true, TableDataPaths: true, Disks: true, LightweightDeletes: true, FormatRow: true}},
		// 25.5 is the first to hash a NULL inside a tuple (TupleHash), which no system table tells.
		{"25.4.1.1", withDeletes, Capabilities{Version: "25.4.1.1", Major: 25, Minor: 4, TableUUIDs: true, DatabaseUUIDs: true, OptimizeOnInsert: true, RestoreReplica: true, DefaultReplicatedArgs: true, FreezeWithName: true, PartHashes: true, TableDataPaths: true, Disks: true, LightweightDeletes: true, FormatRow: true}},
		{"25.5.1.1", withDeletes, Capabilities{Version: "25.5.1.1", Major: 25, Minor: 5, TableUUIDs: true, DatabaseUUIDs: true, OptimizeOnInsert: true, RestoreReplica: true, DefaultReplicatedArgs: true, FreezeWithName: true, PartHashes: true, TableDataPaths: true, Disks: true, LightweightDeletes: true, FormatRow: true, TupleHash: true}},
		{"25.8.1.1", withPatches, Capabilities{Version: "25.8.1.1", Major: 25, Minor: 8, TableUUIDs: true, DatabaseUUIDs: true, OptimizeOnInsert: true, RestoreReplica: true, DefaultReplicatedArgs: true, FreezeWithName: true, PartHashes: true, TableDataPaths: true, Disks: true, LightweightDeletes: true, FormatRow: true, TupleHash: true, PatchParts: true}},
	}
	for _, tt := range tests {
		if got := capabilitiesFor(tt.version, tt.columns); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.version, got, tt.want)
		}
	}
}

func TestDependencies(t *testing.T) {
	tests := []struct {
		create, engine string
		want           []string
	}{
		{"CREATE MATERIALIZED VIEW default.project_environments_traces_mv TO default.project_environments (`project_id` String) AS SELECT project_id, groupUniqArrayState(environment) AS environments FROM default.traces GROUP BY project_id",
			"MaterializedView", []string{"default.project_environments", "default.traces"}},
		{"CREATE VIEW default.analytics_traces AS SELECT project_id FROM default.traces AS t LEFT JOIN default.scores AS s ON t.id = s.trace_id", "View",
			[]string{"default.scores", "default.traces"}},
		{"CREATE TABLE default.traces (`id` String) ENGINE = ReplicatedReplacingMergeTree('/p', '{replica}', event_ts) ORDER BY id", "ReplicatedReplacingMergeTree", nil},
	}
	for _, tt := range tests {
		got := dependencies(Table{Database: "default", Name: "x", Engine: tt.engine, Create: tt.create})
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: got %v, want %v", tt.create[:40], got, tt.want)
		}
	}
}

func TestRestoreOrderPutsDependenciesFirst(t *testing.T) {
	tables := []Table{
		{Database: "d", Name: "a_mv", Engine: "MaterializedView", DependsOn: []string{"d.target", "d.src"}},
		{Database: "d", Name: "b_view", Engine: "View", DependsOn: []string{"d.a_mv"}},
		{Database: "d", Name: "target", Engine: "ReplicatedAggregatingMergeTree"},
		{Database: "d", Name: "src", Engine: "ReplicatedReplacingMergeTree"},
		{Database: "d", Name: "log", Engine: "MergeTree"},
	}
	var got []string
	for _, t := range RestoreOrder(tables) {
		got = append(got, t.Name)
	}
	if want := "[log src target a_mv b_view]"; fmt.Sprint(got) != want {
		t.Errorf("order %v, want %s", got, want)
	}
}

func TestFilter(t *testing.T) {
	f := Filter{Databases: []string{"default", "lf_*"}, Include: []string{"*.*"}, Exclude: []string{"*.tmp_*"}}
	tests := []struct {
		db, table string
		want      bool
	}{
		{"default", "traces", true},
		{"lf_eu", "scores", true},
		{"default", "tmp_import", false},
		{"system", "parts", false},
		{"other", "traces", false},
	}
	for _, tt := range tests {
		if got := f.Matches(tt.db, tt.table); got != tt.want {
			t.Errorf("%s.%s: %v, want %v", tt.db, tt.table, got, tt.want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	rep := Table{Database: "default", Name: "traces", Engine: "ReplicatedReplacingMergeTree"}
	local := Table{Database: "default", Name: "event_log", Engine: "MergeTree"}
	cols := []string{"id String", "timestamp DateTime"}
	p := Partition{ID: "202605", Parts: []string{"202605_0_5_1", "202605_6_6_0"}, Rows: 100, visible: 100, content: []string{"202605_0_5_1 8f1c", "202605_6_6_0 9e2d"}}
	base := Fingerprint(rep, cols, p, "a:1")
	tests := []struct {
		name  string
		fp    string
		equal bool
	}{
		{"replicated table, other replica", Fingerprint(rep, cols, p, "b:1"), true},
		{"new part", Fingerprint(rep, cols, Partition{ID: "202605", Parts: []string{"202605_0_6_2"}, Rows: 100}, "a:1"), false},
		{"added column", Fingerprint(rep, append(cols, "env String"), p, "a:1"), false},
		{"replicated table, parts written at another time", Fingerprint(rep, cols, withPartition(p, func(p *Partition) { p.written = 1 }), "a:1"), true},
		// A table dropped and re-created, loaded alike: same part names and rows.
		{"re-created: other UUID", Fingerprint(withTable(rep, func(t *Table) { t.UUID = "5f2e9c1a-3b4d-4e6f-8a9b-0c1d2e3f4a5b" }), cols, p, "a:1"), false},
		{"re-created: other replication group", Fingerprint(withTable(rep, func(t *Table) { t.incarnation = "5801" }), cols, p, "a:1"), false},
		{"re-created: other create statement", Fingerprint(withTable(rep, func(t *Table) { t.Create = "CREATE TABLE default.traces (x UInt8) ENGINE = Memory" }), cols, p, "a:1"), false},
		{"other part contents", Fingerprint(rep, cols, withPartition(p, func(p *Partition) { p.content = []string{"202605_0_5_1 8f1c", "202605_6_6_0 77aa"} }), "a:1"), false},
		// A reused object is trusted to hold the rows a SELECT of its listing returns: a count
		// that differs (a lightweight delete, or a dying server's wrong answer) is another object.
		{"fewer rows visible", Fingerprint(rep, cols, withPartition(p, func(p *Partition) { p.visible = 90 }), "a:1"), false},
		{"no row visible", Fingerprint(rep, cols, withPartition(p, func(p *Partition) { p.visible = 0 }), "a:1"), false},
	}
	for _, tt := range tests {
		if (tt.fp == base) != tt.equal {
			t.Errorf("%s: equal = %v, want %v", tt.name, tt.fp == base, tt.equal)
		}
	}
	if Fingerprint(local, cols, p, "a:1") == Fingerprint(local, cols, p, "b:1") {
		t.Error("a local table's parts are per server: the fingerprint must include the replica")
	}
	if Fingerprint(local, cols, p, "a:1") == Fingerprint(local, cols, withPartition(p, func(p *Partition) { p.written = 1 }), "a:1") {
		t.Error("a local table's parts written at another time: the fingerprint must differ")
	}
}

func withPartition(p Partition, f func(*Partition)) Partition {
	p.content = append([]string(nil), p.content...)
	f(&p)
	return p
}

func withTable(t Table, f func(*Table)) Table { f(&t); return t }

func TestContentKinds(t *testing.T) {
	old := Capabilities{}
	tsv := Capabilities{FormatRow: true}
	tuple := Capabilities{FormatRow: true, TupleHash: true}
	tests := []struct {
		name     string
		a, b     Capabilities
		want     string
		wantSome bool
	}{
		{"both hash tuples", tuple, tuple, ContentTuple, true},
		{"one formats rows only", tuple, tsv, ContentTSV, true},
		{"the other way round", tsv, tuple, ContentTSV, true},
		{"18.16 on one side", old, tuple, "", false},
	}
	for _, tt := range tests {
		if got, ok := CommonContentKind(tt.a, tt.b); got != tt.want || ok != tt.wantSome {
			t.Errorf("%s: %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.wantSome)
		}
	}
	if k, ok := tuple.ContentKind(); k != ContentTuple || !ok {
		t.Errorf("a 25.5+ server records %q, %v; want the tuple hash", k, ok)
	}
	if tsv.Sums(ContentTuple) || !tuple.Sums(ContentTSV) || old.Sums(ContentTSV) {
		t.Error("Sums: a server computes a kind only with what it needs")
	}
}
