package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/migrate"
	"github.com/tracevault/tracevault/migrate/internal/gmtest"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// modernScratch is one test's database on ch-modern (ClickHouse 26.x, a single server: no
// cluster, so schema_migrations is a plain MergeTree table, or TinyLog where golang-migrate
// made it with its defaults), dropped with its lock node when the test ends.
func newModernScratch(t *testing.T) *scratch {
	env := devstack.RequireModern(t)
	s := &scratch{env: env, db: devstack.ScratchName("mig_modern"), dir: t.TempDir(), modern: true}
	t.Cleanup(func() {
		_, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + s.db + " SYNC")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if zk, err := zookeeper.Connect(ctx, []string{env.ZK}, 10*time.Second, nil); err == nil {
			_ = zk.Delete(LockRoot+"/"+s.db+"/lock", -1)
			_ = zk.Delete(LockRoot+"/"+s.db, -1)
			zk.Close()
		}
	})
	return s
}

// modernSchema is the database's tables with their engines and column types, and
// schema_migrations' rows: what each step must leave.
func (s *scratch) modernSchema(t *testing.T) string {
	t.Helper()
	q := func(sql string) string {
		t.Helper()
		out, err := s.env.ModernQuery(sql)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return q("SELECT name, engine FROM system.tables WHERE database = '"+s.db+"' ORDER BY name") + "\n" +
		q("SELECT table, name, type FROM system.columns WHERE database = '"+s.db+"' AND table NOT IN ('schema_migrations', 'tracevault_migrations') ORDER BY table, name") + "\n" +
		q("SELECT version, dirty, sequence FROM "+s.db+".schema_migrations ORDER BY sequence")
}

// modernFiles use the types of Langfuse's tables on ClickHouse >= 24.3 and the DDL of a single
// Atomic database: DROP ... SYNC frees the table's UUID at once.
var modernFiles = map[string]string{
	"1_traces.up.sql":   "CREATE TABLE traces (id String, ts DateTime64(3), metadata Map(LowCardinality(String), String), event_ts DateTime64(3), is_deleted UInt8) ENGINE = ReplacingMergeTree(event_ts, is_deleted) ORDER BY id;",
	"1_traces.down.sql": "DROP TABLE traces SYNC;",
	"2_cost.up.sql": `-- Decimal64 and JSON, added to a live table
ALTER TABLE traces ADD COLUMN cost Nullable(Decimal64(12));
ALTER TABLE traces ADD COLUMN body JSON;`,
	"2_cost.down.sql":   "ALTER TABLE traces DROP COLUMN body; ALTER TABLE traces DROP COLUMN cost;",
	"3_scores.up.sql":   "CREATE TABLE scores (id UUID, value Float64, ok Bool) ENGINE = MergeTree ORDER BY id;\nINSERT INTO scores VALUES ('6c3a0b0e-8d0e-4c4f-9d1a-3b9f1d2e4a51', 0.5, true);",
	"3_scores.down.sql": "DROP TABLE scores SYNC;",
}

// TestModernUpDownGotoForce: on a single ClickHouse 26.x, every command leaves the version
// asked for, schema_migrations in golang-migrate's single-server shape with
// x-migrations-table-engine=MergeTree (a dirty and a clean row per step) and the modern column types as the files declare them.
func TestModernUpDownGotoForce(t *testing.T) {
	s := newModernScratch(t)
	s.write(t, modernFiles)
	d := s.open(t, 30*time.Second)
	r := s.runner(t, d)
	ctx := context.Background()
	steps := []struct {
		name  string
		do    func() error
		want  int64
		types []string // substrings the schema must hold
		gone  []string // and must not
	}{
		{"up 2", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "up", N: 2}, nil); return err }, 2,
			[]string{"schema_migrations\tMergeTree", "traces\tReplacingMergeTree", "traces\tmetadata\tMap(LowCardinality(String), String)", "traces\tcost\tNullable(Decimal(18, 12))", "traces\tbody\tJSON"}, []string{"scores"}},
		{"up", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); return err }, 3,
			[]string{"scores\tid\tUUID", "scores\tok\tBool"}, nil},
		{"down 1", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "down", N: 1}, nil); return err }, 2, nil, []string{"scores"}},
		{"goto 1", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "goto", Version: 1}, nil); return err }, 1,
			[]string{"traces\tts\tDateTime64(3)"}, []string{"traces\tbody", "traces\tcost"}},
		{"goto 3", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "goto", Version: 3}, nil); return err }, 3, []string{"traces\tbody\tJSON", "scores\tid\tUUID"}, nil},
		{"force 2", func() error { return r.Force(ctx, 2) }, 2, []string{"scores\tid\tUUID"}, nil},
		{"force 3", func() error { return r.Force(ctx, 3) }, 3, nil, nil},
		{"down", func() error { _, err := r.Migrate(ctx, migrate.Op{Kind: "down"}, nil); return err }, migrate.NilVersion, nil, []string{"traces\t", "scores\t"}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		assertVersion(t, d, st.name, st.want)
		schema := s.modernSchema(t)
		for _, want := range st.types {
			if !strings.Contains(schema, want) {
				t.Errorf("%s: schema lacks %q:\n%s", st.name, want, schema)
			}
		}
		for _, gone := range st.gone {
			if strings.Contains(schema, gone) {
				t.Errorf("%s: schema still holds %q:\n%s", st.name, gone, schema)
			}
		}
	}
	if got, err := s.env.ModernQuery("SELECT count(), countIf(dirty = 1) FROM " + s.db + ".schema_migrations"); err != nil || got != "22\t10" {
		// 10 migrations ran (2+1+1+1+2+3), each writing a dirty then a clean row; each force one clean row.
		t.Errorf("schema_migrations holds (rows, dirty) %q, %v; want 22 rows, 10 dirty", got, err)
	}
}

