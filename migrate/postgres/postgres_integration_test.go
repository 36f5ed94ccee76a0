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

// Dir, Write, Open and Runner are the scratch as the conformance suite sees it (gmtest.Scratch).
func (s *scratch) Dir() string                                 { return s.dir }
func (s *scratch) Write(t *testing.T, files map[string]string) { s.write(t, files) }
func (s *scratch) Open(t *testing.T) migrate.Driver            { return s.open(t) }
func (s *scratch) Runner(t *testing.T, d migrate.Driver) *migrate.Runner {
	return s.runner(t, d.(*Driver))
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

// TestConformance runs the suite every migration driver passes (gmtest.Conformance), checking
// after each step the schema and golang-migrate's single schema_migrations row.
func TestConformance(t *testing.T) {
	const all = "projects.id bigint, projects.name text, projects.tags ARRAY, users.email text, users.id bigint"
	const two = "projects.id bigint, projects.name text, users.email text, users.id bigint"
	const one = "users.email text, users.id bigint"
	schemas := map[string]string{
		"up 2": two + " | 2/false", "down 2": " | ", "up 1": one + " | 1/false", "up": all + " | 3/false",
		"down 1": two + " | 2/false", "goto 1": one + " | 1/false", "goto 3": all + " | 3/false",
		"force 2": all + " | 2/false", "force 3": all + " | 3/false", "down": " | ",
	}
	gmtest.Conformance(t, gmtest.Target{
		Scratch: func(t *testing.T) gmtest.Scratch { return newScratch(t, nil) },
		Files:   files,
		Check: func(t *testing.T, _ gmtest.Scratch, d migrate.Driver, step string) {
			if got := schema(t, d.(*Driver)); got != schemas[step] {
				t.Errorf("%s: schema %q, want %q", step, got, schemas[step])
			}
		},
		// A failing file leaves dirty at its version with nothing of it applied (one
		// transaction): there is nothing to undo by hand.
		Failure: gmtest.Failure{
			Files: map[string]string{
				"1_users.up.sql": files["1_users.up.sql"],
				"2_bad.up.sql":   "ALTER TABLE users ADD COLUMN name text;\nALTER TABLE users ADD COLUMN broken no_such_type;",
			},
			Message: []string{"ADD COLUMN broken no_such_type", `type "no_such_type" does not exist`},
			Fixed:   map[string]string{"2_bad.up.sql": "ALTER TABLE users ADD COLUMN name text;"},
			Check: func(t *testing.T, _ gmtest.Scratch, d migrate.Driver, step string) {
				got := schema(t, d.(*Driver))
				switch {
				case step == "failed" && got != "users.email text, users.id bigint | 2/true":
					t.Fatalf("after the failure: %q; want users unchanged and 2 dirty", got)
				case step == "fixed" && got != "users.email text, users.id bigint, users.name text | 2/false":
					t.Errorf("after force and up: %q", got)
				}
			},
		},
		Race: gmtest.Race{Files: map[string]string{
			"1_slow.up.sql": "SELECT pg_sleep(1); CREATE TABLE t1 (x int);",
			"2_slow.up.sql": "SELECT pg_sleep(1); ALTER TABLE t1 ADD COLUMN y int;",
		}},
		Interop: gmtest.Interop{
			Files: files,
			URL:   func(s gmtest.Scratch) string { return s.(*scratch).dsn },
			Check: func(t *testing.T, _ gmtest.Scratch, d migrate.Driver, step string) {
				if step != "golang-migrate down 1" {
					return
				}
				if got := fmt.Sprint(schema(t, d.(*Driver))); !strings.HasSuffix(got, "| 2/false") {
					t.Errorf("schema after golang-migrate down: %s", got)
				}
			},
		},
	})
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
