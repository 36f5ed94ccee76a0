package postgres

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckDumpVersion(t *testing.T) {
	for _, tc := range []struct {
		dump, server int
		wantErr      string
	}{
		{15, 15, ""},
		{17, 15, ""},
		{14, 15, "install postgresql-client-15"},
	} {
		err := checkDumpVersion(tc.dump, "pg_dump (PostgreSQL) x", tc.server)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("checkDumpVersion(%d, %d) = %v, want %q", tc.dump, tc.server, err, tc.wantErr)
		}
	}
	if m := pgDumpVersion.FindStringSubmatch("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"); m == nil || m[1] != "15" {
		t.Errorf("version of a Debian pg_dump: %v", m)
	}
}

// A pg_dump 15.18 post-data script, shortened: \restrict pair, preamble settings, a setting
// written between entries for the entries after it.
const postData = `--
-- PostgreSQL database dump
--

\restrict KEY1

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

SET default_tablespace = '';

--
-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: u
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_pkey PRIMARY KEY (id);


SET default_tablespace = fast;

--
-- Name: t_x_idx; Type: INDEX; Schema: public; Owner: u
--

CREATE INDEX t_x_idx ON public.t USING btree (x);


--
-- Name: c c_t_fkey; Type: FK CONSTRAINT; Schema: public; Owner: u
--

ALTER TABLE ONLY public.c
    ADD CONSTRAINT c_t_fkey FOREIGN KEY (t_id) REFERENCES public.t(id);


--
-- PostgreSQL database dump complete
--

\unrestrict KEY1
`

func TestScriptSplit(t *testing.T) {
	sql, err := scriptSQL(strings.NewReader(postData))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sql, `\restrict`) || strings.Contains(sql, `\unrestrict`) {
		t.Fatalf("meta-commands left in:\n%s", sql)
	}
	entries := splitScript(sql)
	want := []struct{ typ, tablespace, stmt string }{
		{"CONSTRAINT", "SET default_tablespace = '';", "ALTER TABLE ONLY public.t"},
		{"INDEX", "SET default_tablespace = fast;", "CREATE INDEX t_x_idx ON public.t USING btree (x);"},
		{"FK CONSTRAINT", "SET default_tablespace = fast;", "ALTER TABLE ONLY public.c"},
	}
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(entries), len(want), entries)
	}
	for i, w := range want {
		e := entries[i]
		if e.Type != w.typ || !strings.Contains(e.SQL, w.tablespace) || statementOf(e.SQL) != w.stmt ||
			!strings.Contains(e.SQL, "set_config('search_path', '', false)") || strings.Count(e.SQL, "default_tablespace") != 1 {
			t.Errorf("entry %d = %q %q, want type %s with %s and search_path, statement %q", i, e.Type, e.SQL, w.typ, w.tablespace, w.stmt)
		}
	}
}

func TestTablesGlob(t *testing.T) {
	users := &TableRecord{Table: Table{Schema: "public", Name: "users"}}
	part := &TableRecord{Table: Table{Schema: "public", Name: "events_2026_05", Parent: "public.events"}}
	other := &TableRecord{Table: Table{Schema: "audit", Name: "users"}}
	for _, tc := range []struct {
		globs []string
		t     *TableRecord
		want  bool
	}{
		{[]string{"public.users"}, users, true},
		{[]string{"public.users"}, other, false},
		{[]string{"users"}, other, true}, // a bare glob matches the table in any schema
		{[]string{"public.*"}, users, true},
		{[]string{"public.*"}, other, false},
		{[]string{"public.events"}, part, true}, // a partitioned table takes its partitions
		{[]string{"events_2026_*"}, part, true},
		{[]string{"public.event"}, part, false},
		{[]string{"api_keys", "us*"}, users, true},
	} {
		if got := matches(tc.globs, tc.t); got != tc.want {
			t.Errorf("matches(%v, %s) = %v, want %v", tc.globs, tc.t.FullName(), got, tc.want)
		}
	}
}

func TestStagingNameStaysValid(t *testing.T) {
	for _, db := range []string{"langfuse", strings.Repeat("é", 30), strings.Repeat("x", 39) + "日本"} {
		got := stagingName(db)
		if !utf8.ValidString(got) || len(got) > 63 || !strings.Contains(got, "__tvrestore_") {
			t.Errorf("stagingName(%q) = %q: not valid UTF-8, longer than PostgreSQL's 63 bytes, or unmarked", db, got)
		}
	}
}
