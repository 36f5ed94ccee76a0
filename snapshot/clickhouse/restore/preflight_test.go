package restore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// eventsFullCreate is SHOW CREATE TABLE of Langfuse v4's events_full as 26.x prints it, cut to
// what the preflight reads.
const eventsFullCreate = "CREATE TABLE lf.events_full (`project_id` String, `input` String CODEC(ZSTD(3)), `event_ts` DateTime64(6), `is_deleted` UInt8, " +
	"INDEX idx_text_input input TYPE text(tokenizer = 'splitByNonAlpha') GRANULARITY 100000000) " +
	"ENGINE = ReplacingMergeTree(event_ts, is_deleted) PARTITION BY toYYYYMM(event_ts) ORDER BY project_id " +
	"SETTINGS enable_block_number_column = 1, enable_block_offset_column = 1, index_granularity = 8192"

// TestPreflightFeatures: each feature a snapshot's table needs is found in its SHOW CREATE
// statement (not in names or literals that merely spell it) and refused on a target older than
// its minimum version, the refusal naming table, feature, both versions and the fix.
func TestPreflightFeatures(t *testing.T) {
	v1816 := clickhouse.Capabilities{Version: "18.16.1", Major: 18, Minor: 16}
	v253 := clickhouse.Capabilities{Version: "25.3.2.1", Major: 25, Minor: 3}
	v267 := clickhouse.Capabilities{Version: "26.7.1.1", Major: 26, Minor: 7, PatchParts: true}
	withPatches := []clickhouse.PartitionRecord{{Partition: clickhouse.Partition{ID: "202605", Patches: []string{"patch-9834-202605_1_1_0"}}}}
	tests := []struct {
		name       string
		create     string
		partitions []clickhouse.PartitionRecord
		target     clickhouse.Capabilities
		want       []string // features refused
	}{
		{"events_full on 18.16", eventsFullCreate, nil, v1816,
			[]string{"text index (TYPE text)", "block number column (enable_block_number_column)", "block offset column (enable_block_offset_column)"}},
		{"events_full on 25.3", eventsFullCreate, nil, v253, []string{"text index (TYPE text)"}},
		{"events_full on 26.7", eventsFullCreate, withPatches, v267, nil},
		{"patch parts on 25.3", "CREATE TABLE lf.t (`id` UInt64) ENGINE = MergeTree ORDER BY id", withPatches, v253, []string{"lightweight updates (patch parts)"}},
		{"JSON", "CREATE TABLE lf.events (`id` UUID, `body` JSON, `attrs` Map(String, String)) ENGINE = MergeTree ORDER BY id", nil, v1816, []string{"JSON type"}},
		{"JSON with hints", "CREATE TABLE lf.e (`b` Nullable(JSON(max_dynamic_paths = 8))) ENGINE = MergeTree ORDER BY tuple()", nil, v1816, []string{"JSON type"}},
		{"Dynamic and Variant", "CREATE TABLE lf.d (`a` Dynamic, `b` Variant(String, UInt64)) ENGINE = MergeTree ORDER BY tuple()", nil, v1816, []string{"Dynamic type", "Variant type"}},
		{"all three on 25.3", "CREATE TABLE lf.d (`a` Dynamic, `b` Variant(String, UInt64), `c` JSON) ENGINE = MergeTree ORDER BY tuple()", nil, v253, nil},
		{"names and literals that spell them", "CREATE TABLE lf.v2 (`JSON` String, `Dynamic` String DEFAULT 'TYPE text', `n` String DEFAULT toJSONString(map('a', 'b')), " +
			"INDEX idx_n n TYPE bloom_filter(0.01) GRANULARITY 1) ENGINE = ReplacingMergeTree ORDER BY n COMMENT 'enable_block_number_column = 1'", nil, v1816, nil},
		{"settings turned off", "CREATE TABLE lf.o (`id` UInt64) ENGINE = MergeTree ORDER BY id SETTINGS enable_block_number_column = 0", nil, v1816, nil},
		{"v3 tables on 18.16", "CREATE TABLE lf.traces (`id` String, `timestamp` DateTime, INDEX idx_id id TYPE minmax GRANULARITY 1) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/lf/traces', '{replica}') PARTITION BY toYYYYMM(timestamp) ORDER BY id", nil, v1816, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table := &clickhouse.TableRecord{Table: clickhouse.Table{Database: "lf", Name: "t", Create: tt.create}, Partitions: tt.partitions}
			got := checkFeatures([]*clickhouse.TableRecord{table}, tt.target)
			var features []string
			for _, f := range got {
				features = append(features, f.Feature)
				if !f.Refuse || f.Table != "lf.t" || f.TargetVersion != tt.target.Version {
					t.Errorf("finding %+v: want a refusal of lf.t on %s", f, tt.target.Version)
				}
				for _, part := range []string{"lf.t", f.Feature, "from " + f.MinVersion, "runs " + tt.target.Version, "or newer", "--tables"} {
					if !strings.Contains(f.Message, part) {
						t.Errorf("refusal %q does not say %q", f.Message, part)
					}
				}
			}
			if !slices.Equal(features, tt.want) {
				t.Errorf("refused %q; want %q", features, tt.want)
			}
		})
	}
}

