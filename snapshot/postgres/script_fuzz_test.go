package postgres

import (
	"strings"
	"testing"
)

// FuzzScript: pg_dump scripts come from the repository, so their parsers must hold for any
// text. scriptSQL drops the \restrict/\unrestrict lines of its key and nothing else; splitScript
// loses no statement line (every line that is neither blank, a comment nor a setting pg_dump
// emits ends up in an entry, in order); and every entry holds a statement.
func FuzzScript(f *testing.F) {
	f.Add(postData)
	f.Add("\\restrict k\nSET lock_timeout = 0;\n-- Name: t; Type: TABLE; Schema: public; Owner: u\nCREATE TABLE t ();\n\\unrestrict k\n")
	f.Add("\\restrict a\n\\unrestrict b\n\\unrestrict a\nSELECT 1;\n")
	f.Add("-- Name: x; Type: INDEX; Schema: \n-- only a comment\n")
	f.Fuzz(func(t *testing.T, script string) {
		sql, err := scriptSQL(strings.NewReader(script))
		if err != nil {
			return
		}
		lines := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		}
		in, out := lines(script), lines(sql)
		var dropped []string
		j := 0
		for _, line := range in {
			// bufio.ScanLines drops a line's trailing \r.
			if j < len(out) && out[j] == strings.TrimSuffix(line, "\r") {
				j++
				continue
			}
			dropped = append(dropped, line)
		}
		if j != len(out) {
			t.Fatalf("scriptSQL changed more than the \\restrict pair: dropped %q", dropped)
		}
		for _, d := range dropped {
			if !strings.HasPrefix(d, `\restrict `) && !strings.HasPrefix(d, `\unrestrict `) {
				t.Fatalf("scriptSQL dropped %q", d)
			}
		}

		entries := splitScript(sql)
		var joined strings.Builder
		for i, e := range entries {
			if strings.TrimSpace(stripComments(e.SQL)) == "" {
				t.Fatalf("entry %d holds no statement: %q", i, e.SQL)
			}
			_ = statementOf(e.SQL)
			joined.WriteString(e.SQL)
		}
		rest := joined.String()
		for _, line := range strings.Split(sql, "\n") {
			if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "--") || dumpSetting.MatchString(line) {
				continue
			}
			k := strings.Index(rest, line)
			if k < 0 {
				t.Fatalf("line %q of the script is in no entry", line)
			}
			rest = rest[k+len(line):]
		}
	})
}
