package clickhouse_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tracevault/tracevault/deploy/stack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// BenchmarkExportModes backs up one partition of about 270 MB uncompressed in each mode into a
// fresh filesystem repository, then restores it next to the original, and reports MB/s of
// the export, rows/s of the restore and the repository's bytes. Run freeze first alone to read
// its peak RSS: go test -run '^$' -bench 'ExportModes/freeze' -benchtime 1x ./snapshot/clickhouse/
func BenchmarkExportModes(b *testing.B) {
	const rows = 2_000_000
	env := stack.Require(b)
	ctx := context.Background()
	db := stack.ScratchName("bench_frz")
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
	rawBytes := scalar(b, h, fmt.Sprintf("SELECT sum(data_uncompressed_bytes) FROM system.parts WHERE database = '%s' AND table = 'spans' AND active", db))

	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(rawBytes)
			for i := 0; i < b.N; i++ {
				repo, err := store.Open(ctx, store.Options{URL: "file://" + b.TempDir(), CompressionLevel: 1, Log: quiet})
				if err != nil {
					b.Fatal(err)
				}
				src := &clickhouse.Source{Native: env.CHNative[:1], HTTP: env.CHHTTP[:1], Conn: clickhouse.ConnOptions{User: "default"},
					Filter: clickhouse.Filter{Databases: []string{db}}, Mode: mode, Log: quiet}
				m, err := snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: quiet})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(m.Totals().NewBytes)/(1<<20), "stored-MiB")
				b.ReportMetric(float64(maxRSS())/(1<<20), "peak-RSS-MiB")

				b.StopTimer()
				_ = h.Exec(ctx, "DROP DATABASE IF EXISTS "+db+"_copy", nil)
				rs, err := clickhouse.NewRestorer(ctx, clickhouse.RestoreOptions{Native: env.CHNative[:1], HTTP: env.CHHTTP[:1],
					Conn: clickhouse.ConnOptions{User: "default"}, DatabaseMap: map[string]string{db: db + "_copy"}, Log: quiet})
				if err != nil {
					b.Fatal(err)
				}
				plan, err := rs.Plan(ctx, m)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if err := rs.Execute(ctx, repo, plan, nil); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "restore-rows/s")
				rs.Close()
				b.StartTimer()
			}
		})
	}
}
