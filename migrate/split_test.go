package migrate

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	const (
		ch = ClickHouse
		pg = PostgreSQL
	)
	tests := []struct {
		name string
		d    Dialect
		in   string
		want []string
	}{
		{"two statements", ch, "CREATE TABLE a (x Int8);\nCREATE TABLE b (y Int8);\n", []string{"CREATE TABLE a (x Int8)", "CREATE TABLE b (y Int8)"}},
		{"no trailing semicolon", ch, "SELECT 1", []string{"SELECT 1"}},
		{"semicolon in single-quoted string", ch, "INSERT INTO t VALUES ('a;b'); SELECT 2", []string{"INSERT INTO t VALUES ('a;b')", "SELECT 2"}},
		{"escaped quote in string", ch, `SELECT 'it\'s;'; SELECT 'x''y;z'`, []string{`SELECT 'it\'s;'`, `SELECT 'x''y;z'`}},
		{"quoted identifiers", ch, "SELECT `a;b`, \"c;d\" FROM t; SELECT 3", []string{"SELECT `a;b`, \"c;d\" FROM t", "SELECT 3"}},
		{"line comment", ch, "SELECT 1; -- not; a statement\nSELECT 2", []string{"SELECT 1", "-- not; a statement\nSELECT 2"}},
		{"block comment", ch, "SELECT /* ; */ 1; /* only; a comment */", []string{"SELECT /* ; */ 1"}},
		{"dollar-quoted body", ch, "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql; SELECT $1", []string{"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql", "SELECT $1"}},
		{"tagged dollar quote", ch, "DO $body$ BEGIN PERFORM 1; END $body$; SELECT 4", []string{"DO $body$ BEGIN PERFORM 1; END $body$", "SELECT 4"}},
		{"empty statements dropped", ch, ";;\n  ;SELECT 5;;", []string{"SELECT 5"}},
		{"empty file", ch, "  \n-- nothing\n", nil},
		// ClickHouse 18.16 ends a block comment at the first */, nested or not.
		{"clickhouse comments do not nest", ch, "SELECT /* a /* b */ 1; SELECT 2", []string{"SELECT /* a /* b */ 1", "SELECT 2"}},

		{"pg: backslash is plain in a standard string", pg, `INSERT INTO p VALUES ('C:\'); SELECT 2`, []string{`INSERT INTO p VALUES ('C:\')`, "SELECT 2"}},
		{"pg: E string escapes a quote", pg, `SELECT E'it\'s; fine'; SELECT 2`, []string{`SELECT E'it\'s; fine'`, "SELECT 2"}},
		{"pg: e string, escaped backslash then end", pg, `SELECT e'a\\'; SELECT 2`, []string{`SELECT e'a\\'`, "SELECT 2"}},
		{"pg: E string with a doubled quote", pg, `SELECT E'a''b;'; SELECT 2`, []string{`SELECT E'a''b;'`, "SELECT 2"}},
		{"pg: a word ending in E is no E string", pg, `SELECT namE'x\'; SELECT 2`, []string{`SELECT namE'x\'`, "SELECT 2"}},
		{"pg: U& string is standard", pg, `SELECT U&'d\0061t\'; SELECT 2`, []string{`SELECT U&'d\0061t\'`, "SELECT 2"}},
		{"pg: nested block comments", pg, "/* outer /* inner; */ still comment; */ SELECT 1; SELECT 2", []string{"/* outer /* inner; */ still comment; */ SELECT 1", "SELECT 2"}},
		{"pg: only a nested comment", pg, "SELECT 1; /* a /* b; */ c; */", []string{"SELECT 1"}},
		{"pg: quoted identifier doubles its quote", pg, `SELECT "a;""b\"; SELECT 2`, []string{`SELECT "a;""b\"`, "SELECT 2"}},
		{"pg: tagged dollar quote holding other dollars", pg, "SELECT $fn$ a; $$ b; $x$ c; $fn$; SELECT 2", []string{"SELECT $fn$ a; $$ b; $x$ c; $fn$", "SELECT 2"}},
		{"pg: function body with a string", pg, "CREATE FUNCTION f() RETURNS text AS $$ SELECT 'x;'; $$ LANGUAGE sql; SELECT 2", []string{"CREATE FUNCTION f() RETURNS text AS $$ SELECT 'x;'; $$ LANGUAGE sql", "SELECT 2"}},
		{"pg: dollar inside an identifier opens nothing", pg, "SELECT a$b$c FROM t; SELECT 2; SELECT $b$;$b$", []string{"SELECT a$b$c FROM t", "SELECT 2", "SELECT $b$;$b$"}},
		{"pg: backtick is no quote", pg, "SELECT `a;b`", []string{"SELECT `a", "b`"}},
		{"only ASCII whitespace is trimmed", ch, "\u00a0SELECT 1\u0085; \u0085\x85", []string{"\u00a0SELECT 1\u0085", "\u0085\x85"}},
		{"pg: parameters", pg, "PREPARE p AS SELECT $1; EXECUTE p(1)", []string{"PREPARE p AS SELECT $1", "EXECUTE p(1)"}},
	}
	for _, tt := range tests {
		var got []string
		for _, s := range Split(tt.in, tt.d) {
			got = append(got, s.SQL)
			if tt.in[s.Offset:s.Offset+len(s.SQL)] != s.SQL {
				t.Errorf("%s: offset %d does not point at %q", tt.name, s.Offset, s.SQL)
			}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Split(%q, %s) = %q, want %q", tt.name, tt.in, tt.d, got, tt.want)
		}
	}
}