// TestPreflightMinVersions: the minimum versions are the ones docs/backup-and-restore.md
// documents.
func TestPreflightMinVersions(t *testing.T) {
	want := map[string]string{"text index (TYPE text)": "25.12", "block number column (enable_block_number_column)": "24.5",
		"block offset column (enable_block_offset_column)": "24.5", "JSON type": "25.3", "Dynamic type": "25.3", "Variant type": "25.3"}
	for _, f := range append(slices.Clone(Features), patchParts) {
		want["lightweight updates (patch parts)"] = "25.7"
		if got := fmt.Sprintf("%d.%d", f.Major, f.Minor); got != want[f.Name] {
			t.Errorf("%s: minimum %s; want %s", f.Name, got, want[f.Name])
		}
	}
}

// TestPreflightMigrations: a dirty snapshot, a target at another version or dirty, and an
// unread snapshot where the target has a version are each warned of, never refused.
func TestPreflightMigrations(t *testing.T) {
	tests := []struct {
		name       string
		snap, live *Migration
		unread     bool
		want       []string
	}{
		{"equal", &Migration{Version: 3}, &Migration{Version: 3}, false, nil},
		{"fresh target", &Migration{Version: 3}, nil, false, nil},
		{"snapshot dirty", &Migration{Version: 3, Dirty: true}, nil, false, []string{"dirty at version 3 in the snapshot", "migrate force 3"}},
		{"target ahead", &Migration{Version: 3}, &Migration{Version: 5}, false, []string{"at migration version 5, the snapshot at 3", "migrate the target to 3 first", "--database-map"}},
		{"target dirty", &Migration{Version: 3}, &Migration{Version: 3, Dirty: true}, false, []string{"is dirty at migration version 3"}},
		{"unread", nil, &Migration{Version: 3}, true, []string{"was not read", "migrate --target clickhouse status"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var unread error
			if tt.unread {
				unread = errTest
			}
			got := checkMigrations("lf.schema_migrations", "lf", tt.snap, tt.live, unread)
			text := ""
			for _, f := range got {
				if f.Refuse {
					t.Errorf("refused: %+v", f)
				}
				text += f.Message + "\n"
			}
			if len(tt.want) == 0 && text != "" {
				t.Errorf("findings %q; want none", text)
			}
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("findings %q do not say %q", text, w)
				}
			}
		})
	}
}

var errTest = bytes.ErrTooLarge

// nativeMigrations is a Native block of schema_migrations as the HTTP interface writes it.
func nativeMigrations(rows ...migrationRow) []byte {
	var b bytes.Buffer
	str := func(s string) { b.Write(binary.AppendUvarint(nil, uint64(len(s)))); b.WriteString(s) }
	b.Write(binary.AppendUvarint(nil, 3))
	b.Write(binary.AppendUvarint(nil, uint64(len(rows))))
	str("version")
	str("Int64")
	for _, r := range rows {
		b.Write(binary.LittleEndian.AppendUint64(nil, uint64(r.version)))
	}
	str("dirty")
	str("UInt8")
	for _, r := range rows {
		b.WriteByte(r.dirty)
	}
	str("sequence")
	str("UInt64")
	for _, r := range rows {
		b.Write(binary.LittleEndian.AppendUint64(nil, r.sequence))
	}
	return b.Bytes()
}

