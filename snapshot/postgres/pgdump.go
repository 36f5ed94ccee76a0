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
func dumpSection(ctx context.Context, pgDump, dsn, section, snapshotID string, exclude []string, w io.Writer) error {
	clean, password := splitPassword(dsn)
	args := []string{"--schema-only", "--section=" + section, "--snapshot=" + snapshotID, "--no-password"}
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
		return fmt.Errorf("pg_dump --section=%s: %w: %s", section, err, strings.TrimSpace(stderr.String()))
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