// FuzzSplit: for any file, in either dialect, statements point at their text in order and
// without overlap, what lies between them is only separators and comments (nothing of the
// file is lost), and joining the statements again splits into the same statements.
func FuzzSplit(f *testing.F) {
	for _, seed := range []string{
		"CREATE TABLE a (x Int8);\nCREATE TABLE b (y Int8);",
		`SELECT 'it\'s;'; SELECT 'x''y;z'; SELECT E'\'' ; SELECT e'\\'`,
		"SELECT `a;b`, \"c;\"\"d\" FROM t; -- c;\n/* x; /* y; */ z; */ SELECT 2",
		"DO $body$ BEGIN PERFORM 1; END $body$; SELECT $1; SELECT a$b$c; $$;$$",
		"/* unterminated ; ",
		"'unterminated ; ",
		"$tag$ unterminated ;",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, sql string, postgres bool) {
		d := ClickHouse
		if postgres {
			d = PostgreSQL
		}
		stmts := Split(sql, d)
		end := 0
		var texts []string
		for i, s := range stmts {
			if s.SQL == "" || s.Offset < end || s.Offset+len(s.SQL) > len(sql) || sql[s.Offset:s.Offset+len(s.SQL)] != s.SQL {
				t.Fatalf("statement %d %q at %d: empty, overlapping or not the file's text (previous ended at %d)", i, s.SQL, s.Offset, end)
			}
			if gap := sql[end:s.Offset]; !separators(gap, d) {
				t.Fatalf("text %q before statement %d is lost: not only separators and comments", gap, i)
			}
			end = s.Offset + len(s.SQL)
			texts = append(texts, s.SQL)
		}
		if !separators(sql[end:], d) {
			t.Fatalf("trailing text %q is lost", sql[end:])
		}
		var again []string
		for _, s := range Split(strings.Join(texts, "\n;\n"), d) {
			again = append(again, s.SQL)
		}
		if !reflect.DeepEqual(again, texts) {
			t.Fatalf("joined and split again: %q, want %q", again, texts)
		}
	})
}

// separators reports whether text holds only whitespace, ';' and comments.
func separators(text string, d Dialect) bool { return len(Split(text, d)) == 0 }
