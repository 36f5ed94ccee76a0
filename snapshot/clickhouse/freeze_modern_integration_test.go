package clickhouse

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/tracevault/tracevault/deploy/stack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// modernFreezeTables are two tables with the column types Langfuse uses on modern servers, by
// name, with what their CREATE adds after the columns. A part with fewer than 100 rows is
// compact, one with more is wide: min_bytes_for_wide_part = 0 leaves the row count alone to
// decide, so the inserts below choose each part's type. events also has a skip index and a
// projection, whose parts are subdirectories (<name>.proj/) of each part.
var modernFreezeTables = map[string]string{
	"events": `ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id)
		SETTINGS min_rows_for_wide_part = 100, min_bytes_for_wide_part = 0, lightweight_mutation_projection_mode = 'rebuild'`,
	"traces": `ENGINE = ReplacingMergeTree(ver, is_deleted) PARTITION BY toYYYYMM(ts) ORDER BY (project, id)
		SETTINGS min_rows_for_wide_part = 100, min_bytes_for_wide_part = 0`,
}

const modernFreezeColumns = `(id UUID, ts DateTime64(3), project LowCardinality(String), attrs Map(LowCardinality(String), String),
	note Nullable(String), cost Decimal64(12), tags Array(String), public Bool, ver UInt64, is_deleted UInt8,
	payload JSON`

// modernFreezeExtras are what events adds to its columns.
const modernFreezeExtras = `, INDEX idx_attrs mapKeys(attrs) TYPE bloom_filter(0.01) GRANULARITY 1,
	PROJECTION by_ts (SELECT * ORDER BY ts)`

// modernFreezeRows inserts n rows into partition 2026-<month>, row k with the id of every
// insert's row k in that month; seed is the rows' version and varies their values.
func modernFreezeRows(db, table string, month, n, seed int) string {
	return fmt.Sprintf(`INSERT INTO %s.%s SELECT
		reinterpretAsUUID(cityHash64(number, %[3]d)), toDateTime64('2026-%02[3]d-01 00:00:00', 3) + number * 0.001 + number %% 86400,
		['alpha', 'beta', 'gamma'][number %% 3 + 1], map('k' || toString(number %% 5), toString(number * %[5]d), 'env', 'prod'),
		if(number %% 4 = 0, NULL, 'note ' || toString(number)), toDecimal64(number / 7, 12), arrayMap(i -> toString(i), range(number %% 4)),
		number %% 2 = 0, %[5]d, 0,
		concat('{"model":"m', toString(number %% 3), '","usage":{"input":', toString(number), '}', if(number %% 5 = 0, ',"extra":[1,2]', ''), '}')
		FROM numbers(%[4]d)`, db, table, month, n, seed)
}

type modernFreeze struct {
	env  *stack.Env
	db   string
	repo *store.Repository
	log  *slog.Logger
}

// newModernFreeze makes a scratch Atomic database on ch-modern, unless atomic is false: the
// test then creates f.db itself, dropped when it ends.
func newModernFreeze(t *testing.T, atomic bool) *modernFreeze {
	t.Helper()
	env := stack.RequireModern(t)
	if env.CHModernData == "" {
		t.Fatal("the stack exports no STACK_CH_MODERN_DATA: freeze mode needs ch-modern's data path")
	}
	f := &modernFreeze{env: env, db: stack.ScratchName("it_mfrz"), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	repo, err := store.Open(context.Background(), store.Options{URL: "file://" + t.TempDir(), Log: f.log})
	if err != nil {
		t.Fatal(err)
	}
	f.repo = repo
	if atomic {
		f.db = env.ModernDatabase(t, "it_mfrz")
	} else {
		t.Cleanup(func() { _, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + f.db + " SYNC") })
	}
	return f
}

