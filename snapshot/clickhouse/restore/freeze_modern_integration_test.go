package restore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// freezeBackup takes a freeze-mode snapshot of f's database; dataPath is [clickhouse] data_path,
// empty to use the server's own path, which is this host's too.
func freezeBackup(t testing.TB, f *chtest.Modern, dataPath string) *store.Manifest {
	t.Helper()
	src := &clickhouse.Source{Native: []string{f.Env.CHModernNative}, Conn: clickhouse.ConnOptions{User: "default"}, Filter: clickhouse.Filter{Databases: []string{f.DB}},
		Mode: clickhouse.ModeFreeze, DataPath: dataPath, Log: chtest.Quiet}
	m, err := snapshot.Run(context.Background(), f.Repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	if err != nil {
		t.Fatalf("freeze backup of %s on ch-modern: %v", f.DB, err)
	}
	if left := f.Shadow(t); len(left) > 0 {
		t.Errorf("shadow directories left on ch-modern after the backup: %v", left)
	}
	return m
}

// restoreModern runs a restore of m with o on ch-modern.
func restoreModern(t testing.TB, f *chtest.Modern, m *store.Manifest, o restore.Options) {
	t.Helper()
	ctx := context.Background()
	o.Native, o.HTTP, o.Conn, o.Log = []string{f.Env.CHModernNative}, []string{f.Env.CHModernHTTP}, clickhouse.ConnOptions{User: "default"}, chtest.Quiet
	if _, err := planAndRestore(ctx, o, f.Repo, m, nil); err != nil {
		t.Fatalf("restore on ch-modern: %v", err)
	}
}

// TestModernFreezeBackupRestore: freeze mode on ClickHouse 26.x, on the engine's own files.
// FREEZE ... WITH NAME puts an Atomic table's parts in shadow/<name>/store/<xxx>/<uuid>/; the
// backup tars wide and compact parts of Langfuse's column types, removes its shadow, and a
// restore after DROP DATABASE attaches them through the staging twin's detached/ with every
// partition's rows and hash unchanged and every table's UUID kept.
func TestModernFreezeBackupRestore(t *testing.T) {
	f := chtest.NewModern(t, true)
	for tbl, engine := range chtest.ModernTables {
		extras := ""
		if tbl == "events" {
			extras = chtest.ModernExtras
		}
		f.SQL(t, fmt.Sprintf("CREATE TABLE %s.%s %s%s) %s", f.DB, tbl, chtest.ModernColumns, extras, engine))
		f.SQL(t, chtest.ModernRows(f.DB, tbl, 5, 500, 1)) // wide
		if tbl == "events" {
			// A lightweight delete (DELETE FROM) mutates the part: its name
			// gains the mutation's version and it gains a _row_exists mask. Waits for it.
			f.SQL(t, "DELETE FROM "+f.DB+".events WHERE note IS NULL")
		}
		// Merges stay off, so that the parts, and the Replacing table's duplicates, are as inserted.
		f.SQL(t, "SYSTEM STOP MERGES "+f.DB+"."+tbl)
		f.SQL(t, chtest.ModernRows(f.DB, tbl, 6, 40, 2))  // compact
		f.SQL(t, chtest.ModernRows(f.DB, tbl, 7, 300, 3)) // wide and compact in one partition,
		f.SQL(t, chtest.ModernRows(f.DB, tbl, 7, 20, 4))  // the second a new version of the first's first rows
		if got, want := f.PartTypes(t, tbl), "['202605 Wide','202606 Compact','202607 Compact','202607 Wide']"; got != want {
			t.Fatalf("%s parts %s; want %s (min_rows_for_wide_part did not choose the part types)", tbl, got, want)
		}
	}
	if got := f.SQL(t, "SELECT groupArray(name) FROM system.parts WHERE database = '"+f.DB+"' AND table = 'events' AND active AND partition_id = '202605'"); !strings.HasPrefix(got, "['202605_1_1_0_") {
		t.Fatalf("events partition 202605 parts %s; want one mutated by the lightweight delete", got)
	}
	before, ids := f.Checksums(t, f.DB), f.UUIDs(t, f.DB)

	// The data path as mounted somewhere else on this host than where the server has it.
	mount := filepath.Join(t.TempDir(), "ch-modern")
	if err := os.Symlink(f.Env.CHModernData, mount); err != nil {
		t.Fatal(err)
	}
	m := freezeBackup(t, f, mount)
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	// Every capability, detected from the live engine's system columns and version.
	c := sec.Capabilities
	if want := (clickhouse.Capabilities{Version: c.Version, Major: 26, Minor: c.Minor, TableUUIDs: true, DatabaseUUIDs: true, OptimizeOnInsert: true, RestoreReplica: true, DefaultReplicatedArgs: true,
		FreezeWithName: true, PartHashes: true, TableDataPaths: true, Disks: true, LightweightDeletes: true, FormatRow: true, TupleHash: true, PatchParts: true}); c != want || c.Minor == 0 {
		t.Errorf("capabilities of ClickHouse %s recorded as %+v; want %+v", c.Version, c, want)
	}
	for _, tbl := range sec.Tables {
		if len(tbl.Partitions) != 3 {
			t.Errorf("%s: %d partitions recorded; want 3", tbl.Name, len(tbl.Partitions))
		}
		for _, p := range tbl.Partitions {
			if p.Format != clickhouse.FormatPartsTar {
				t.Errorf("%s partition %s has format %q; want %q", tbl.Name, p.ID, p.Format, clickhouse.FormatPartsTar)
			}
			if p.Content == nil || p.Content.Rows == 0 {
				t.Errorf("%s partition %s: content checksum %+v; want one over its rows", tbl.Name, p.ID, p.Content)
			}
		}
	}
	contents := func(m *store.Manifest) map[string]clickhouse.ContentSum {
		sec, _, err := clickhouse.SnapshotSection(m)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]clickhouse.ContentSum{}
		for _, tbl := range sec.Tables {
			for _, p := range tbl.Partitions {
				if p.Content != nil {
					out[tbl.Name+" "+p.ID] = *p.Content
				}
			}
		}
		return out
	}

	// One partition changes: the next backup freezes and uploads it alone. (Before any restore,
	// which attaches parts under new names and so makes every partition new.)
	f.SQL(t, chtest.ModernRows(f.DB, "events", 6, 10, 4))
	m2 := freezeBackup(t, f, "") // the server's own path: tracevault runs beside it
	var fresh []string
	for _, o := range m2.Objects {
		if o.Kind == "partition" && !o.Reused {
			fresh = append(fresh, o.Table+" "+o.Partition)
		}
	}
	sort.Strings(fresh)
	if want := "[events 202606]"; fmt.Sprint(fresh) != want {
		t.Errorf("objects uploaded by the second backup: %v; want only %s", fresh, want)
	}
	// Reused objects carry their content checksums over; the changed partition's is new.
	was, now := contents(m), contents(m2)
	for k, c := range was {
		if changed := k == "events 202606"; now[k] == c == changed {
			t.Errorf("%s: content checksum %+v, then %+v (changed: %v)", k, c, now[k], changed)
		}
	}
	before2 := f.Checksums(t, f.DB)

	t.Run("data path not on this host", func(t *testing.T) {
		ctx := context.Background()
		elsewhere := t.TempDir()
		src := &clickhouse.Source{Native: []string{f.Env.CHModernNative}, Conn: clickhouse.ConnOptions{User: "default"}, Filter: clickhouse.Filter{Databases: []string{f.DB}},
			Mode: clickhouse.ModeFreeze, DataPath: elsewhere, Log: chtest.Quiet}
		_, err := snapshot.Run(ctx, f.Repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
		if err == nil || !strings.Contains(err.Error(), `mode = "logical"`) || !strings.Contains(err.Error(), "data_path") {
			t.Errorf("backup with a data_path that is not ch-modern's: %v; want the cause and both fixes", err)
		}
		if n := f.SQL(t, "SELECT count() FROM system.databases WHERE name LIKE '__tracevault_probe_%'"); n != "0" {
			t.Errorf("%s probe databases left on ch-modern", n)
		}
		rs, err := restore.New(ctx, restore.Options{Native: []string{f.Env.CHModernNative}, HTTP: []string{f.Env.CHModernHTTP}, Conn: clickhouse.ConnOptions{User: "default"},
			DatabaseMap: map[string]string{f.DB: f.DB + "_copy"}, DataPath: elsewhere, Log: chtest.Quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		if _, err := rs.Plan(ctx, m); err == nil || !strings.Contains(err.Error(), "frozen parts") || !strings.Contains(err.Error(), "data_path") {
			t.Errorf("restore plan with ch-modern's data path not here: %v; want the cause and the fix", err)
		}
	})

	for _, c := range []struct {
		name     string
		m        *store.Manifest
		dataPath string
		want     map[string]string
	}{{"full", m, mount, before}, {"incremental", m2, "", before2}} {
		t.Run("restore "+c.name+" after drop database", func(t *testing.T) {
			f.SQL(t, "DROP DATABASE "+f.DB+" SYNC")
			restoreModern(t, f, c.m, restore.Options{DataPath: c.dataPath})
			if got := f.Checksums(t, f.DB); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("per partition after the restore:\n%v\nwant\n%v", got, c.want)
			}
			if got := f.UUIDs(t, f.DB); got != ids {
				t.Errorf("tables restored with UUIDs %s; want their own %s", got, ids)
			}
			where := " WHERE database = '" + f.DB + "' AND table = 'events' AND active"
			if proj, parts := f.SQL(t, "SELECT count() FROM system.projection_parts"+where+" AND name = 'by_ts'"), f.SQL(t, "SELECT count() FROM system.parts"+where); proj != parts {
				t.Errorf("restored events has %s active parts of projection by_ts; want one per part, %s", proj, parts)
			}
			for tbl := range chtest.ModernTables {
				// Attached parts keep their type: nothing was rewritten on the way.
				if got := f.PartTypes(t, tbl); !strings.Contains(got, "Compact") || !strings.Contains(got, "Wide") {
					t.Errorf("restored %s parts %s; want both compact and wide ones", tbl, got)
				}
			}
		})
	}

	t.Run("one partition over changed rows", func(t *testing.T) {
		for tbl := range chtest.ModernTables {
			f.SQL(t, chtest.ModernRows(f.DB, tbl, 7, 30, 9))
		}
		restoreModern(t, f, m2, restore.Options{Partitions: []string{"202607"}, Replace: true})
		if got := f.Checksums(t, f.DB); fmt.Sprint(got) != fmt.Sprint(before2) {
			t.Errorf("per partition after restoring 202607:\n%v\nwant\n%v", got, before2)
		}
	})

	t.Run("into a copy with database-map", func(t *testing.T) {
		copyDB := f.DB + "_copy"
		t.Cleanup(func() { _, _ = f.Env.ModernQuery("DROP DATABASE IF EXISTS " + copyDB + " SYNC") })
		restoreModern(t, f, m2, restore.Options{DatabaseMap: map[string]string{f.DB: copyDB}})
		if got := f.Checksums(t, copyDB); fmt.Sprint(got) != fmt.Sprint(before2) {
			t.Errorf("the copy per partition:\n%v\nwant\n%v", got, before2)
		}
		if got := f.UUIDs(t, copyDB); got == ids || !strings.Contains(got, "events") {
			t.Errorf("the copy's tables have UUIDs %s; want fresh ones beside the original's %s", got, ids)
		}
	})
}

// TestModernFreezeDuringInserts: a freeze backup taken while rows are inserted records what it
// froze, not what it listed, so the restore's row check passes and every frozen row is back.
// Partition 202605 is large, so its upload leaves time for inserts into 202606 between that
// partition's listing and its freeze.
func TestModernFreezeDuringInserts(t *testing.T) {
	f := chtest.NewModern(t, true)
	f.SQL(t, "CREATE TABLE "+f.DB+".events "+chtest.ModernColumns+") ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id)")
	f.SQL(t, chtest.ModernRows(f.DB, "events", 5, 300000, 1))
	f.SQL(t, chtest.ModernRows(f.DB, "events", 6, 1000, 1))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inserts := make(chan error, 1)
	go func() {
		for n := 0; ctx.Err() == nil; n++ {
			if _, err := f.Env.ModernQuery(chtest.ModernRows(f.DB, "events", 6, 50, 10+n)); err != nil {
				inserts <- err
				return
			}
		}
		inserts <- nil
	}()
	rows := func(m *store.Manifest) (total, june uint64) {
		sec, _, err := clickhouse.SnapshotSection(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, tbl := range sec.Tables {
			for _, p := range tbl.Partitions {
				total += p.Rows
				if p.ID == "202606" {
					june = p.Rows
				}
			}
		}
		return total, june
	}
	var m *store.Manifest
	var recorded uint64
	for i := 0; ; i++ {
		started, err := strconv.ParseUint(f.SQL(t, "SELECT count() FROM "+f.DB+".events WHERE _partition_id = '202606'"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		m = freezeBackup(t, f, "")
		var june uint64
		if recorded, june = rows(m); june > started {
			break // this backup froze rows inserted after it had begun
		}
		if i == 10 {
			t.Fatalf("10 backups froze no row inserted while they ran (202606 had %d rows before the last, recorded %d)", started, june)
		}
	}
	cancel()
	if err := <-inserts; err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	f.SQL(t, "DROP DATABASE "+f.DB+" SYNC")
	restoreModern(t, f, m, restore.Options{})
	if got := f.SQL(t, "SELECT count() FROM "+f.DB+".events"); got != fmt.Sprint(recorded) {
		t.Errorf("restored %s rows; the snapshot records %d", got, recorded)
	}
}

// TestModernFreezeOrdinaryDatabase: the other shadow layout on the same engine. An Ordinary
// database (deprecated, still created on request) keeps a table's parts in data/<db>/<table>/,
// which a freeze mirrors as shadow/<name>/data/<db>/<table>/; the restore re-creates the
// database with the server's default engine, Atomic, and attaches the parts there.
func TestModernFreezeOrdinaryDatabase(t *testing.T) {
	f := chtest.NewModern(t, false)
	ctx := context.Background()
	srv, err := clickhouse.Dial(ctx, f.Env.CHModernNative, clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	deprecated := ch.Context(ctx, ch.WithSettings(ch.Settings{"allow_deprecated_database_ordinary": 1}))
	if err := srv.Conn.Exec(deprecated, "CREATE DATABASE "+f.DB+" ENGINE = Ordinary"); err != nil {
		t.Fatal(err)
	}
	f.SQL(t, "CREATE TABLE "+f.DB+".events "+chtest.ModernColumns+") ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id) SETTINGS min_rows_for_wide_part = 100, min_bytes_for_wide_part = 0")
	f.SQL(t, chtest.ModernRows(f.DB, "events", 5, 500, 1))
	f.SQL(t, chtest.ModernRows(f.DB, "events", 6, 40, 2))
	if got := f.SQL(t, "SELECT groupArray(data_paths) FROM system.tables WHERE database = '"+f.DB+"'"); !strings.Contains(got, "/data/"+f.DB+"/events/") {
		t.Fatalf("the Ordinary database's table is at %s; want data/<db>/<table>/", got)
	}
	want := f.SQL(t, "SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM "+f.DB+".events GROUP BY _partition_id ORDER BY _partition_id")
	m := freezeBackup(t, f, "")
	f.SQL(t, "DROP DATABASE "+f.DB+" SYNC")
	restoreModern(t, f, m, restore.Options{})
	if got := f.SQL(t, "SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM "+f.DB+".events GROUP BY _partition_id ORDER BY _partition_id"); got != want {
		t.Errorf("per partition after the restore:\n%s\nwant\n%s", got, want)
	}
	if got := f.PartTypes(t, "events"); got != "['202605 Wide','202606 Compact']" {
		t.Errorf("restored parts %s; want a wide and a compact one", got)
	}
}

// TestModernLightweightDeleteIncremental: a lightweight delete (DELETE FROM) keeps the deleted
// rows in the part behind a _row_exists mask, so system.parts counts them and SELECT does not.
// In either mode, the second snapshot of an unchanged partition reuses the first's object and
// must record the rows that object holds: the visible ones for a logical object, the part's
// for frozen parts. Restoring the second snapshot is what checks it.
func TestModernLightweightDeleteIncremental(t *testing.T) {
	for _, mode := range []string{clickhouse.ModeLogical, clickhouse.ModeFreeze} {
		t.Run(mode, func(t *testing.T) {
			f := chtest.NewModern(t, true)
			f.SQL(t, "CREATE TABLE "+f.DB+".events "+chtest.ModernColumns+") ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id)")
			f.SQL(t, chtest.ModernRows(f.DB, "events", 5, 500, 1))
			f.SQL(t, chtest.ModernRows(f.DB, "events", 6, 500, 1))
			// Logical mode refuses JSON columns it cannot check; this test is about row counts.
			f.SQL(t, "ALTER TABLE "+f.DB+".events DROP COLUMN payload SETTINGS mutations_sync = 2")
			f.SQL(t, "DELETE FROM "+f.DB+".events WHERE note IS NULL AND toMonth(ts) = 5")
			if got := f.SQL(t, "SELECT groupArray(partition_id || ' ' || toString(rows) || ' ' || toString(has_lightweight_delete)) FROM (SELECT * FROM system.parts WHERE database = '"+f.DB+"' AND active ORDER BY partition_id)"); got != "['202605 500 1','202606 500 0']" {
				t.Fatalf("parts %s; want 202605 with 500 rows and deletes", got)
			}
			want := f.SQL(t, "SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM "+f.DB+".events GROUP BY _partition_id ORDER BY _partition_id")
			src := &clickhouse.Source{Native: []string{f.Env.CHModernNative}, HTTP: []string{f.Env.CHModernHTTP}, Conn: clickhouse.ConnOptions{User: "default"},
				Filter: clickhouse.Filter{Databases: []string{f.DB}}, Mode: mode, Log: chtest.Quiet}
			var m *store.Manifest
			for i := 0; i < 2; i++ {
				var err error
				if m, err = snapshot.Run(context.Background(), f.Repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet}); err != nil {
					t.Fatal(err)
				}
			}
			if tot := m.Totals(); tot.Reused != tot.Objects {
				t.Fatalf("second snapshot reused %d of %d objects; want all", tot.Reused, tot.Objects)
			}
			f.SQL(t, "DROP DATABASE "+f.DB+" SYNC")
			restoreModern(t, f, m, restore.Options{})
			if got := f.SQL(t, "SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM "+f.DB+".events GROUP BY _partition_id ORDER BY _partition_id"); got != want {
				t.Errorf("per partition after restoring the second snapshot:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestModernRestoreOfAnEmptiedPartition: every row of a partition deleted in place (a
// lightweight DELETE) before the backup leaves parts that system.parts lists and a partition
// the snapshot records with 0 rows. ClickHouse 26.x refuses REPLACE PARTITION from an empty
// staging partition (code 36), which failed a modern chaos run's restore. The restore must
// leave that partition empty: in a new database, and with Replace over a database whose
// partition holds rows again.
func TestModernRestoreOfAnEmptiedPartition(t *testing.T) {
	f := chtest.NewModern(t, true)
	f.SQL(t, "CREATE TABLE "+f.DB+".events "+chtest.ModernColumns+") ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id)")
	f.SQL(t, chtest.ModernRows(f.DB, "events", 5, 300, 1))
	f.SQL(t, chtest.ModernRows(f.DB, "events", 6, 300, 1))
	f.SQL(t, "ALTER TABLE "+f.DB+".events DROP COLUMN payload SETTINGS mutations_sync = 2") // logical mode refuses JSON it cannot check
	f.SQL(t, "DELETE FROM "+f.DB+".events WHERE toMonth(ts) = 5")
	perPartition := func(db string) string {
		return f.SQL(t, "SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM "+db+".events GROUP BY _partition_id ORDER BY _partition_id")
	}
	want := perPartition(f.DB)
	if strings.Contains(want, "202605") {
		t.Fatalf("partition 202605 still has rows after the delete: %s", want)
	}
	src := &clickhouse.Source{Native: []string{f.Env.CHModernNative}, HTTP: []string{f.Env.CHModernHTTP}, Conn: clickhouse.ConnOptions{User: "default"},
		Filter: clickhouse.Filter{Databases: []string{f.DB}}, Mode: clickhouse.ModeLogical, Log: chtest.Quiet}
	m, err := snapshot.Run(context.Background(), f.Repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	recorded := ""
	for _, tbl := range sec.Tables {
		for _, p := range tbl.Partitions {
			recorded += fmt.Sprintf("%s %d;", p.ID, p.Rows)
		}
	}
	if recorded != "202605 0;202606 300;" {
		t.Fatalf("the snapshot records partitions %q; want 202605 with 0 rows beside 202606", recorded)
	}

	into := f.Env.ModernDatabase(t, "it_mempty")
	restoreModern(t, f, m, restore.Options{DatabaseMap: map[string]string{f.DB: into}})
	if got := perPartition(into); got != want {
		t.Errorf("restored into a new database:\n%s\nwant\n%s", got, want)
	}
	f.SQL(t, "INSERT INTO "+f.DB+".events SELECT * REPLACE (ts - INTERVAL 1 MONTH AS ts) FROM "+f.DB+".events WHERE toMonth(ts) = 6 LIMIT 50")
	restoreModern(t, f, m, restore.Options{Replace: true})
	if got := perPartition(f.DB); got != want {
		t.Errorf("restored with Replace over rows inserted since:\n%s\nwant\n%s", got, want)
	}
}
