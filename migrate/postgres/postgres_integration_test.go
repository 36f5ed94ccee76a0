package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/migrate"
	"github.com/tracevault/tracevault/migrate/internal/gmtest"
)

type scratch struct {
	dsn string
	dir string
}

func newScratch(t *testing.T, files map[string]string) *scratch {
	env := devstack.Require(t)
	s := &scratch{dsn: env.PGDatabase(t, "mig"), dir: t.TempDir()}
	s.write(t, files)
	return s
}

func (s *scratch) write(t *testing.T, files map[string]string) {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *scratch) open(t *testing.T) *Driver {
	t.Helper()
	d, err := Open(context.Background(), s.dsn, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func (s *scratch) runner(t *testing.T, d *Driver) *migrate.Runner {
	t.Helper()
	ms, err := migrate.Load(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	return &migrate.Runner{Driver: d, Migrations: ms, LockWait: time.Minute, Command: "tracevault migrate --target postgres"}
}

// schema lists the columns of the public tables other than the migration tables, and the
// schema_migrations rows.
func schema(t *testing.T, d *Driver) string {
	t.Helper()
	ctx := context.Background()
	rows, err := d.conn.Query(ctx, `SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name NOT IN ('schema_migrations', 'tracevault_migrations') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	rows, err = d.conn.Query(ctx, `SELECT version || '/' || dirty FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(cols, ", ") + " | " + strings.Join(vs, ",")
}

var files = map[string]string{
	"1_users.up.sql":   "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);",
	"1_users.down.sql": "DROP TABLE users;",
	"2_projects.up.sql": `-- a function body holds ';' that must not split the file
CREATE TABLE projects (id bigint PRIMARY KEY, name text DEFAULT 'a;b');
CREATE FUNCTION project_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM projects; $$;`,
	"2_projects.down.sql": "DROP FUNCTION project_count(); DROP TABLE projects;",
	"3_tags.up.sql":       "ALTER TABLE projects ADD COLUMN tags text[];",
	"3_tags.down.sql":     "ALTER TABLE projects DROP COLUMN tags;",
}

// TestUpDownGotoForce: the schema and golang-migrate's single schema_migrations row follow
// every command.
func TestUpDownGotoForce(t *testing.T) {
	s := newScratch(t, files)
	d := s.open(t)
	r := s.runner(t, d)
	ctx := context.Background()
	const all = "projects.id bigint, projects.name text, projects.tags ARRAY, users.email text, users.id bigint"
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"up 1", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "up", N: 1}, nil); return err }, "users.email text, users.id bigint | 1/false"},
		{"up", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); return err }, all + " | 3/false"},
		{"down 1", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "down", N: 1}, nil); return err }, "projects.id bigint, projects.name text, users.email text, users.id bigint | 2/false"},
		{"goto 1", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "goto", Version: 1}, nil); return err }, "users.email text, users.id bigint | 1/false"},
		{"goto 3", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "goto", Version: 3}, nil); return err }, all + " | 3/false"},
		{"force 2", func() error { return r.Force(ctx, 2) }, all + " | 2/false"},
		{"force 3", func() error { return r.Force(ctx, 3) }, all + " | 3/false"},
		{"down", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "down"}, nil); return err }, " | "},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := schema(t, d); got != st.want {
			t.Errorf("%s: schema %q, want %q", st.name, got, st.want)
		}
	}
}

// TestFailureDirtyForceUp: a failing file leaves dirty at its version, with nothing of it
// applied (one transaction), and the guidance; force then up works.
func TestFailureDirtyForceUp(t *testing.T) {
	s := newScratch(t, map[string]string{
		"1_users.up.sql": files["1_users.up.sql"],
		"2_bad.up.sql":   "ALTER TABLE users ADD COLUMN name text;\nALTER TABLE users ADD COLUMN broken no_such_type;",
	})
	d := s.open(t)
	r := s.runner(t, d)
	ctx := context.Background()
	_, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil)
	var de *migrate.DirtyError
	if !errors.As(err, &de) {
		t.Fatalf("up: err = %v, want a DirtyError", err)
	}
	for _, want := range []string{"ADD COLUMN broken no_such_type", `type "no_such_type" does not exist`, "--target postgres force 2", "--target postgres force 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("failure message lacks %q:\n%v", want, err)
		}
	}
	if got := schema(t, d); got != "users.email text, users.id bigint | 2/true" {
		t.Fatalf("after the failure: %q; want users unchanged and 2 dirty", got)
	}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); !errors.As(err, &de) {
		t.Fatalf("up on a dirty database: err = %v, want the dirty refusal", err)
	}
	s.write(t, map[string]string{"2_bad.up.sql": "ALTER TABLE users ADD COLUMN name text;"})
	if err := r.Force(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil {
		t.Fatalf("up after force: %v", err)
	}
	if got := schema(t, d); got != "users.email text, users.id bigint, users.name text | 2/false" {
		t.Errorf("after force and up: %q", got)
	}
}

