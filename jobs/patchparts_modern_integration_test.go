package jobs

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// eventsFull is Langfuse v4's events_full in miniature: a Replacing table with an is_deleted
// column, monthly partitions, and the block number and offset columns lightweight updates need.
const eventsFull = `(id UInt64, project_id LowCardinality(String), start_time DateTime64(3), name String, v String,
	bookmarked Bool, output Nullable(String), event_ts DateTime64(3), is_deleted UInt8)
	ENGINE = ReplacingMergeTree(event_ts, is_deleted) PARTITION BY toYYYYMM(start_time) ORDER BY (project_id, id)
	SETTINGS enable_block_number_column = 1, enable_block_offset_column = 1`

// TestPatchPartsModern: Langfuse v4 edits rows in place with lightweight updates, which 25.7+
// writes as patch parts (partition_id patch-<hash>-202605) beside the partition's parts. After
// updates and lightweight deletes in one partition, in patch mode and then in mask mode, each
// incremental snapshot uploads that partition again and reuses the other, records no patch-…
// partition, and gives back exactly the rows a SELECT reads: restored into a fresh database, and
// in a drill, whose content checksums agree. In both modes: freeze mode exports a partition with
// patch parts logically, since FREEZE does not carry them.
func TestPatchPartsModern(t *testing.T) {
	env := devstack.RequireModern(t)
	for _, mode := range []string{clickhouse.ModeLogical, clickhouse.ModeFreeze} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			db := env.ModernDatabase(t, "it_patch")
			restored := db + "_restored"
			t.Cleanup(func() {
				for _, d := range []string{restored, db + DrillSuffix} {
					_, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + d + " SYNC")
				}
			})
			sql := func(t *testing.T, q string) string {
				t.Helper()
				out, err := env.ModernQuery(q)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				return out
			}
			table := db + ".events_full"
			sql(t, "CREATE TABLE "+table+" "+eventsFull)
			// Merges stay off, so that the patch parts stay unapplied, as they are between merges.
			sql(t, "SYSTEM STOP MERGES "+table)
			for i, month := range []string{"2026-05-01", "2026-06-01"} {
				sql(t, fmt.Sprintf(`INSERT INTO %s SELECT number + %d, ['p1', 'p2'][number %% 2 + 1], toDateTime64('%s 00:00:00', 3) + number,
					'span ' || toString(number), 'first', false, if(number %% 7 = 0, NULL, 'out ' || toString(number)),
					toDateTime64('2026-07-01 00:00:00', 3), 0 FROM numbers(1000)`, table, i*1000, month))
			}
			// Langfuse's other way to delete: a newer version with is_deleted = 1, which FINAL
			// drops and a plain SELECT, hence an export, keeps.
			deleteByVersion := func(t *testing.T, mod int) {
				sql(t, fmt.Sprintf(`INSERT INTO %s SELECT id, project_id, start_time, name, v, bookmarked, output, event_ts + 1, 1
					FROM %[1]s WHERE id %% 10 = %d AND id < 1000`, table, mod))
			}
			deleteByVersion(t, 6)
			// What a SELECT reads, per partition: every row, and the rows FINAL keeps.
			rows := func(t *testing.T, db string) string {
				t.Helper()
				q := "SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM " + db + ".events_full%s GROUP BY _partition_id ORDER BY _partition_id"
				return sql(t, fmt.Sprintf(q, "")) + "\nFINAL\n" + sql(t, fmt.Sprintf(q, " FINAL"))
			}

			cfg, repo, backup := modernBackups(ctx, t, env, db, mode)
			backup(t)

			restoreSnapshot := func(t *testing.T, m *store.Manifest, o restore.Options) {
				t.Helper()
				o.Native, o.HTTP, o.Conn, o.Log = cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses, clickhouse.ConnOptions{User: "default"}, quiet
				rs, err := restore.New(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				defer rs.Close()
				plan, err := rs.Plan(ctx, m)
				if err != nil {
					t.Fatalf("plan: %v", err)
				}
				if err := rs.Execute(ctx, repo, plan, nil); err != nil {
					t.Fatalf("restore: %v", err)
				}
			}
			// check proves an incremental snapshot m taken after writes into 202605.
			check := func(t *testing.T, m *store.Manifest, uploaded, reused []string) {
				t.Helper()
				want := rows(t, db)
				// (a) the changed partition is uploaded again, the unchanged one reused.
				got := map[string]bool{}
				for _, o := range m.Objects {
					if o.Kind != "partition" {
						continue
					}
					if strings.HasPrefix(o.Partition, "patch-") {
						t.Errorf("the snapshot stores an object for partition %s", o.Partition) // (b)
					}
					got[o.Partition] = o.Reused
				}
				for _, p := range uploaded {
					if reused, ok := got[p]; !ok || reused {
						t.Errorf("partition %s: reused %v (listed %v); want it uploaded again", p, reused, ok)
					}
				}
				for _, p := range reused {
					if reused, ok := got[p]; !ok || !reused {
						t.Errorf("partition %s: reused %v (listed %v); want its earlier object reused", p, reused, ok)
					}
				}
				// (b) no patch-… partition recorded; the patch parts recorded with their partition.
				sec, _, err := clickhouse.SnapshotSection(m)
				if err != nil {
					t.Fatal(err)
				}
				for _, tbl := range sec.Tables {
					for _, p := range tbl.Partitions {
						if strings.HasPrefix(p.ID, "patch-") {
							t.Errorf("the snapshot records partition %s", p.ID)
						}
						if p.Content == nil {
							t.Errorf("partition %s: no content checksum recorded", p.ID)
						}
						if p.ID == "202605" {
							if len(p.Patches) == 0 {
								t.Errorf("partition 202605 recorded without its patch parts: %+v", p.Partition)
							}
							// Freeze mode cannot carry patch parts: the partition is exported logically.
							if p.ObjectFormat() != clickhouse.FormatNative {
								t.Errorf("partition 202605 (with patch parts) stored as %s; want %s", p.ObjectFormat(), clickhouse.FormatNative)
							}
						}
					}
				}
				// (c, d) restored into a fresh database, it reads as the source does.
				sql(t, "DROP DATABASE IF EXISTS "+restored+" SYNC")
				restoreSnapshot(t, m, restore.Options{DatabaseMap: map[string]string{db: restored}})
				if got := rows(t, restored); got != want {
					t.Errorf("restored rows per partition:\n%s\nwant the source's\n%s", got, want)
				}
				// (e) a drill restores the snapshot and its content checksums agree.
				res, err := Drill(ctx, cfg, repo, DrillRequest{Snapshot: m.ID}, quiet)
				if err != nil {
					t.Fatalf("drill: %v (%+v)", err, res)
				}
				if len(res.Sources) != 1 || res.Sources[0].Content != "compared for 2 partitions" {
					t.Errorf("drill sources %+v: want both partitions' content checksums compared", res.Sources)
				}
			}
			patches := func(t *testing.T) string {
				return sql(t, "SELECT count() FROM system.parts WHERE database = '"+db+"' AND table = 'events_full' AND active AND partition_id LIKE 'patch-%-202605'")
			}

			t.Run("patch mode", func(t *testing.T) {
				for _, q := range []string{
					"UPDATE " + table + " SET v = 'second' WHERE id % 10 = 1 AND id < 1000",
					"UPDATE " + table + " SET bookmarked = true, output = NULL WHERE id % 10 = 2 AND id < 1000",
					"UPDATE " + table + " SET v = 'third', name = 'renamed' WHERE id % 10 = 3 AND id < 1000",
					"DELETE FROM " + table + " WHERE id % 10 = 4 AND id < 1000 SETTINGS lightweight_delete_mode = 'lightweight_update'",
				} {
					sql(t, q)
				}
				if n := patches(t); n == "0" {
					t.Fatal("the updates wrote no patch parts of partition 202605")
				}
				check(t, backup(t), []string{"202605"}, []string{"202606"})
			})
			t.Run("mask mode", func(t *testing.T) {
				// The mask is written by a mutation, which runs only while merges do.
				sql(t, "SYSTEM START MERGES "+table)
				sql(t, "DELETE FROM "+table+" WHERE id % 10 = 5 AND id < 1000 SETTINGS lightweight_delete_mode = 'alter_update'")
				sql(t, "SYSTEM STOP MERGES "+table)
				deleteByVersion(t, 7)
				if n := sql(t, "SELECT count() FROM system.parts WHERE database = '"+db+"' AND table = 'events_full' AND active AND partition_id = '202605' AND has_lightweight_delete"); n != "1" {
					t.Fatalf("%s parts of 202605 with a lightweight delete mask; want 1", n)
				}
				t.Logf("%s patch parts of 202605 left unapplied", patches(t))
				// A mutation gives every part of the table a new name, those it left alone too:
				// 202606 is uploaded again as well, which is not this test's point.
				check(t, backup(t), []string{"202605"}, nil)
			})
			t.Run("in place over later updates", func(t *testing.T) {
				// Unchanged since the last snapshot, patch parts and all: every object is reused.
				want := rows(t, db)
				m := backup(t)
				if tot := m.Totals(); tot.Reused != tot.Objects {
					t.Errorf("a snapshot of the unchanged table reused %d of its %d objects; want all", tot.Reused, tot.Objects)
				}
				sql(t, "UPDATE "+table+" SET v = 'later' WHERE id % 10 = 8 AND id < 1000")
				sql(t, "DELETE FROM "+table+" WHERE id % 10 = 9 AND id < 1000 SETTINGS lightweight_delete_mode = 'lightweight_update'")
				if rows(t, db) == want {
					t.Fatal("the later update and delete changed no row")
				}
				// REPLACE PARTITION over a partition with patch parts: theirs do not apply to the
				// restored parts, which are newer.
				restoreSnapshot(t, m, restore.Options{Replace: true})
				if got := rows(t, db); got != want {
					t.Errorf("rows per partition after restoring the snapshot over later updates:\n%s\nwant the snapshot's\n%s", got, want)
				}
			})
		})
	}
}

// modernBackups configures backups of db alone on the modern engine in the given mode, into a
// fresh directory repository, and returns them with a function that takes one (ClickHouse only).
func modernBackups(ctx context.Context, t *testing.T, env *devstack.Env, db, mode string) (*config.Config, *store.Repository, func(*testing.T) *store.Manifest) {
	t.Helper()
	cfg := daemonConfig(t, env, t.TempDir())
	cfg.ZooKeeper.Servers = nil
	cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses = []string{env.CHModernNative}, []string{env.CHModernHTTP}
	cfg.ClickHouse.Databases, cfg.ClickHouse.Mode = []string{db}, mode
	repo, err := CreateRepository(ctx, cfg.Storage, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, repo, func(t *testing.T) *store.Manifest {
		t.Helper()
		m, err := Backup(ctx, cfg, repo, BackupRequest{Only: []string{config.SourceClickHouse}}, quiet)
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		return m
	}
}
