package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func openRepo(t testing.TB) *store.Repository {
	t.Helper()
	repo, err := store.Open(testContext(t), store.Options{URL: "file://" + t.TempDir(), Log: quiet})
	if err != nil {
		t.Fatalf("open repository: %v", err)
	}
	return repo
}

// seededDatabase is a scratch copy of the demo's PostgreSQL data, dropped after the test.
func seededDatabase(t testing.TB, env *devstack.Env) string {
	t.Helper()
	dsn := env.PGDatabase(t, "it_pg")
	if _, err := demo.Seed(testContext(t), demo.Options{PostgresDSN: dsn, Traces: 2000, Seed: 7}); err != nil {
		t.Fatalf("seed demo postgres: %v", err)
	}
	return dsn
}

func dial(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testContext(t), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec1(t testing.TB, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.PgConn().Exec(testContext(t), sql).ReadAll(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func backup(t testing.TB, repo *store.Repository, src *Source) (*store.Manifest, error) {
	t.Helper()
	if src.Log == nil {
		src.Log = quiet
	}
	return snapshot.Run(testContext(t), repo, []snapshot.Source{src}, snapshot.Options{Log: quiet})
}

// dropAfter drops a database a restore may create.
func dropAfter(t testing.TB, env *devstack.Env, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, env.PGDSN); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+Ident(name)+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
}

func restore(t testing.TB, repo *store.Repository, m *store.Manifest, o RestoreOptions) (*Plan, error) {
	t.Helper()
	if o.Log == nil {
		o.Log = quiet
	}
	r := NewRestorer(o)
	plan, err := r.Plan(testContext(t), m)
	if err != nil {
		return nil, err
	}
	return plan, r.Execute(testContext(t), repo, plan, nil)
}

// checksums computes md5(string_agg(row::text ORDER BY row::text)) of every table of schema
// public in q's snapshot.
func checksums(t testing.TB, q querier) map[string]string {
	t.Helper()
	ctx := testContext(t)
	tables, err := catalogReader{q: q, schemas: []string{"public"}}.tables(ctx)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	out := map[string]string{}
	for _, tb := range tables {
		var sum string
		sql := fmt.Sprintf("SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') || ':' || count(*) FROM ONLY %s t", Ident(tb.Schema, tb.Name))
		if err := q.QueryRow(ctx, sql).Scan(&sum); err != nil {
			t.Fatalf("checksum %s: %v", tb.FullName(), err)
		}
		out[tb.FullName()] = sum
	}
	return out
}

func diffMaps(want, got map[string]string) []string {
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: want %s, got %s", k, v, got[k]))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected table", k))
		}
	}
	return diffs
}

// schemaOf is pg_dump --schema-only of a database, without the random \restrict key lines.
func schemaOf(t testing.TB, dsn string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(testContext(t), "pg_dump", append([]string{"--schema-only", "--dbname=" + dsn}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("pg_dump --schema-only: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("pg_dump --schema-only: %v", err)
	}
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, `\restrict `) && !strings.HasPrefix(line, `\unrestrict `) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

func dsnFor(t testing.TB, dsn, db string) string {
	t.Helper()
	out, err := withDatabase(dsn, db)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// firstDiff shows where two texts part.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d: %q vs %q", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d lines", len(al), len(bl))
}
