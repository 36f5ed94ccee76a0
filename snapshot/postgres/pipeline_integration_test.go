package postgres

import (
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
)

// pipelineSchema adds to the demo's data what the pipelined restore must get right: tables of
// different sizes with primary keys, unique and plain indexes, an expression index, a check
// constraint written after the data, foreign keys between them (checked only after every
// load), a partitioned table whose partitions' indexes attach to the parent's, and a
// constraint and an index on names that need quoting.
const pipelineSchema = `
CREATE TABLE runs (id bigint PRIMARY KEY, name text NOT NULL, at timestamptz NOT NULL);
INSERT INTO runs SELECT i, 'run ' || i, timestamptz '2026-01-01' + i * interval '1 minute' FROM generate_series(1, 40000) i;
CREATE UNIQUE INDEX runs_name ON runs (name);
CREATE INDEX runs_day ON runs ((date_trunc('day', at AT TIME ZONE 'UTC')));
CREATE TABLE steps (id bigint PRIMARY KEY, run_id bigint NOT NULL REFERENCES runs (id), n int NOT NULL, UNIQUE (run_id, n));
INSERT INTO steps SELECT i, 1 + i % 40000, i / 40000 FROM generate_series(1, 120000) i;
CREATE INDEX steps_n ON steps (n);
ALTER TABLE steps ADD CONSTRAINT steps_n_positive CHECK (n >= 0) NOT VALID;
ALTER TABLE steps VALIDATE CONSTRAINT steps_n_positive;
CREATE TABLE "Odd ""Names""" ("Key" int PRIMARY KEY, run_id bigint REFERENCES runs (id));
INSERT INTO "Odd ""Names""" SELECT i, i FROM generate_series(1, 500) i;
CREATE INDEX "odd index" ON "Odd ""Names""" (run_id);
CREATE TABLE spans (id bigint, day date NOT NULL, run_id bigint REFERENCES runs (id), PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE spans_1 PARTITION OF spans FOR VALUES FROM ('2026-01-01') TO ('2026-01-15');
CREATE TABLE spans_2 PARTITION OF spans FOR VALUES FROM ('2026-01-15') TO ('2026-02-01');
CREATE INDEX spans_run ON spans (run_id);
INSERT INTO spans SELECT i, date '2026-01-01' + i % 31, 1 + i % 40000 FROM generate_series(1, 60000) i;
`

// TestRestoredDatabaseEqualsItsSource: a whole-database restore that builds indexes and
// constraints while other tables load ends equal to its source: the same rows in every table
// (checksums), the same constraints and indexes, every constraint validated, every index
// valid, and some were built before the last load ended; the largest tables loaded split
// over the connections.
func TestRestoredDatabaseEqualsItsSource(t *testing.T) {
	env := devstack.Require(t)
	srcDSN := seededDatabase(t, env)
	src := dial(t, srcDSN)
	exec1(t, src, pipelineSchema)
	repo := openRepo(t)
	m, err := backup(t, repo, &Source{DSN: srcDSN})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	// With 3 connections, runs and steps (about 2 MB of rows each) load split over them.
	for _, parallel := range []int{1, 3} {
		target := devstack.ScratchName("it_pg_pipeline")
		dropAfter(t, env, target)
		var logged lockedBuffer
		log := slog.New(slog.NewTextHandler(&logged, nil))
		if _, err := restore(t, repo, m, RestoreOptions{DSN: env.PGDSN, Database: target, Parallel: parallel, MaintenanceWorkMem: 32 << 20, MaintenanceWorkers: 1, Log: log, SplitBytes: 1 << 20}); err != nil {
			t.Fatalf("restore with parallel %d: %v", parallel, err)
		}
		if early := regexp.MustCompile(`building their indexes and constraints meanwhile.* entries=(\d+)`).FindStringSubmatch(logged.String()); early == nil || early[1] == "0" {
			t.Errorf("parallel %d: no index or constraint was built in the pipeline: %v", parallel, early)
		}
		if split := strings.Count(logged.String(), "split over"); (parallel > 1) != (split > 0) {
			t.Errorf("parallel %d: %d tables loaded split", parallel, split)
		}
		dst := dial(t, dsnFor(t, env.PGDSN, target))
		if diffs := diffMaps(checksums(t, src), checksums(t, dst)); len(diffs) > 0 {
			t.Errorf("parallel %d: tables differ after restore:\n%s", parallel, strings.Join(diffs, "\n"))
		}
		for _, q := range []string{
			"SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
			"SELECT indexrelid::regclass || ' ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace",
		} {
			if want, got := column(t, src, q), column(t, dst, q); !slices.Equal(got, want) {
				t.Errorf("parallel %d: %s\nsource   %q\nrestored %q", parallel, q, want, got)
			}
		}
		for _, q := range []string{
			"SELECT conrelid::regclass || ' ' || conname FROM pg_constraint WHERE NOT convalidated",
			"SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid OR NOT indisready",
		} {
			if bad := column(t, dst, q); len(bad) > 0 {
				t.Errorf("parallel %d: %s: %q", parallel, q, bad)
			}
		}
		dst.Close(testContext(t))
	}
}

// column is a query's one text column, sorted.
func column(t *testing.T, q querier, sql string) []string {
	t.Helper()
	rows, err := q.Query(testContext(t), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	slices.Sort(out)
	return out
}
