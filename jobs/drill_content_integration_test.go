package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// TestDrillContentChecksumModern: on 26.7 a backup (logical and freeze) records each partition's
// content checksum, of values (cityHash64(tuple(*))), a drill compares it after the restore and
// passes; so does a drill of the same snapshot recorded with the TSV checksums older tracevaults
// wrote; a snapshot whose recorded checksum of one partition differs from the restored rows
// fails the drill naming the partition.
func TestDrillContentChecksumModern(t *testing.T) {
	env := devstack.RequireModern(t)
	for _, mode := range []string{"logical", "freeze"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			db := env.ModernDatabase(t, "it_dcs")
			t.Cleanup(func() { _, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + db + DrillSuffix + " SYNC") })
			for _, q := range []string{
				"CREATE TABLE " + db + `.obs (id UUID, ts DateTime64(3), project LowCardinality(String), note Nullable(String),
					attrs Map(String, String), cost Decimal64(12)) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id)`,
				"INSERT INTO " + db + `.obs SELECT reinterpretAsUUID(cityHash64(number, 1)), toDateTime64('2026-01-01 00:00:00', 3) + number * 3000,
					['a', 'b'][number % 2 + 1], if(number % 3 = 0, NULL, 'n' || toString(number)), map('k', toString(number)), toDecimal64(number / 7, 12)
					FROM numbers(2000)`,
			} {
				if _, err := env.ModernQuery(q); err != nil {
					t.Fatal(err)
				}
			}
			cfg := daemonConfig(t, env, t.TempDir())
			cfg.ZooKeeper.Servers = nil
			cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses = []string{env.CHModernNative}, []string{env.CHModernHTTP}
			cfg.ClickHouse.Databases, cfg.ClickHouse.Mode = []string{db}, mode
			repo, err := CreateRepository(ctx, cfg.Storage, quiet)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Backup(ctx, cfg, repo, BackupRequest{Only: []string{config.SourceClickHouse}}, quiet)
			if err != nil {
				t.Fatalf("backup: %v", err)
			}
			sec, _, err := clickhouse.SnapshotSection(m)
			if err != nil {
				t.Fatal(err)
			}
			var parts []clickhouse.PartitionRecord
			for _, tb := range sec.Tables {
				parts = append(parts, tb.Partitions...)
			}
			if len(parts) < 2 {
				t.Fatalf("%d partitions backed up, want 2", len(parts))
			}
			srv, err := clickhouse.Dial(ctx, env.CHModernNative, clickhouse.ConnOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			for _, p := range parts {
				// The server's own sum: in logical mode the export summed its rows itself.
				want, err := clickhouse.PartitionContent(ctx, srv, db, "obs", p.ID, nil, clickhouse.ContentTuple)
				if err != nil {
					t.Fatal(err)
				}
				if p.Content == nil || *p.Content != want || p.Content.Rows != p.Rows || p.Content.Sum == 0 {
					t.Fatalf("partition %s: content %+v over %d rows; want the server's %+v", p.ID, p.Content, p.Rows, want)
				}
			}

			res, err := Drill(ctx, cfg, repo, DrillRequest{}, quiet)
			if err != nil {
				t.Fatalf("drill: %v (%+v)", err, res)
			}
			if len(res.Sources) != 1 || res.Sources[0].Content != fmt.Sprintf("compared for %d partitions", len(parts)) {
				t.Errorf("drill sources %+v: want every partition's content checksum compared", res.Sources)
			}

			// change rewrites the snapshot's partition records and commits it again.
			change := func(edit func(p *clickhouse.PartitionRecord)) {
				for i := range sec.Tables {
					for j := range sec.Tables[i].Partitions {
						edit(&sec.Tables[i].Partitions[j])
					}
				}
				raw, err := json.Marshal(sec)
				if err != nil {
					t.Fatal(err)
				}
				m.Sections[config.SourceClickHouse] = raw
				if err := repo.CommitManifest(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			// The snapshot as an older tracevault recorded it, with sums of TSV text.
			change(func(p *clickhouse.PartitionRecord) {
				sum, err := clickhouse.PartitionContent(ctx, srv, db, "obs", p.ID, nil, clickhouse.ContentTSV)
				if err != nil {
					t.Fatal(err)
				}
				if sum.Sum == p.Content.Sum {
					t.Fatalf("partition %s: the TSV and the tuple checksums are equal, the test proves nothing", p.ID)
				}
				p.Content = &sum
			})
			res, err = Drill(ctx, cfg, repo, DrillRequest{Snapshot: m.ID}, quiet)
			if err != nil || res.Sources[0].Content != fmt.Sprintf("compared for %d partitions", len(parts)) {
				t.Fatalf("drill of the snapshot with TSV checksums: %v, sources %+v; want every partition compared", err, res.Sources)
			}

			// One partition's recorded sum off by one: the drill fails on it.
			bad := parts[1]
			change(func(p *clickhouse.PartitionRecord) {
				if p.Object == bad.Object {
					p.Content.Sum++
				}
			})
			res, err = Drill(ctx, cfg, repo, DrillRequest{Snapshot: m.ID}, quiet)
			want := fmt.Sprintf("%s.obs partition %s content checksum", db+DrillSuffix, bad.ID)
			if err == nil || len(res.Mismatches) != 1 || !res.Mismatches[0].Content || !strings.Contains(res.Error, want) {
				t.Fatalf("drill of a snapshot whose checksum of %s differs: %v, mismatches %+v; want a failure saying %q", bad.ID, err, res.Mismatches, want)
			}
		})
	}
}