func (f *modernFreeze) sql(t testing.TB, q string) string {
	t.Helper()
	out, err := f.env.ModernQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// backup takes a freeze-mode snapshot; dataPath is [clickhouse] data_path, empty to use the
// server's own path, which is this host's too.
func (f *modernFreeze) backup(t testing.TB, dataPath string) *store.Manifest {
	t.Helper()
	src := &Source{Native: []string{f.env.CHModernNative}, Conn: ConnOptions{User: "default"}, Filter: Filter{Databases: []string{f.db}},
		Mode: ModeFreeze, DataPath: dataPath, Log: f.log}
	m, err := snapshot.Run(context.Background(), f.repo, []snapshot.Source{src}, snapshot.Options{Log: f.log})
	if err != nil {
		t.Fatalf("freeze backup of %s on ch-modern: %v", f.db, err)
	}
	if left := f.shadow(t); len(left) > 0 {
		t.Errorf("shadow directories left on ch-modern after the backup: %v", left)
	}
	return m
}

// restore runs a restore of m with o on ch-modern.
func (f *modernFreeze) restore(t testing.TB, m *store.Manifest, o RestoreOptions) {
	t.Helper()
	ctx := context.Background()
	o.Native, o.HTTP, o.Conn, o.Log = []string{f.env.CHModernNative}, []string{f.env.CHModernHTTP}, ConnOptions{User: "default"}, f.log
	rs, err := NewRestorer(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	plan, err := rs.Plan(ctx, m)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if err := rs.Execute(ctx, f.repo, plan, nil); err != nil {
		t.Fatalf("restore on ch-modern: %v", err)
	}
}

// shadow lists this test's freezes left in ch-modern's shadow/ (other tests' may run at once).
func (f *modernFreeze) shadow(t testing.TB) []string {
	t.Helper()
	var out []string
	entries, err := os.ReadDir(filepath.Join(f.env.CHModernData, "shadow"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "tracevault_") {
			out = append(out, e.Name())
		}
	}
	return out
}

// checksums is each table's per-partition row count and content hash. The Replacing table is
// read with FINAL, so that a merge after the restore, which may collapse versions, cannot
// change it; the restore's own row check compares the raw rows before the swap.
func (f *modernFreeze) checksums(t testing.TB, db string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for tbl, engine := range modernFreezeTables {
		final := ""
		if strings.HasPrefix(engine, "Replacing") {
			final = " FINAL"
		}
		out[tbl] = f.sql(t, fmt.Sprintf("SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM %s.%s%s GROUP BY _partition_id ORDER BY _partition_id", db, tbl, final))
	}
	return out
}

func (f *modernFreeze) uuids(t testing.TB, db string) string {
	return f.sql(t, "SELECT groupArray(name || ' ' || toString(uuid)) FROM (SELECT name, uuid FROM system.tables WHERE database = '"+db+"' ORDER BY name)")
}

// partTypes is each table's "partition part_type" of its active parts.
func (f *modernFreeze) partTypes(t testing.TB, table string) string {
	return f.sql(t, "SELECT groupArray(partition_id || ' ' || part_type) FROM (SELECT partition_id, part_type FROM system.parts WHERE database = '"+f.db+"' AND table = '"+table+"' AND active ORDER BY partition_id, part_type)")
}

// TestModernFreezeBackupRestore: freeze mode on ClickHouse 26.x, on the engine's own files.
// FREEZE ... WITH NAME puts an Atomic table's parts in shadow/<name>/store/<xxx>/<uuid>/; the
// backup tars wide and compact parts of Langfuse's column types, removes its shadow, and a
// restore after DROP DATABASE attaches them through the staging twin's detached/ with every
// partition's rows and hash unchanged and every table's UUID kept.
func TestModernFreezeBackupRestore(t *testing.T) {
	f := newModernFreeze(t, true)
	for tbl, engine := range modernFreezeTables {
		extras := ""
		if tbl == "events" {
			extras = modernFreezeExtras
		}
		f.sql(t, fmt.Sprintf("CREATE TABLE %s.%s %s%s) %s", f.db, tbl, modernFreezeColumns, extras, engine))
		f.sql(t, modernFreezeRows(f.db, tbl, 5, 500, 1)) // wide
		if tbl == "events" {
			// A lightweight delete (DELETE FROM) mutates the part: its name
			// gains the mutation's version and it gains a _row_exists mask. Waits for it.
			f.sql(t, "DELETE FROM "+f.db+".events WHERE note IS NULL")
		}
		// Merges stay off, so that the parts, and the Replacing table's duplicates, are as inserted.
		f.sql(t, "SYSTEM STOP MERGES "+f.db+"."+tbl)
		f.sql(t, modernFreezeRows(f.db, tbl, 6, 40, 2))  // compact
		f.sql(t, modernFreezeRows(f.db, tbl, 7, 300, 3)) // wide and compact in one partition,
		f.sql(t, modernFreezeRows(f.db, tbl, 7, 20, 4))  // the second a new version of the first's first rows
		if got, want := f.partTypes(t, tbl), "['202605 Wide','202606 Compact','202607 Compact','202607 Wide']"; got != want {
			t.Fatalf("%s parts %s; want %s (min_rows_for_wide_part did not choose the part types)", tbl, got, want)
		}
	}
	if got := f.sql(t, "SELECT groupArray(name) FROM system.parts WHERE database = '"+f.db+"' AND table = 'events' AND active AND partition_id = '202605'"); !strings.HasPrefix(got, "['202605_1_1_0_") {
		t.Fatalf("events partition 202605 parts %s; want one mutated by the lightweight delete", got)
	}
	before, ids := f.checksums(t, f.db), f.uuids(t, f.db)

	// The data path as mounted somewhere else on this host than where the server has it.
	mount := filepath.Join(t.TempDir(), "ch-modern")
	if err := os.Symlink(f.env.CHModernData, mount); err != nil {
		t.Fatal(err)
	}
	m := f.backup(t, mount)
	sec, _, err := SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	// Every capability, detected from the live engine's system columns and version.
	c := sec.Capabilities
	if want := (Capabilities{Version: c.Version, Major: 26, Minor: c.Minor, TableUUIDs: true, RestoreReplica: true, DefaultReplicatedArgs: true,
		FreezeWithName: true, PartHashes: true, TableDataPaths: true, Disks: true, LightweightDeletes: true, FormatRow: true}); c != want || c.Minor == 0 {
		t.Errorf("capabilities of ClickHouse %s recorded as %+v; want %+v", c.Version, c, want)
	}
	for _, tbl := range sec.Tables {
		if len(tbl.Partitions) != 3 {
			t.Errorf("%s: %d partitions recorded; want 3", tbl.Name, len(tbl.Partitions))
		}
		for _, p := range tbl.Partitions {
			if p.Format != FormatPartsTar {
				t.Errorf("%s partition %s has format %q; want %q", tbl.Name, p.ID, p.Format, FormatPartsTar)
			}
			if p.Content == nil || p.Content.Rows == 0 {
				t.Errorf("%s partition %s: content checksum %+v; want one over its rows", tbl.Name, p.ID, p.Content)
			}
		}
	}
	contents := func(m *store.Manifest) map[string]ContentSum {
		sec, _, err := SnapshotSection(m)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]ContentSum{}
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
	f.sql(t, modernFreezeRows(f.db, "events", 6, 10, 4))
	m2 := f.backup(t, "") // the server's own path: tracevault runs beside it
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
	before2 := f.checksums(t, f.db)

	t.Run("data path not on this host", func(t *testing.T) {
		ctx := context.Background()
		elsewhere := t.TempDir()
		src := &Source{Native: []string{f.env.CHModernNative}, Conn: ConnOptions{User: "default"}, Filter: Filter{Databases: []string{f.db}},
			Mode: ModeFreeze, DataPath: elsewhere, Log: f.log}
		_, err := snapshot.Run(ctx, f.repo, []snapshot.Source{src}, snapshot.Options{Log: f.log})
		if err == nil || !strings.Contains(err.Error(), `mode = "logical"`) || !strings.Contains(err.Error(), "data_path") {
			t.Errorf("backup with a data_path that is not ch-modern's: %v; want the cause and both fixes", err)
		}
		if n := f.sql(t, "SELECT count() FROM system.databases WHERE name LIKE '__tracevault_probe_%'"); n != "0" {
			t.Errorf("%s probe databases left on ch-modern", n)
		}
		rs, err := NewRestorer(ctx, RestoreOptions{Native: []string{f.env.CHModernNative}, HTTP: []string{f.env.CHModernHTTP}, Conn: ConnOptions{User: "default"},
			DatabaseMap: map[string]string{f.db: f.db + "_copy"}, DataPath: elsewhere, Log: f.log})
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
			f.sql(t, "DROP DATABASE "+f.db+" SYNC")
			f.restore(t, c.m, RestoreOptions{DataPath: c.dataPath})
			if got := f.checksums(t, f.db); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("per partition after the restore:\n%v\nwant\n%v", got, c.want)
			}
			if got := f.uuids(t, f.db); got != ids {
				t.Errorf("tables restored with UUIDs %s; want their own %s", got, ids)
			}
			where := " WHERE database = '" + f.db + "' AND table = 'events' AND active"
			if proj, parts := f.sql(t, "SELECT count() FROM system.projection_parts"+where+" AND name = 'by_ts'"), f.sql(t, "SELECT count() FROM system.parts"+where); proj != parts {
				t.Errorf("restored events has %s active parts of projection by_ts; want one per part, %s", proj, parts)
			}
			for tbl := range modernFreezeTables {
				// Attached parts keep their type: nothing was rewritten on the way.
				if got := f.partTypes(t, tbl); !strings.Contains(got, "Compact") || !strings.Contains(got, "Wide") {
					t.Errorf("restored %s parts %s; want both compact and wide ones", tbl, got)
				}
			}
		})
	}

	t.Run("one partition over changed rows", func(t *testing.T) {
		for tbl := range modernFreezeTables {
			f.sql(t, modernFreezeRows(f.db, tbl, 7, 30, 9))
		}
		f.restore(t, m2, RestoreOptions{Partitions: []string{"202607"}, Force: true})
		if got := f.checksums(t, f.db); fmt.Sprint(got) != fmt.Sprint(before2) {
			t.Errorf("per partition after restoring 202607:\n%v\nwant\n%v", got, before2)
		}
	})

	t.Run("into a copy with database-map", func(t *testing.T) {
		copyDB := f.db + "_copy"
		t.Cleanup(func() { _, _ = f.env.ModernQuery("DROP DATABASE IF EXISTS " + copyDB + " SYNC") })
		f.restore(t, m2, RestoreOptions{DatabaseMap: map[string]string{f.db: copyDB}})
		if got := f.checksums(t, copyDB); fmt.Sprint(got) != fmt.Sprint(before2) {
			t.Errorf("the copy per partition:\n%v\nwant\n%v", got, before2)
		}
		if got := f.uuids(t, copyDB); got == ids || !strings.Contains(got, "events") {
			t.Errorf("the copy's tables have UUIDs %s; want fresh ones beside the original's %s", got, ids)
		}
	})
}

