package postgres

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/store"
)

// edgeCases adds what the demo schema lacks: a partitioned table, an unlogged table, a
// generated column, a second schema left out of the snapshot, and a large object.
const edgeCases = `
CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, at date NOT NULL, body text,
    body_len int GENERATED ALWAYS AS (length(body)) STORED, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2026_05 PARTITION OF events FOR VALUES FROM ('2026-05-01') TO ('2026-06-01');
CREATE TABLE events_2026_06 PARTITION OF events FOR VALUES FROM ('2026-06-01') TO ('2026-07-01');
INSERT INTO events (at, body) SELECT date '2026-05-01' + (i % 60), 'line ' || i || E'\twith\ttabs\nand newline \\ backslash' FROM generate_series(1, 3000) i;
CREATE UNLOGGED TABLE sessions (token text PRIMARY KEY, user_id text REFERENCES users (id));
INSERT INTO sessions SELECT 'tok-' || id, id FROM users;
CREATE SCHEMA scratch;
CREATE TABLE scratch.ignored (x int);
SELECT lo_from_bytea(424242, 'large object bytes');
`

// edgeCaseSnapshot seeds a database with the demo's schema and edgeCases and backs it up: the
// source's DSN, a connection to it, the repository and the snapshot.
func edgeCaseSnapshot(t *testing.T, env *devstack.Env) (string, *pgx.Conn, *store.Repository, *store.Manifest) {
	t.Helper()
	srcDSN := seededDatabase(t, env)
	src := dial(t, srcDSN)
	exec1(t, src, edgeCases)
	repo := openRepo(t)
	m, err := backup(t, repo, &Source{DSN: srcDSN})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return srcDSN, src, repo, m
}

// TestRoundTripIntoNewDatabase: a snapshot restored into a new database has the same schema
// (pg_dump --schema-only identical), the same rows in every table, sequences that continue
// where the source's would, and the large objects; a second restore into the now non-empty
// target is refused without --force and replaces it with --force.
func TestRoundTripIntoNewDatabase(t *testing.T) {
	env := devstack.Require(t)
	ctx := testContext(t)
	srcDSN, src, repo, m := edgeCaseSnapshot(t, env)
	sec, err := ReadSection(m)
	if err != nil {
		t.Fatal(err)
	}
	if sec.LSN == "" || sec.Time.IsZero() || sec.Snapshot == "" || !strings.HasPrefix(sec.ServerVersion, "15") {
		t.Errorf("section lacks server version, LSN, time or snapshot: %+v", sec)
	}
	objects := map[string]store.ManifestObject{}
	for _, o := range m.Objects {
		objects[o.ID] = o
	}
	seen := map[string]TableRecord{}
	for _, tr := range sec.Tables {
		seen[tr.FullName()] = tr
		if tr.Kind == kindPartitioned {
			if tr.ObjectRecord != nil {
				t.Errorf("partitioned parent %s has its own object", tr.FullName())
			}
			continue
		}
		if tr.ObjectRecord == nil || objects[tr.Object].SHA256 != tr.SHA256 || objects[tr.Object].Rows != tr.Rows {
			t.Errorf("table %s (%d rows): its manifest object %+v lacks its checksum or row count", tr.FullName(), tr.Rows, objects[tr.Object])
		}
	}
	for name, want := range map[string]string{"public.events": kindPartitioned, "public.events_2026_05": kindPartition, "public.sessions": kindTable} {
		if seen[name].Kind != want {
			t.Errorf("%s recorded as %q, want %q", name, seen[name].Kind, want)
		}
	}
	if !seen["public.sessions"].Unlogged || seen["public.users"].Rows != 200 {
		t.Errorf("sessions unlogged=%v, users rows=%d; want true, 200", seen["public.sessions"].Unlogged, seen["public.users"].Rows)
	}
	if _, ok := seen["scratch.ignored"]; ok {
		t.Error("a table of a schema outside [postgres] schemas was copied")
	}
	if sec.LargeObjects == nil || sec.LargeObjects.Count != 1 || len(sec.Roles) == 0 || len(sec.Extensions) == 0 {
		t.Errorf("large objects %+v, roles %v, extensions %v not recorded", sec.LargeObjects, sec.Roles, sec.Extensions)
	}

	target := devstack.ScratchName("it_pg_restored")
	dropAfter(t, env, target)
	plan, err := restore(t, repo, m, RestoreOptions{DSN: env.PGDSN, Database: target})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if plan.Mode != ModeNew {
		t.Errorf("mode %s, want %s", plan.Mode, ModeNew)
	}
	dstDSN := dsnFor(t, env.PGDSN, target)
	if want, got := schemaOf(t, srcDSN, "--exclude-schema=scratch"), schemaOf(t, dstDSN); got != want {
		t.Errorf("schema differs after restore: %s", firstDiff(want, got))
	}
	dst := dial(t, dstDSN)
	if diffs := diffMaps(checksums(t, src), checksums(t, dst)); len(diffs) > 0 {
		t.Errorf("tables differ after restore:\n%s", strings.Join(diffs, "\n"))
	}
	var srcNext, dstNext int64
	if err := src.QueryRow(ctx, "SELECT nextval('audit_log_id_seq')").Scan(&srcNext); err != nil {
		t.Fatal(err)
	}
	if err := dst.QueryRow(ctx, "INSERT INTO audit_logs (org_id, resource_type, resource_id, action) VALUES ('org-01', 'x', 'y', 'create') RETURNING id").Scan(&dstNext); err != nil {
		t.Fatalf("insert with the sequence default after restore: %v", err)
	}
	if dstNext != srcNext {
		t.Errorf("restored sequence gave %d, the source's gives %d", dstNext, srcNext)
	}
	var lo string
	if err := dst.QueryRow(ctx, "SELECT convert_from(lo_get(424242), 'UTF8')").Scan(&lo); err != nil || lo != "large object bytes" {
		t.Errorf("large object after restore: %q, %v", lo, err)
	}
	dst.Close(ctx)

	if _, err := restore(t, repo, m, RestoreOptions{DSN: env.PGDSN, Database: target}); err == nil || !strings.Contains(err.Error(), "--replace") {
		t.Errorf("restore into a non-empty database without --replace: %v, want a refusal naming --replace", err)
	}
	plan, err = restore(t, repo, m, RestoreOptions{DSN: env.PGDSN, Database: target, Replace: true})
	if err != nil {
		t.Fatalf("restore --force: %v", err)
	}
	if plan.Mode != ModeReplace || plan.LoadInto == target {
		t.Errorf("--force plan mode %s into %s, want %s through a staging database", plan.Mode, plan.LoadInto, ModeReplace)
	}
	if diffs := diffMaps(checksums(t, src), checksums(t, dial(t, dstDSN))); len(diffs) > 0 {
		t.Errorf("tables differ after restore --force:\n%s", strings.Join(diffs, "\n"))
	}
}