// TestConcurrentRunnersApplyEachOnce: two sessions start together; the advisory lock lets one
// apply everything, and the other then finds nothing to do.
func TestConcurrentRunnersApplyEachOnce(t *testing.T) {
	s := newScratch(t, map[string]string{
		"1_slow.up.sql": "SELECT pg_sleep(1); CREATE TABLE t1 (x int);",
		"2_slow.up.sql": "SELECT pg_sleep(1); ALTER TABLE t1 ADD COLUMN y int;",
	})
	a, b := s.open(t), s.open(t)
	gmtest.RaceUp(t, s.runner(t, a), s.runner(t, b), 2)
}

// TestLockSharedWithGolangMigrate: the advisory lock key is golang-migrate's, so a session
// holding golang-migrate's lock blocks tracevault, which names it after --lock-wait.
func TestLockSharedWithGolangMigrate(t *testing.T) {
	s := newScratch(t, map[string]string{"1_x.up.sql": "SELECT 1;"})
	other := s.open(t)
	var db string
	if err := other.conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	// What golang-migrate's Lock runs: pg_advisory_lock(GenerateAdvisoryLockId(db, schema, table)).
	if _, err := other.conn.Exec(context.Background(), "SELECT pg_advisory_lock($1)", AdvisoryLockID(db, "public", "schema_migrations")); err != nil {
		t.Fatal(err)
	}
	r := s.runner(t, s.open(t))
	r.LockWait = 500 * time.Millisecond
	_, err := r.Migrate(context.Background(), migrate.Op{Kind: "up"}, nil)
	if !errors.Is(err, migrate.ErrLocked) || !strings.Contains(err.Error(), "postgres backend pid") {
		t.Errorf("while another session holds golang-migrate's lock: err = %v, want ErrLocked naming the backend", err)
	}
}

// TestAdvisoryLockIDMatchesGolangMigrate: the expected ids were printed by golang-migrate
// v4.20.1's own database.GenerateAdvisoryLockId(db, schema, "schema_migrations").
func TestAdvisoryLockIDMatchesGolangMigrate(t *testing.T) {
	tests := []struct {
		db, schema string
		want       int64
	}{{"langfuse", "public", 155039546}, {"other", "app", 776463071}}
	for _, tt := range tests {
		if got := AdvisoryLockID(tt.db, tt.schema, "schema_migrations"); got != tt.want {
			t.Errorf("AdvisoryLockID(%q, %q) = %d, want golang-migrate's %d", tt.db, tt.schema, got, tt.want)
		}
	}
}

// TestDriftReported: status reports an applied file that changed.
func TestDriftReported(t *testing.T) {
	s := newScratch(t, map[string]string{"1_users.up.sql": files["1_users.up.sql"], "2_x.up.sql": "SELECT 1;"})
	d := s.open(t)
	if _, err := s.runner(t, d).Migrate(context.Background(), migrate.Op{Kind: "up"}, nil); err != nil {
		t.Fatal(err)
	}
	s.write(t, map[string]string{"1_users.up.sql": files["1_users.up.sql"] + "\n-- edited"})
	st, err := s.runner(t, d).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Drift) != 1 || st.Drift[0].Version != 1 || st.Applied[1].Drift {
		t.Errorf("drift = %+v; want version 1 only", st.Drift)
	}
}

// TestGolangMigrateInterop: golang-migrate (the real CLI) applies 1..2, tracevault reads 2 and
// continues to 3; golang-migrate reads 3 and goes down through tracevault's row.
func TestGolangMigrateInterop(t *testing.T) {
	s := newScratch(t, files)
	bin := gmtest.Binary(t)
	gm := func(args ...string) string {
		t.Helper()
		out, err := gmtest.Run(t, bin, append([]string{"-path", s.dir, "-database", s.dsn}, args...)...)
		if err != nil {
			t.Fatalf("golang-migrate %v: %v\n%s", args, err, out)
		}
		return out
	}
	gm("up", "2")
	d := s.open(t)
	r := s.runner(t, d)
	st, err := r.Status(context.Background())
	if err != nil || st.Version != 2 || st.Dirty || len(st.Pending) != 1 {
		t.Fatalf("tracevault status after golang-migrate up 2: %+v, %v; want 2 clean, 1 pending", st, err)
	}
	if _, err := r.Migrate(context.Background(), migrate.Op{Kind: "up"}, nil); err != nil {
		t.Fatal(err)
	}
	if out := gm("version"); out != "3" {
		t.Errorf("golang-migrate version after tracevault up = %q, want 3", out)
	}
	gm("down", "1")
	if v, dirty, err := d.Version(context.Background()); v != 2 || dirty || err != nil {
		t.Errorf("tracevault after golang-migrate down 1: %d dirty %v %v; want 2 clean", v, dirty, err)
	}
	if got := fmt.Sprint(schema(t, d)); !strings.HasSuffix(got, "| 2/false") {
		t.Errorf("schema after golang-migrate down: %s", got)
	}
}
