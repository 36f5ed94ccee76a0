package clickhouse_test

import (
	"context"
	"testing"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestBackupProgressPlan: system.parts sizes a backup before it starts, partition by partition
// as it stores them, on the 18.16 cluster (logical and freeze) and on ch-modern; what the backup
// then reports done is what its manifest records.
func TestBackupProgressPlan(t *testing.T) {
	cases := []struct {
		name   string
		modern bool
		mode   string
		// how far the sizing may be from the stream either way; 0 leaves it unchecked (freeze
		// adds a tar header per file, which dwarfs tiny parts)
		byteTol float64
	}{
		{"cluster logical", false, clickhouse.ModeLogical, 2},
		{"cluster freeze", false, clickhouse.ModeFreeze, 0},
		{"modern logical", true, clickhouse.ModeLogical, 2},
	}
	// Seeded once each, for the whole test.
	cluster, modern := newFixture(t, 40), newModernFixture(t, 40)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var src *clickhouse.Source
			if tc.modern {
				f := modern
				src = &clickhouse.Source{Native: []string{f.env.CHModernNative}, HTTP: []string{f.env.CHModernHTTP}, Conn: clickhouse.ConnOptions{User: "default"},
					Filter: clickhouse.Filter{Databases: []string{f.db}}, Mode: tc.mode, Log: chtest.Quiet}
			} else {
				f := cluster
				src = &clickhouse.Source{Native: f.env.CHNative, HTTP: f.env.CHHTTP, Conn: clickhouse.ConnOptions{User: "default"},
					Filter: clickhouse.Filter{Databases: []string{f.db}}, Cluster: f.env.CHCluster, Mode: tc.mode, Log: chtest.Quiet}
			}
			// A fresh repository each time: nothing is reused, everything streams.
			repo, err := store.Open(context.Background(), store.Options{URL: "file://" + t.TempDir(), Log: chtest.Quiet})
			if err != nil {
				t.Fatal(err)
			}
			tr := progress.NewTracker()
			m, err := snapshot.Run(progress.With(context.Background(), tr), repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
			if err != nil {
				t.Fatalf("backup: %v", err)
			}
			var bytes, rows int64
			for _, o := range m.Objects {
				bytes += o.RawSize
				rows += o.Rows
			}
			s := tr.State()
			if s.Units != len(m.Objects) || s.Bytes != bytes || s.Rows != rows {
				t.Errorf("reported %d units, %d bytes, %d rows; the manifest has %d objects, %d bytes, %d rows", s.Units, s.Bytes, s.Rows, len(m.Objects), bytes, rows)
			}
			if s.PlannedUnits != len(m.Objects) || s.ExpectedRows != rows {
				t.Errorf("planned %d partitions and %d rows; the backup stored %d and %d", s.PlannedUnits, s.ExpectedRows, len(m.Objects), rows)
			}
			ratio := float64(s.Bytes) / float64(s.ExpectedBytes)
			if s.ExpectedBytes <= 0 || tc.byteTol > 0 && (ratio > tc.byteTol || ratio < 1/tc.byteTol) {
				t.Errorf("planned %d bytes, streamed %d", s.ExpectedBytes, s.Bytes)
			}
		})
	}
}