// TestRestoreFailureRollsBack: a damaged table object fails the restore after pre-data; a
// database the restore created is dropped again, and with --force the existing target is left
// as it was, each failure saying so.
func TestRestoreFailureRollsBack(t *testing.T) {
	env := devstack.Require(t)
	srcDSN := seededDatabase(t, env)
	dir := t.TempDir()
	repo, err := store.Open(testContext(t), store.Options{URL: "file://" + dir, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup(t, repo, &Source{DSN: srcDSN})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	for _, o := range m.Objects {
		if o.Kind == KindTable && o.Table == "public.audit_logs" {
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(o.Name())), bytes.Repeat([]byte{0x5a}, int(o.Size)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	existing := env.PGDatabase(t, "it_pg_existing")
	exec1(t, dial(t, existing), "CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (1)")
	var existingName string
	if err := dial(t, existing).QueryRow(testContext(t), "SELECT current_database()").Scan(&existingName); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		target string
		force  bool
		want   string
		split  int64 // SplitBytes: 1 loads every table split over the connections
	}{
		{"new database", devstack.ScratchName("it_pg_failed"), false, "was dropped again: nothing changed", 0},
		{"new database, tables loaded split", devstack.ScratchName("it_pg_failed"), false, "was dropped again: nothing changed", 1},
		{"replace existing", existingName, true, "is unchanged", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.force {
				dropAfter(t, env, tc.target)
			}
			_, err := restore(t, repo, m, RestoreOptions{DSN: env.PGDSN, Database: tc.target, Replace: tc.force, SplitBytes: tc.split})
			if err == nil || !strings.Contains(err.Error(), "public.audit_logs") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("restore from a damaged object: %v; want it to name public.audit_logs and say %q", err, tc.want)
			}
			var dbs []string
			rows, err := dial(t, env.PGDSN).Query(testContext(t), "SELECT datname FROM pg_database WHERE datname LIKE $1", tc.target+"%")
			if err == nil {
				dbs, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: 1}[tc.force]; len(dbs) != want {
				t.Errorf("databases left: %v, want %d", dbs, want)
			}
		})
	}
	var n int
	if err := dial(t, existing).QueryRow(testContext(t), "SELECT count(*) FROM keep_me").Scan(&n); err != nil || n != 1 {
		t.Errorf("the existing target changed after a failed --force restore: %d rows, %v", n, err)
	}
}