// TestReadMigrationRows: the snapshot's schema_migrations rows are read from its Native object,
// over several blocks; anything else is an error, never a guess.
func TestReadMigrationRows(t *testing.T) {
	want := []migrationRow{{1, 1, 1}, {1, 0, 2}, {2, 1, 3}}
	data := append(nativeMigrations(want[:2]...), nativeMigrations(want[2:]...)...)
	got, err := readMigrationRows(bytes.NewReader(data))
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("%v, %v; want %v", got, err, want)
	}
	for name, bad := range map[string][]byte{
		"truncated":  data[:len(data)-3],
		"not it":     {1, 1, 2, 'i', 'd', 6, 'S', 't', 'r', 'i', 'n', 'g', 1, 'x'},
		"no columns": {1, 1, 2, 'i', 'd', 5, 'U', 'I', 'n', 't', '8', 7},
	} {
		if rows, err := readMigrationRows(bytes.NewReader(bad)); err == nil {
			t.Errorf("%s: %v, no error", name, rows)
		}
	}
}

// TestViewNotes: a plan that loads a materialized view's source says the view is not fired, and
// whether its target is restored from its own snapshot or not at all.
func TestViewNotes(t *testing.T) {
	full := clickhouse.TableRecord{Table: clickhouse.Table{Database: "lf", Name: "events_full", Engine: "MergeTree"}}
	core := clickhouse.TableRecord{Table: clickhouse.Table{Database: "lf", Name: "events_core", Engine: "MergeTree"}}
	mv := clickhouse.TableRecord{Table: clickhouse.Table{Database: "lf", Name: "events_core_mv", Engine: "MaterializedView",
		Create:    "CREATE MATERIALIZED VIEW lf.events_core_mv TO lf.events_core (`id` String) AS SELECT id FROM lf.events_full",
		DependsOn: []string{"lf.events_core", "lf.events_full"}}}
	sec := &clickhouse.Section{Tables: []clickhouse.TableRecord{full, core, mv}}
	load := func(t *clickhouse.TableRecord) Step { return Step{Action: ActionLoadPartition, table: t} }
	create := func(t *clickhouse.TableRecord) Step { return Step{Action: ActionCreateTable, table: t} }
	tests := []struct {
		name  string
		dbMap map[string]string
		steps []Step
		want  []string
	}{
		{"together", nil, []Step{create(&full), create(&core), load(&full), load(&core)},
			[]string{"lf.events_core_mv: not fired by the restore (REPLACE PARTITION) of lf.events_full; lf.events_core restored from its own snapshot"}},
		{"events_full alone, mapped", map[string]string{"lf": "copy"}, []Step{create(&full), load(&full)},
			[]string{"copy.events_core_mv: not fired by the restore (REPLACE PARTITION) of copy.events_full; copy.events_core not restored: it holds none of the rows loaded into copy.events_full that it did not hold already"}},
		{"events_core alone", nil, []Step{create(&core), load(&core)}, nil},
	}
	for _, tt := range tests {
		r := &Restorer{opts: Options{DatabaseMap: tt.dbMap}}
		if got := r.viewNotes(sec, &Plan{Steps: tt.steps}); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q; want %q", tt.name, got, tt.want)
		}
	}
}

// TestWritePlanPrintsPreflight: --dry-run prints the preflight's findings and the plan's notes
// before its steps.
func TestWritePlanPrintsPreflight(t *testing.T) {
	plan := &Plan{Snapshot: "s1", Preflight: []Finding{{Table: "lf.schema_migrations", Message: "lf.schema_migrations is dirty at version 3 in the snapshot"}},
		Notes: []string{"lf.events_core_mv: not fired by the restore (REPLACE PARTITION) of lf.events_full; lf.events_core not restored"},
		Steps: []Step{{Action: ActionCreateTable, Target: "lf.events_full"}}}
	var b bytes.Buffer
	WritePlan(&b, plan)
	want := "preflight warning: lf.schema_migrations is dirty at version 3 in the snapshot\n" +
		"note: lf.events_core_mv: not fired by the restore (REPLACE PARTITION) of lf.events_full; lf.events_core not restored\n" +
		"table    lf.events_full\n"
	if !strings.HasPrefix(b.String(), want) {
		t.Errorf("--dry-run printed\n%s\nwant it to start\n%s", b.String(), want)
	}
}
