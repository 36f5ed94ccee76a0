package clickhouse_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// modernFixture is the modern demo schema seeded into a scratch Atomic database on ch-modern
// (ClickHouse 26.x, one server) and a filesystem repository.
type modernFixture struct {
	t    *testing.T
	env  *devstack.Env
	db   string
	repo *store.Repository
}

func newModernFixture(t *testing.T, traces int) *modernFixture {
	t.Helper()
	env := devstack.RequireModern(t)
	f := &modernFixture{t: t, env: env, db: devstack.ScratchName("it_modern")}
	t.Cleanup(func() {
		for _, db := range []string{f.db, f.db + "_copy"} {
			_, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + db + " SYNC")
		}
	})
	ctx := context.Background()
	if _, err := demo.Seed(ctx, demo.Options{ClickHouse: []string{env.CHModernNative}, ClickHouseHTTP: []string{env.CHModernHTTP},
		Database: f.db, Modern: true, Traces: traces, Seed: 17}); err != nil {
		t.Fatal(err)
	}
	f.repo = chtest.Repo(t)
	return f
}

func (f *modernFixture) sql(q string) string {
	f.t.Helper()
	out, err := f.env.ModernQuery(q)
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *modernFixture) backup() *store.Manifest {
	f.t.Helper()
	src := &clickhouse.Source{Native: []string{f.env.CHModernNative}, HTTP: []string{f.env.CHModernHTTP}, Conn: clickhouse.ConnOptions{User: "default"},
		Filter: clickhouse.Filter{Databases: []string{f.db}}, Mode: clickhouse.ModeLogical, Log: chtest.Quiet}
	m, err := snapshot.Run(context.Background(), f.repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	if err != nil {
		f.t.Fatalf("backup of %s on ch-modern: %v", f.db, err)
	}
	return m
}

func (f *modernFixture) restore(m *store.Manifest, o restore.Options) {
	f.t.Helper()
	o.Native, o.HTTP, o.Conn, o.Log = []string{f.env.CHModernNative}, []string{f.env.CHModernHTTP}, clickhouse.ConnOptions{User: "default"}, chtest.Quiet
	ctx := context.Background()
	rs, err := restore.New(ctx, o)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rs.Close()
	plan, err := rs.Plan(ctx, m)
	if err != nil {
		f.t.Fatalf("plan: %v", err)
	}
	if err := rs.Execute(ctx, f.repo, plan, nil); err != nil {
		f.t.Fatalf("restore on ch-modern: %v", err)
	}
}

// checksums is every seeded table's per-partition row count and content hash. toString of the
// row's tuple spells every type (Nullable as NULL, Map, Decimal, JSON), so a changed value, a
// NULL turned default or a lost JSON path changes the sum.
func (f *modernFixture) checksums(db string) map[string]string {
	f.t.Helper()
	out := map[string]string{}
	for _, tbl := range demo.ModernTables {
		out[tbl] = f.sql(fmt.Sprintf("SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM %s.%s GROUP BY _partition_id ORDER BY _partition_id", db, tbl))
	}
	return out
}

// uuids are the database's UUID ("") and each table's, from system.databases and system.tables.
func (f *modernFixture) uuids(db string) map[string]string {
	f.t.Helper()
	out := map[string]string{"": f.sql("SELECT toString(uuid) FROM system.databases WHERE name = '" + db + "'")}
	for _, line := range strings.Split(f.sql("SELECT name, toString(uuid) FROM system.tables WHERE database = '"+db+"' ORDER BY name"), "\n") {
		name, uuid, _ := strings.Cut(line, "\t")
		out[name] = uuid
	}
	return out
}

func (f *modernFixture) sameChecksums(what string, got, want map[string]string) {
	f.t.Helper()
	for tbl, w := range want {
		if got[tbl] != w {
			f.t.Errorf("%s: %s per partition:\n%s\nwant\n%s", what, tbl, got[tbl], w)
		}
	}
}

// TestModernLogicalBackupRestoreKeepsTypesAndUUIDs: the modern Langfuse schema (DateTime64,
// Map(LowCardinality(String), ...), LowCardinality, Nullable, Decimal64(12), Array, Bool, UUID,
// JSON) goes through a logical backup, a DROP DATABASE and a restore on ClickHouse 26.x with
// every partition's rows and hash unchanged; the tables come back with their UUIDs (Atomic:
// CREATE TABLE ... UUID), and so does the database.
func TestModernLogicalBackupRestoreKeepsTypesAndUUIDs(t *testing.T) {
	f := newModernFixture(t, 3000)
	before, ids := f.checksums(f.db), f.uuids(f.db)
	m := f.backup()
	wantFormat(t, m, clickhouse.ModeLogical)
	if sec, _, err := clickhouse.SnapshotSection(m); err != nil || !sec.Capabilities.TableUUIDs {
		t.Fatalf("the snapshot's capabilities %+v (%v) do not record table UUIDs for ClickHouse 26.x", sec, err)
	}
	f.sql("DROP DATABASE " + f.db + " SYNC")
	f.restore(m, restore.Options{})
	f.sameChecksums("after drop and restore", f.checksums(f.db), before)
	after := f.uuids(f.db)
	for name, want := range ids {
		if name == "" {
			continue
		}
		if after[name] != want {
			t.Errorf("table %s.%s restored with UUID %s; want its own %s", f.db, name, after[name], want)
		}
	}
	if got := f.sql("SELECT engine FROM system.databases WHERE name = '" + f.db + "'"); got != "Atomic" {
		t.Errorf("restored database engine %q, want Atomic", got)
	}
	t.Run("database keeps its UUID", func(t *testing.T) {
		if after[""] != ids[""] || ids[""] == "" {
			t.Errorf("database %s restored with UUID %q; want its own %q", f.db, after[""], ids[""])
		}
	})
}

// TestModernDatabaseMapGetsFreshUUIDs: restoring next to the original with --database-map
// copies every row, while the copy's tables (and database) get UUIDs of their own: the same
// UUID in two places would collide in Atomic's store/.
func TestModernDatabaseMapGetsFreshUUIDs(t *testing.T) {
	f := newModernFixture(t, 1000)
	before, ids := f.checksums(f.db), f.uuids(f.db)
	m := f.backup()
	copyDB := f.db + "_copy"
	f.restore(m, restore.Options{DatabaseMap: map[string]string{f.db: copyDB}})
	f.sameChecksums("the copy", f.checksums(copyDB), before)
	f.sameChecksums("the original after the copy", f.checksums(f.db), before)
	copied := f.uuids(copyDB)
	if len(copied) != len(ids) {
		t.Errorf("the copy has tables %v; want the original's %v", copied, ids)
	}
	for name, orig := range ids {
		// name "" is the database: the copy is a database of its own, with its own UUID.
		if got := copied[name]; got == "" || got == orig || got == "00000000-0000-0000-0000-000000000000" {
			t.Errorf("copy of %q has UUID %q next to the original's %q; want a fresh one", name, got, orig)
		}
	}
}

// TestModernRowsOutsidePartsAreNamed: a TinyLog table (golang-migrate's default
// schema_migrations on a single server) keeps rows a backup does not export, only MergeTree
// parts being exported; the snapshot records that about it, and a restore creates it empty
// beside the tables it restores whole.
func TestModernRowsOutsidePartsAreNamed(t *testing.T) {
	f := newModernFixture(t, 100)
	f.sql("CREATE TABLE " + f.db + ".migrations_log (version Int64, dirty UInt8, sequence UInt64) ENGINE = TinyLog")
	f.sql("INSERT INTO " + f.db + ".migrations_log VALUES (1, 0, 1)")
	m := f.backup()
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]string{}
	for _, rec := range sec.Tables {
		named[rec.Name] = rec.RowsNotKept
	}
	if !strings.Contains(named["migrations_log"], "engine TinyLog") || named["traces"] != "" {
		t.Fatalf("rows_not_kept: migrations_log %q, traces %q; want the TinyLog table named and the MergeTree one not", named["migrations_log"], named["traces"])
	}
	copyDB := f.db + "_copy"
	f.restore(m, restore.Options{DatabaseMap: map[string]string{f.db: copyDB}})
	if got := f.sql("SELECT count() FROM " + copyDB + ".migrations_log"); got != "0" {
		t.Errorf("the restored TinyLog table holds %s rows; its rows are not in the snapshot", got)
	}
	if got, want := f.sql("SELECT count() FROM "+copyDB+".traces"), f.sql("SELECT count() FROM "+f.db+".traces"); got != want {
		t.Errorf("traces restored with %s rows, want %s", got, want)
	}
}
