package clickhouse_test

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// benchRows fills one monthly partition with about 1.1 GiB of Native data (≈135 bytes a row).
const benchRows = 8_500_000

// BenchmarkLogicalExport exports one partition of at least 1 GiB uncompressed into a filesystem
// repository (sha256 + zstd 1 + fsync included), against the baseline
// `clickhouse-client --query "SELECT * … FORMAT Native" | zstd -1 > /dev/null`; then restores it
// next to the original and reports rows/s and MB/s. Target: export within 1.3x the baseline.
// Run with: make bench, or go test -run '^$' -bench LogicalExport -benchtime 1x ./snapshot/clickhouse/
func BenchmarkLogicalExport(b *testing.B) {
	env := devstack.Require(b)
	ctx := context.Background()
	db, h, rawBytes := benchPartition(b, env, "bench_ch", benchRows)
	query := fmt.Sprintf("SELECT * FROM %s.spans WHERE _partition_id = '202605' FORMAT Native", db)

	var repo *store.Repository
	var m *store.Manifest
	repoRoot := b.TempDir() // outlives the sub-benchmarks: the restore reads what the export wrote
	b.Run("tracevault", func(b *testing.B) {
		b.SetBytes(rawBytes)
		for i := 0; i < b.N; i++ {
			var err error
			// A fresh repository each time: nothing to reuse, every byte exported.
			if repo, err = store.Open(ctx, store.Options{URL: fmt.Sprintf("file://%s/%d", repoRoot, i), CompressionLevel: 1, Log: chtest.Quiet}); err != nil {
				b.Fatal(err)
			}
			src := &clickhouse.Source{Native: env.CHNative[:1], HTTP: env.CHHTTP[:1], Conn: clickhouse.ConnOptions{User: "default"},
				Filter: clickhouse.Filter{Databases: []string{db}}, Log: chtest.Quiet}
			if m, err = snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(maxRSS())/(1<<20), "peak-RSS-MiB")
	})
	b.Run("clickhouse-client|zstd", func(b *testing.B) {
		port := strings.TrimPrefix(env.CHNative[0][strings.LastIndex(env.CHNative[0], ":"):], ":")
		b.SetBytes(rawBytes)
		for i := 0; i < b.N; i++ {
			cmd := exec.Command("bash", "-o", "pipefail", "-c", fmt.Sprintf(`clickhouse-client --host 127.0.0.1 --port %s --query "%s" | zstd -1 -q > /dev/null`, port, query))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("baseline: %v\n%s", err, out)
			}
		}
	})
	if m == nil {
		return
	}
	b.Run("restore", func(b *testing.B) {
		b.SetBytes(rawBytes)
		for i := 0; i < b.N; i++ {
			b.ReportMetric(benchRestore(b, env, h, repo, m, db, benchRows), "rows/s")
		}
	})
}

// benchPartition creates a scratch database on replica 1 with one MergeTree table, spans, whose
// partition 202605 holds rows rows (about 135 bytes each in Native), merged into one part. It
// returns the database, replica 1's HTTP client and the partition's uncompressed bytes.
func benchPartition(b *testing.B, env *devstack.Env, prefix string, rows int) (string, *clickhouse.HTTP, int64) {
	ctx := context.Background()
	db := devstack.ScratchName(prefix)
	h := &clickhouse.HTTP{Addr: env.CHHTTP[0], User: "default"}
	exec1 := func(q string) {
		if err := h.Exec(ctx, q, nil); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	exec1("CREATE DATABASE " + db)
	b.Cleanup(func() {
		_ = h.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db, nil)
		_ = h.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+"_copy", nil)
	})
	exec1(fmt.Sprintf(`CREATE TABLE %s.spans (ts DateTime, id UInt64, project String, payload String, score Float64)
		ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id)`, db))
	exec1(fmt.Sprintf(`INSERT INTO %s.spans SELECT toDateTime('2026-05-01 00:00:00') + (number %% 2000000), number,
		concat('project-', toString(number %% 100)),
		concat(hex(MD5(toString(number))), hex(MD5(toString(number + 1))), hex(MD5(toString(number + 2)))),
		number / 7 FROM system.numbers LIMIT %d`, db, rows))
	exec1(fmt.Sprintf("OPTIMIZE TABLE %s.spans FINAL", db))
	raw := scalar(b, h, fmt.Sprintf("SELECT sum(data_uncompressed_bytes) FROM system.parts WHERE database = '%s' AND table = 'spans' AND active", db))
	return db, h, raw
}

// benchRestore restores snapshot m's database next to the original (as <db>_copy) and returns
// the restore's rows per second.
func benchRestore(b *testing.B, env *devstack.Env, h *clickhouse.HTTP, repo *store.Repository, m *store.Manifest, db string, rows int) float64 {
	ctx := context.Background()
	_ = h.Exec(ctx, "DROP DATABASE IF EXISTS "+db+"_copy", nil)
	rs, err := restore.New(ctx, restore.Options{Native: env.CHNative[:1], HTTP: env.CHHTTP[:1],
		Conn: clickhouse.ConnOptions{User: "default"}, DatabaseMap: map[string]string{db: db + "_copy"}, Log: chtest.Quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Close()
	plan, err := rs.Plan(ctx, m)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := rs.Execute(ctx, repo, plan, nil); err != nil {
		b.Fatal(err)
	}
	return float64(rows) / time.Since(start).Seconds()
}

func scalar(b *testing.B, h *clickhouse.HTTP, q string) int64 {
	rc, err := h.Query(context.Background(), q, nil)
	if err != nil {
		b.Fatalf("%s: %v", q, err)
	}
	defer rc.Close()
	out, _ := io.ReadAll(rc)
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatalf("%s: %q: %v", q, out, err)
	}
	return n
}

// maxRSS is this process's peak resident set in bytes.
func maxRSS() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss * 1024
}