// TestModernFreezeDuringInserts: a freeze backup taken while rows are inserted records what it
// froze, not what it listed, so the restore's row check passes and every frozen row is back.
// Partition 202605 is large, so its upload leaves time for inserts into 202606 between that
// partition's listing and its freeze.
func TestModernFreezeDuringInserts(t *testing.T) {
	f := newModernFreeze(t, true)
	f.sql(t, "CREATE TABLE "+f.db+".events "+modernFreezeColumns+") ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id)")
	f.sql(t, modernFreezeRows(f.db, "events", 5, 300000, 1))
	f.sql(t, modernFreezeRows(f.db, "events", 6, 1000, 1))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inserts := make(chan error, 1)
	go func() {
		for n := 0; ctx.Err() == nil; n++ {
			if _, err := f.env.ModernQuery(modernFreezeRows(f.db, "events", 6, 50, 10+n)); err != nil {
				inserts <- err
				return
			}
		}
		inserts <- nil
	}()
	rows := func(m *store.Manifest) (total, june uint64) {
		sec, _, err := SnapshotSection(m)
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
		started, err := strconv.ParseUint(f.sql(t, "SELECT count() FROM "+f.db+".events WHERE _partition_id = '202606'"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		m = f.backup(t, "")
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
	f.sql(t, "DROP DATABASE "+f.db+" SYNC")
	f.restore(t, m, RestoreOptions{})
	if got := f.sql(t, "SELECT count() FROM "+f.db+".events"); got != fmt.Sprint(recorded) {
		t.Errorf("restored %s rows; the snapshot records %d", got, recorded)
	}
}

// TestModernFreezeOrdinaryDatabase: the other shadow layout on the same engine. An Ordinary
// database (deprecated, still created on request) keeps a table's parts in data/<db>/<table>/,
// which a freeze mirrors as shadow/<name>/data/<db>/<table>/; the restore re-creates the
// database with the server's default engine, Atomic, and attaches the parts there.
func TestModernFreezeOrdinaryDatabase(t *testing.T) {
	f := newModernFreeze(t, false)
	ctx := context.Background()
	srv, err := Dial(ctx, f.env.CHModernNative, ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	deprecated := ch.Context(ctx, ch.WithSettings(ch.Settings{"allow_deprecated_database_ordinary": 1}))
	if err := srv.Conn.Exec(deprecated, "CREATE DATABASE "+f.db+" ENGINE = Ordinary"); err != nil {
		t.Fatal(err)
	}
	f.sql(t, "CREATE TABLE "+f.db+".events "+modernFreezeColumns+") ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id) SETTINGS min_rows_for_wide_part = 100, min_bytes_for_wide_part = 0")
	f.sql(t, modernFreezeRows(f.db, "events", 5, 500, 1))
	f.sql(t, modernFreezeRows(f.db, "events", 6, 40, 2))
	if got := f.sql(t, "SELECT groupArray(data_paths) FROM system.tables WHERE database = '"+f.db+"'"); !strings.Contains(got, "/data/"+f.db+"/events/") {
		t.Fatalf("the Ordinary database's table is at %s; want data/<db>/<table>/", got)
	}
	want := f.sql(t, "SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM "+f.db+".events GROUP BY _partition_id ORDER BY _partition_id")
	m := f.backup(t, "")
	f.sql(t, "DROP DATABASE "+f.db+" SYNC")
	f.restore(t, m, RestoreOptions{})
	if got := f.sql(t, "SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM "+f.db+".events GROUP BY _partition_id ORDER BY _partition_id"); got != want {
		t.Errorf("per partition after the restore:\n%s\nwant\n%s", got, want)
	}
	if got := f.partTypes(t, "events"); got != "['202605 Wide','202606 Compact']" {
		t.Errorf("restored parts %s; want a wide and a compact one", got)
	}
}

// TestModernLightweightDeleteIncremental: a lightweight delete (DELETE FROM) keeps the deleted
// rows in the part behind a _row_exists mask, so system.parts counts them and SELECT does not.
// In either mode, the second snapshot of an unchanged partition reuses the first's object and
// must record the rows that object holds: the visible ones for a logical object, the part's
// for frozen parts. Restoring the second snapshot is what checks it.
func TestModernLightweightDeleteIncremental(t *testing.T) {
	for _, mode := range []string{ModeLogical, ModeFreeze} {
		t.Run(mode, func(t *testing.T) {
			f := newModernFreeze(t, true)
			f.sql(t, "CREATE TABLE "+f.db+".events "+modernFreezeColumns+") ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id)")
			f.sql(t, modernFreezeRows(f.db, "events", 5, 500, 1))
			f.sql(t, modernFreezeRows(f.db, "events", 6, 500, 1))
			// Logical mode refuses JSON columns it cannot check; this test is about row counts.
			f.sql(t, "ALTER TABLE "+f.db+".events DROP COLUMN payload SETTINGS mutations_sync = 2")
			f.sql(t, "DELETE FROM "+f.db+".events WHERE note IS NULL AND toMonth(ts) = 5")
			if got := f.sql(t, "SELECT groupArray(partition_id || ' ' || toString(rows) || ' ' || toString(has_lightweight_delete)) FROM (SELECT * FROM system.parts WHERE database = '"+f.db+"' AND active ORDER BY partition_id)"); got != "['202605 500 1','202606 500 0']" {
				t.Fatalf("parts %s; want 202605 with 500 rows and deletes", got)
			}
			want := f.sql(t, "SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM "+f.db+".events GROUP BY _partition_id ORDER BY _partition_id")
			src := &Source{Native: []string{f.env.CHModernNative}, HTTP: []string{f.env.CHModernHTTP}, Conn: ConnOptions{User: "default"},
				Filter: Filter{Databases: []string{f.db}}, Mode: mode, Log: f.log}
			var m *store.Manifest
			for i := 0; i < 2; i++ {
				var err error
				if m, err = snapshot.Run(context.Background(), f.repo, []snapshot.Source{src}, snapshot.Options{Log: f.log}); err != nil {
					t.Fatal(err)
				}
			}
			if tot := m.Totals(); tot.Reused != tot.Objects {
				t.Fatalf("second snapshot reused %d of %d objects; want all", tot.Reused, tot.Objects)
			}
			f.sql(t, "DROP DATABASE "+f.db+" SYNC")
			f.restore(t, m, RestoreOptions{})
			if got := f.sql(t, "SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM "+f.db+".events GROUP BY _partition_id ORDER BY _partition_id"); got != want {
				t.Errorf("per partition after restoring the second snapshot:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestModernFreezeVanishedPartition: a partition dropped between its listing and its freeze
// (DROP PARTITION, a TTL) freezes to nothing, where the server makes no shadow directory. Its
// object is an empty archive, as a logical object of it would be empty, not a failed backup.
func TestModernFreezeVanishedPartition(t *testing.T) {
	f := newModernFreeze(t, true)
	f.sql(t, "CREATE TABLE "+f.db+".events "+modernFreezeColumns+") ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id)")
	f.sql(t, modernFreezeRows(f.db, "events", 5, 100, 1))
	ctx := context.Background()
	srv, err := Dial(ctx, f.env.CHModernNative, ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	root, err := newLocalFS("").root(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	f.sql(t, "ALTER TABLE "+f.db+".events DROP PARTITION ID '202605'")
	fz := &freezeReader{freeze: func() (*frozen, error) { return freezePartition(ctx, srv, root, f.db, "events", "202605") }}
	dst := t.TempDir()
	parts, err := extractPartsTar(fz, dst, os.Getuid(), os.Getgid())
	if err != nil {
		t.Fatalf("freeze of a dropped partition: %v; want an empty archive", err)
	}
	if len(parts) != 0 || fz.Rows() != 0 {
		t.Errorf("dropped partition froze to parts %v, %d rows; want none", parts, fz.Rows())
	}
	if err := fz.Close(); err != nil {
		t.Fatal(err)
	}
	if left := f.shadow(t); len(left) > 0 {
		t.Errorf("shadow directories left: %v", left)
	}
}
