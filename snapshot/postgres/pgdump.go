package postgres

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tracevault/tracevault/snapshot/postgres/pgdsn"
)

var pgDumpVersion = regexp.MustCompile(`\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?`)

// dumpVersion runs `pg_dump --version` and returns its major version and the line it printed.
func dumpVersion(ctx context.Context, pgDump string) (int, string, error) {
	out, err := exec.CommandContext(ctx, pgDump, "--version").Output()
	if err != nil {
		return 0, "", fmt.Errorf("run %s --version: %w; install the PostgreSQL client (apt install postgresql-client) or set [postgres] pg_dump to its path", pgDump, err)
	}
	line := strings.TrimSpace(string(out))
	m := pgDumpVersion.FindStringSubmatch(line)
	if m == nil {
		return 0, line, fmt.Errorf("%s --version printed %q, not a pg_dump version; set [postgres] pg_dump to PostgreSQL's pg_dump", pgDump, line)
	}
	major, _ := strconv.Atoi(m[1])
	return major, line, nil
}

// checkDumpVersion refuses a pg_dump older than the server: it cannot read the newer catalog
// and would write DDL the server's features do not fit.
func checkDumpVersion(dumpMajor int, dumpLine string, serverMajor int) error {
	if dumpMajor >= serverMajor {
		return nil
	}
	return fmt.Errorf("pg_dump is version %d (%s) but the server is PostgreSQL %d: install postgresql-client-%d (or newer) and point [postgres] pg_dump at it, or set [postgres] data_only = true to take a data-only snapshot without the schema", dumpMajor, dumpLine, serverMajor, serverMajor)
}

// dumpSection streams one section of pg_dump's schema-only output, taken in the exported
// snapshot, to w. Schemas outside the selection are excluded rather than the selection
// included, because pg_dump -n also emits CREATE SCHEMA public, which fails on every new
// database, and skips extensions.
func dumpSection(ctx context.Context, pgDump, dsn, section, snapshotID string, exclude []string, lockWait time.Duration, w io.Writer) error {
	clean, password, err := pgdsn.SplitPassword(dsn)
	if err != nil {
		return err
	}
	args := []string{"--schema-only", "--section=" + section, "--snapshot=" + snapshotID, "--no-password",
		fmt.Sprintf("--lock-wait-timeout=%dms", lockWait.Milliseconds())}
	for _, s := range exclude {
		args = append(args, "--exclude-schema="+quotePattern(s))
	}
	args = append(args, "--dbname="+clean)
	cmd := exec.CommandContext(ctx, pgDump, args...)
	cmd.Env = os.Environ()
	if password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+password)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &limited{buf: &stderr, n: 8 << 10}
	if err := cmd.Run(); err != nil {
		msg := pgdsn.Scrub(strings.TrimSpace(stderr.String()), password)
		switch {
		// --lock-wait-timeout is a statement_timeout around pg_dump's LOCK TABLE.
		case strings.Contains(msg, "lock timeout"), strings.Contains(msg, "statement timeout") && strings.Contains(msg, "LOCK TABLE"):
			return fmt.Errorf("pg_dump --section=%s: %w: %s; %s", section, err, msg, givingWay)
		case strings.Contains(msg, "invalid snapshot identifier"):
			return fmt.Errorf("pg_dump --section=%s: %w: %s; %s", section, err, msg, snapshotGone)
		}
		return fmt.Errorf("pg_dump --section=%s: %w: %s", section, err, msg)
	}
	return nil
}

// quotePattern makes a schema name a literal pg_dump pattern: double quotes stop the wildcard
// and case folding.
func quotePattern(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// limited keeps the first n bytes written, so a chatty failure cannot grow memory.
type limited struct {
	buf *bytes.Buffer
	n   int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// scriptSQL turns a pg_dump plain script into SQL a server runs as one simple-protocol
// message. pg_dump 15.14+ wraps its output in \restrict KEY ... \unrestrict KEY, psql
// meta-commands the server does not know; only that pair, with the same key, is dropped (a
// line inside a function body may start with a backslash too).
func scriptSQL(script io.Reader) (string, error) {
	var out strings.Builder
	sc := bufio.NewScanner(script)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	key := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case key == "" && strings.HasPrefix(line, `\restrict `):
			key = strings.TrimPrefix(line, `\restrict `)
			continue
		case key != "" && line == `\unrestrict `+key:
			continue
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.String(), sc.Err()
}

// entry is one object of a pg_dump script, with the session settings pg_dump had in force
// when it wrote it, so it runs the same on any connection.
type entry struct {
	Type string // pg_dump's TOC type: INDEX, CONSTRAINT, FK CONSTRAINT, TRIGGER, ...
	SQL  string
}

var (
	tocHeader = regexp.MustCompile(`^-- (?:Data for )?Name: .*; Type: ([A-Z ]+); Schema: `)
	// Only the settings pg_dump itself emits, one per line; a "SET" line inside a rule body
	// stays part of its statement.
	dumpSetting = regexp.MustCompile(`^(?:SET (statement_timeout|lock_timeout|idle_in_transaction_session_timeout|client_encoding|standard_conforming_strings|check_function_bodies|xmloption|client_min_messages|row_security|default_tablespace|default_table_access_method|default_with_oids) = .*;|SELECT pg_catalog\.set_config\('(search_path)', .*\);)$`)
)

// splitScript cuts a pg_dump plain script (after scriptSQL) at its "-- Name: ...; Type: ..."
// headers. pg_dump writes a SET only when a value changes, for the entries after it; each
// entry here carries every setting in force, so entries can run on separate connections.
func splitScript(sql string) []entry {
	var out []entry
	settings := map[string]string{}
	var order []string
	var cur *entry
	var body strings.Builder
	flush := func() {
		if strings.TrimSpace(stripComments(body.String())) != "" {
			if cur == nil {
				cur = &entry{}
			}
			cur.SQL += body.String()
			out = append(out, *cur)
		}
		body.Reset()
	}
	for _, line := range strings.Split(sql, "\n") {
		if m := dumpSetting.FindStringSubmatch(line); m != nil {
			name := m[1] + m[2]
			if _, ok := settings[name]; !ok {
				order = append(order, name)
			}
			settings[name] = line
			continue
		}
		if m := tocHeader.FindStringSubmatch(line); m != nil {
			flush()
			var pre strings.Builder
			for _, name := range order {
				pre.WriteString(settings[name] + "\n")
			}
			cur = &entry{Type: m[1], SQL: pre.String()}
		}
		body.WriteString(line + "\n")
	}
	flush()
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "--") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// statementOf names an entry in errors: its first line of SQL after settings and header.
func statementOf(sql string) string {
	for _, line := range strings.Split(sql, "\n") {
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "--") && !dumpSetting.MatchString(line) {
			return line
		}
	}
	return ""
}
