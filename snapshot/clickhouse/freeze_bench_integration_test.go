package clickhouse_test

import (
	"context"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/store"
)

// BenchmarkExportModes backs up one partition of about 270 MB uncompressed in each mode into a
// fresh filesystem repository, then restores it next to the original, and reports MB/s of
// the export, rows/s of the restore and the repository's bytes. Run freeze first alone to read
// its peak RSS: go test -run '^$' -bench 'ExportModes/freeze' -benchtime 1x ./snapshot/clickhouse/
func BenchmarkExportModes(b *testing.B) {
	const rows = 2_000_000
	env := devstack.Require(b)
	ctx := context.Background()
	db, h, rawBytes := benchPartition(b, env, "bench_frz", rows)

	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(rawBytes)
			for i := 0; i < b.N; i++ {
				repo, err := store.Open(ctx, store.Options{URL: "file://" + b.TempDir(), CompressionLevel: 1, Log: chtest.Quiet})
				if err != nil {
					b.Fatal(err)
				}
				src := &clickhouse.Source{Native: env.CHNative[:1], HTTP: env.CHHTTP[:1], Conn: clickhouse.ConnOptions{User: "default"},
					Filter: clickhouse.Filter{Databases: []string{db}}, Mode: mode, Log: chtest.Quiet}
				m, err := snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(m.Totals().NewBytes)/(1<<20), "stored-MiB")
				b.ReportMetric(float64(maxRSS())/(1<<20), "peak-RSS-MiB")

				b.StopTimer()
				b.ReportMetric(benchRestore(b, env, h, repo, m, db, rows), "restore-rows/s")
				b.StartTimer()
			}
		})
	}
}
