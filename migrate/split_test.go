package migrate

import (
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"two statements", "CREATE TABLE a (x Int8);\nCREATE TABLE b (y Int8);\n", []string{"CREATE TABLE a (x Int8)", "CREATE TABLE b (y Int8)"}},
		{"no trailing semicolon", "SELECT 1", []string{"SELECT 1"}},
		{"semicolon in single-quoted string", "INSERT INTO t VALUES ('a;b'); SELECT 2", []string{"INSERT INTO t VALUES ('a;b')", "SELECT 2"}},
		{"escaped quote in string", `SELECT 'it\'s;'; SELECT 'x''y;z'`, []string{`SELECT 'it\'s;'`, `SELECT 'x''y;z'`}},
		{"quoted identifiers", "SELECT `a;b`, \"c;d\" FROM t; SELECT 3", []string{"SELECT `a;b`, \"c;d\" FROM t", "SELECT 3"}},
		{"line comment", "SELECT 1; -- not; a statement\nSELECT 2", []string{"SELECT 1", "-- not; a statement\nSELECT 2"}},
		{"block comment", "SELECT /* ; */ 1; /* only; a comment */", []string{"SELECT /* ; */ 1"}},
		{"dollar-quoted body", "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql; SELECT $1", []string{"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql", "SELECT $1"}},
		{"tagged dollar quote", "DO $body$ BEGIN PERFORM 1; END $body$; SELECT 4", []string{"DO $body$ BEGIN PERFORM 1; END $body$", "SELECT 4"}},
		{"empty statements dropped", ";;\n  ;SELECT 5;;", []string{"SELECT 5"}},
		{"empty file", "  \n-- nothing\n", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, s := range Split(tt.in) {
			got = append(got, s.SQL)
			if tt.in[s.Offset:s.Offset+len(s.SQL)] != s.SQL {
				t.Errorf("%s: offset %d does not point at %q", tt.name, s.Offset, s.SQL)
			}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Split(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestExpand(t *testing.T) {
	tests := []struct{ in, cluster, database, want string }{
		{"CREATE TABLE t {{cluster}} (x Int8)", "default", "", "CREATE TABLE t ON CLUSTER default (x Int8)"},
		{"CREATE TABLE t {{cluster}} (x Int8)", "", "", "CREATE TABLE t  (x Int8)"},
		{"ALTER TABLE a {{cluster}} ADD COLUMN y Int8; ALTER TABLE b {{cluster}} DROP COLUMN z", "c1", "",
			"ALTER TABLE a ON CLUSTER c1 ADD COLUMN y Int8; ALTER TABLE b ON CLUSTER c1 DROP COLUMN z"},
		{"CREATE TABLE t {{cluster}} (x Int8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{{database}}/t', '{replica}')", "default", "langfuse",
			"CREATE TABLE t ON CLUSTER default (x Int8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/langfuse/t', '{replica}')"},
		{"CREATE TABLE a ENGINE = X('/p/{{database}}/a'); CREATE TABLE b ENGINE = X('/p/{{database}}/b')", "", "d1",
			"CREATE TABLE a ENGINE = X('/p/d1/a'); CREATE TABLE b ENGINE = X('/p/d1/b')"},
		// No database: the placeholder stays for the server to reject (ClickHouse: "No macro {database").
		{"ENGINE = X('/p/{{database}}/a')", "", "", "ENGINE = X('/p/{{database}}/a')"},
	}
	for _, tt := range tests {
		if got := Expand(tt.in, tt.cluster, tt.database); got != tt.want {
			t.Errorf("Expand(%q, %q, %q) = %q, want %q", tt.in, tt.cluster, tt.database, got, tt.want)
		}
	}
}
