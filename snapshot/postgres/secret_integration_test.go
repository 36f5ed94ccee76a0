package postgres

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
)

// secretRole creates a login role whose password holds every character a DSN has to escape,
// dropped after the test. The stack's pg_hba asks for scram-sha-256 over TCP, so a backup as
// this role succeeds only if the password really reached the server and pg_dump.
func secretRole(t *testing.T, env *devstack.Env) (role, password string) {
	t.Helper()
	role = devstack.ScratchName("tv_secret")
	password = `p@ss:w/rd ?&=#%'\x-` + role
	admin := dial(t, env.PGDSN)
	exec1(t, admin, fmt.Sprintf("CREATE ROLE %s LOGIN SUPERUSER PASSWORD %s", Ident(role), literal(password)))
	t.Cleanup(func() {
		c := dial(t, env.PGDSN)
		_, _ = c.Exec(testContext(t), "DROP ROLE IF EXISTS "+Ident(role))
	})
	return role, password
}

// spy writes an executable standing in for pg_dump: it appends its own command line, as ps
// shows it (/proc/PID/cmdline), to log, then runs the real pg_dump, or, with fail, prints the
// password it was handed to stderr and exits 1, as a client that echoes its connection would.
func spy(t *testing.T, log string, fail bool) string {
	t.Helper()
	real, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Fatalf("pg_dump not installed: %v", err)
	}
	tail := fmt.Sprintf("exec %q \"$@\"", real)
	if fail {
		tail = fmt.Sprintf(`[ "$1" = --version ] && exec %q --version
echo "pg_dump: error: connection with password $PGPASSWORD failed" >&2; exit 1`, real)
	}
	script := fmt.Sprintf("#!/bin/sh\ntr '\\0' ' ' </proc/$$/cmdline >>%q\necho >>%q\n%s\n", log, log, tail)
	path := filepath.Join(t.TempDir(), "pg_dump")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPasswordNeverInArgv: a password given in the DSN, in any of the three places libpq
// takes it from, reaches pg_dump through its environment, never its command line, and a
// failing pg_dump that prints it does not carry it into the error, the run record or a log line.
func TestPasswordNeverInArgv(t *testing.T) {
	env := devstack.Require(t)
	base, err := url.Parse(dsnFor(t, env.PGDSN, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	role, password := secretRole(t, env)
	db := devstack.ScratchName("it_pg_secret")
	admin := dial(t, env.PGDSN)
	exec1(t, admin, "CREATE DATABASE "+Ident(db)+" OWNER "+Ident(role))
	dropAfter(t, env, db)
	exec1(t, dial(t, dsnFor(t, env.PGDSN, db)), "CREATE TABLE public.t (id int PRIMARY KEY, note text); INSERT INTO public.t VALUES (1, 'x')")

	userInfo := *base
	userInfo.User, userInfo.Path = url.UserPassword(role, password), "/"+db
	query := *base
	query.User, query.Path = url.User(role), "/"+db
	// libpq and pgx percent-decode a query value but keep '+' as is.
	query.RawQuery += "&password=" + strings.ReplaceAll(url.QueryEscape(password), "+", "%20")
	keyword := fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable password='%s'", base.Hostname(), base.Port(), role, db,
		strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(password))

	for _, tc := range []struct{ name, dsn string }{
		{"user info", userInfo.String()},
		{"query parameter", query.String()},
		{"keyword/value", keyword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forms := []string{password, url.QueryEscape(password), url.PathEscape(password)}
			argv := filepath.Join(t.TempDir(), "argv")
			repo := openRepo(t)
			m, err := backup(t, repo, &Source{DSN: tc.dsn, PGDump: spy(t, argv, false)})
			if err != nil {
				t.Fatalf("backup as a role with a password: %v", err)
			}
			if _, err := ReadSection(m); err != nil {
				t.Fatal(err)
			}
			seen, err := os.ReadFile(argv)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(seen), "--section=pre-data") || !strings.Contains(string(seen), "--dbname=") {
				t.Fatalf("the spy did not see the pg_dump runs: %q", seen)
			}
			for _, f := range forms {
				if strings.Contains(string(seen), f) {
					t.Errorf("the password is on pg_dump's command line: %q", seen)
				}
			}

			var logged bytes.Buffer
			src := &Source{DSN: tc.dsn, PGDump: spy(t, filepath.Join(t.TempDir(), "argv"), true), Log: slog.New(slog.NewTextHandler(&logged, nil))}
			m, err = backup(t, openRepo(t), src)
			if err == nil || m == nil {
				t.Fatalf("a failing pg_dump did not fail the backup with a partial record: %v", err)
			}
			if !strings.Contains(err.Error(), "connection with password xxxxx failed") {
				t.Errorf("the error lost pg_dump's message or was not scrubbed: %v", err)
			}
			for _, f := range forms {
				for what, text := range map[string]string{"error": err.Error(), "run record": m.Error, "log": logged.String()} {
					if strings.Contains(text, f) {
						t.Errorf("the password is in the %s: %s", what, text)
					}
				}
			}
		})
	}
}