// TestModernGolangMigrateHandOver: on a modern single server golang-migrate (the real CLI)
// creates schema_migrations itself; tracevault takes over from its rows, and golang-migrate
// takes over from tracevault's, both ways.
func TestModernGolangMigrateHandOver(t *testing.T) {
	s := newModernScratch(t)
	bin := gmtest.Binary(t)
	s.write(t, map[string]string{
		"1_traces.up.sql":   modernFiles["1_traces.up.sql"],
		"1_traces.down.sql": modernFiles["1_traces.down.sql"],
		"2_tags.up.sql":     "ALTER TABLE traces ADD COLUMN tags Array(String);",
		"2_tags.down.sql":   "ALTER TABLE traces DROP COLUMN tags;",
		"3_env.up.sql":      "ALTER TABLE traces ADD COLUMN environment LowCardinality(String) DEFAULT 'default';",
		"3_env.down.sql":    "ALTER TABLE traces DROP COLUMN environment;",
		"4_scores.up.sql":   modernFiles["3_scores.up.sql"],
		"4_scores.down.sql": modernFiles["3_scores.down.sql"],
	})
	// golang-migrate needs the database to connect to; nothing else exists yet.
	if _, err := s.env.ModernQuery("CREATE DATABASE " + s.db); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("clickhouse://%s?username=default&database=%s&x-multi-statement=true", s.env.CHModernNative, s.db)
	gm := func(args ...string) string {
		t.Helper()
		out, err := gmtest.Run(t, bin, append([]string{"-path", s.dir, "-database", url}, args...)...)
		if err != nil {
			t.Fatalf("golang-migrate %v: %v\n%s", args, err, out)
		}
		return out
	}
	gm("up", "2")
	if got, err := s.env.ModernQuery("SELECT engine FROM system.tables WHERE database = '" + s.db + "' AND name = 'schema_migrations'"); err != nil || got != "TinyLog" {
		t.Fatalf("golang-migrate's own schema_migrations: engine %q, %v; want TinyLog", got, err)
	}
	d := s.open(t, 30*time.Second)
	r := s.runner(t, d)
	ctx := context.Background()
	st, err := r.Status(ctx)
	if err != nil || st.Version != 2 || st.Dirty || len(st.Pending) != 2 {
		t.Fatalf("tracevault status after golang-migrate up 2: %+v, %v; want version 2 clean, 2 pending", st, err)
	}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil {
		t.Fatalf("tracevault up after golang-migrate: %v", err)
	}
	if out := gm("version"); out != "4" {
		t.Errorf("golang-migrate version after tracevault up = %q, want 4", out)
	}
	gm("down", "1")
	assertVersion(t, d, "golang-migrate down 1", 3)
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "down", N: 1}, nil); err != nil {
		t.Fatalf("tracevault down 1 after golang-migrate: %v", err)
	}
	if out := gm("version"); out != "2" {
		t.Errorf("golang-migrate version after tracevault down 1 = %q, want 2", out)
	}
	schema := s.modernSchema(t)
	if !strings.Contains(schema, "traces\ttags\tArray(String)") || strings.Contains(schema, "environment") || strings.Contains(schema, "scores") {
		t.Errorf("at version 2 the schema is:\n%s\nwant traces with tags, without environment, and no scores", schema)
	}
}
