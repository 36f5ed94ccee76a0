package postgres

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/postgres/pgdsn"
	"github.com/tracevault/tracevault/snapshot/store"
)

// fillGiB makes the demo database at least 1 GiB with a Langfuse-like wide table: ids, a
// project, timestamps, jsonb and text that compress like real payloads, plus two indexes.
const fillGiB = `
CREATE TABLE traces_archive (id bigint PRIMARY KEY, project_id text NOT NULL REFERENCES projects (id),
    created_at timestamptz NOT NULL, name text, input jsonb, output text);
INSERT INTO traces_archive
SELECT i, 'proj-0' || (1 + i % 4) || '-0' || (1 + i % 3), timestamptz '2026-05-01' + i * interval '1 second',
       'trace ' || (i % 97), jsonb_build_object('q', md5(i::text), 'n', i % 1000, 'tags', jsonb_build_array('a', i % 7)),
       repeat(md5((i * 7)::text), 4) || ' ' || i
FROM generate_series(1, 3300000) i;
CREATE INDEX traces_archive_project_created_idx ON traces_archive (project_id, created_at);
`

// BenchmarkBackupRestore1GiB compares a backup of a ≥1 GiB database into a filesystem
// repository with pg_dump -Fc to a local file, and its restore with pg_restore -j 2; it reports
// the ratios (below 1 is faster than the baseline) and this process's peak RSS in each phase.
// Run by hand: go test -run '^$' -bench BackupRestore1GiB -benchtime 3x -timeout 30m ./snapshot/postgres/
func BenchmarkBackupRestore1GiB(b *testing.B) {
	env := devstack.Require(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	src := seededDatabase(b, env)
	conn := dial(b, src)
	start := time.Now()
	exec1(b, conn, fillGiB)
	// Hint bits and the visibility map set once, so neither side pays for them.
	exec1(b, conn, "VACUUM ANALYZE")
	exec1(b, conn, "CHECKPOINT")
	var dbBytes int64
	if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&dbBytes); err != nil {
		b.Fatal(err)
	}
	b.Logf("database: %d MiB, filled in %s", dbBytes>>20, time.Since(start).Round(time.Second))
	if dbBytes < 1<<30 {
		b.Fatalf("database is %d MiB, want at least 1 GiB", dbBytes>>20)
	}
	dir := b.TempDir()
	clean, password, err := pgdsn.SplitPassword(src)
	if err != nil {
		b.Fatal(err)
	}
	pgEnv := append(os.Environ(), "PGPASSWORD="+password)
	run := func(name string, args ...string) time.Duration {
		b.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = pgEnv
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", name, err, out)
		}
		return time.Since(t0)
	}

	// The machine is shared, so each side keeps its fastest of the iterations
	// (-benchtime Nx), and the sides alternate so that neither always runs on a cold cache.
	var best struct{ backup, baseBackup, restore, baseRestore time.Duration }
	var backupRSS, restoreRSS int64
	keep := func(d *time.Duration, v time.Duration) {
		if *d == 0 || v < *d {
			*d = v
		}
	}
	dump := filepath.Join(dir, "dump.fc")
	for i := 0; b.Loop(); i++ {
		keep(&best.baseBackup, run("pg_dump", "-Fc", "-f", dump, "--dbname="+clean))

		repo, err := store.Open(ctx, store.Options{URL: "file://" + filepath.Join(dir, "repo"+strconv.Itoa(i)), Log: quiet})
		if err != nil {
			b.Fatal(err)
		}
		resetPeakRSS(b)
		t0 := time.Now()
		m, err := backup(b, repo, &Source{DSN: src})
		if err != nil {
			b.Fatalf("backup: %v", err)
		}
		keep(&best.backup, time.Since(t0))
		backupRSS = max(backupRSS, peakRSS(b))

		baseTarget := devstack.ScratchName("bench_pgrestore")
		dropAfter(b, env, baseTarget)
		run("createdb", "--maintenance-db="+dsnFor(b, clean, "postgres"), baseTarget)
		keep(&best.baseRestore, run("pg_restore", "-j", "2", "--dbname="+dsnFor(b, clean, baseTarget), dump))

		target := devstack.ScratchName("bench_restore")
		dropAfter(b, env, target)
		resetPeakRSS(b)
		t0 = time.Now()
		r := NewRestorer(RestoreOptions{DSN: env.PGDSN, Database: target, Log: quiet})
		plan, err := r.Plan(ctx, m)
		if err == nil {
			err = r.Execute(ctx, repo, plan, nil)
		}
		if err != nil {
			b.Fatalf("restore: %v", err)
		}
		keep(&best.restore, time.Since(t0))
		restoreRSS = max(restoreRSS, peakRSS(b))
		st, _ := os.Stat(dump)
		b.Logf("iteration %d: pg_dump -Fc file %d MiB, repository %d MiB", i, st.Size()>>20, m.Totals().Bytes>>20)
		exec1(b, conn, "SELECT 1") // keep the source connection alive between iterations
	}
	b.Logf("backup %s vs pg_dump -Fc %s: ratio %.2f; peak RSS %d MiB", best.backup.Round(time.Millisecond), best.baseBackup.Round(time.Millisecond), best.backup.Seconds()/best.baseBackup.Seconds(), backupRSS>>20)
	b.Logf("restore %s vs pg_restore -j 2 %s: ratio %.2f; peak RSS %d MiB", best.restore.Round(time.Millisecond), best.baseRestore.Round(time.Millisecond), best.restore.Seconds()/best.baseRestore.Seconds(), restoreRSS>>20)
	b.ReportMetric(best.backup.Seconds()/best.baseBackup.Seconds(), "backup/pg_dump")
	b.ReportMetric(best.restore.Seconds()/best.baseRestore.Seconds(), "restore/pg_restore")
	b.ReportMetric(float64(backupRSS>>20), "backup-peak-RSS-MiB")
	b.ReportMetric(float64(restoreRSS>>20), "restore-peak-RSS-MiB")
}

// resetPeakRSS restarts the kernel's high-water mark of this process's resident set.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset peak RSS: %v", err)
	}
}

// peakRSS reads VmHWM, the peak resident set since the last reset.
func peakRSS(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
