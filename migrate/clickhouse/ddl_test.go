package clickhouse

import (
	"reflect"
	"testing"

	chsnap "github.com/tracevault/tracevault/snapshot/clickhouse"
)

// TestTableDDL covers the three shapes of schema_migrations. The modern-server case is a
// fixture test: ClickHouse 18.16 rejects golang-migrate's bare ReplicatedMergeTree, so the
// statement for servers that accept it is checked as a string, against golang-migrate v4's
// (whitespace normalized).
func TestTableDDL(t *testing.T) {
	modern := chsnap.Capabilities{Version: "24.8.4.13", Major: 24, Minor: 8, DefaultReplicatedArgs: true}
	old := chsnap.Capabilities{Version: "18.16.1", Major: 18, Minor: 16}
	tests := []struct {
		name    string
		cluster string
		caps    chsnap.Capabilities
		want    string
	}{
		{"fixture test: modern server, golang-migrate's exact cluster DDL", "default", modern,
			"CREATE TABLE schema_migrations ON CLUSTER default (version Int64, dirty UInt8, sequence UInt64) Engine=ReplicatedMergeTree ORDER BY sequence"},
		{"18.16 needs an explicit path and replica", "default", old,
			"CREATE TABLE `db1`.schema_migrations ON CLUSTER default (version Int64, dirty UInt8, sequence UInt64) Engine=ReplicatedMergeTree('/clickhouse/tables/{shard}/db1/schema_migrations', '{replica}') ORDER BY sequence"},
		{"no cluster: golang-migrate's MergeTree form, which backups keep", "", old,
			"CREATE TABLE schema_migrations (version Int64, dirty UInt8, sequence UInt64) Engine=MergeTree ORDER BY sequence"},
	}
	for _, tt := range tests {
		if got := tableDDL("db1", migrationsTable, migrationsColumns, tt.cluster, tt.caps); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestTouchedTables(t *testing.T) {
	got := touchedTables([]string{
		"CREATE TABLE IF NOT EXISTS traces ON CLUSTER default (id String) ENGINE = Memory",
		"ALTER TABLE `other`.`scores` ON CLUSTER default ADD COLUMN x UInt8",
		"CREATE MATERIALIZED VIEW db.mv TO db.target AS SELECT 1",
		"RENAME TABLE db.a TO db.b",
		"INSERT INTO db.ignored VALUES (1)",
		"ALTER TABLE traces DROP COLUMN y",
	}, "db")
	want := []tableRef{{"db", "traces"}, {"other", "scores"}, {"db", "mv"}, {"db", "a"}, {"db", "b"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("touchedTables = %v, want %v", got, want)
	}
}
