package chtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/store"
)

// ModernTables are two tables with the column types Langfuse uses on modern servers, by name,
// with what their CREATE adds after the columns. A part with fewer than 100 rows is compact, one
// with more is wide: min_bytes_for_wide_part = 0 leaves the row count alone to decide, so the
// inserts choose each part's type. events also has a skip index and a projection (ModernExtras),
// whose parts are subdirectories (<name>.proj/) of each part.
var ModernTables = map[string]string{
	"events": `ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project, id)
		SETTINGS min_rows_for_wide_part = 100, min_bytes_for_wide_part = 0, lightweight_mutation_projection_mode = 'rebuild'`,
	"traces": `ENGINE = ReplacingMergeTree(ver, is_deleted) PARTITION BY toYYYYMM(ts) ORDER BY (project, id)
		SETTINGS min_rows_for_wide_part = 100, min_bytes_for_wide_part = 0`,
}

// ModernColumns opens the column list of ModernTables; a CREATE closes it with ")".
const ModernColumns = `(id UUID, ts DateTime64(3), project LowCardinality(String), attrs Map(LowCardinality(String), String),
	note Nullable(String), cost Decimal64(12), tags Array(String), public Bool, ver UInt64, is_deleted UInt8,
	payload JSON`

// ModernExtras are what events adds to its columns.
const ModernExtras = `, INDEX idx_attrs mapKeys(attrs) TYPE bloom_filter(0.01) GRANULARITY 1,
	PROJECTION by_ts (SELECT * ORDER BY ts)`

// ModernRows inserts n rows into partition 2026-<month>, row k with the id of every insert's
// row k in that month; seed is the rows' version and varies their values.
func ModernRows(db, table string, month, n, seed int) string {
	return fmt.Sprintf(`INSERT INTO %s.%s SELECT
		reinterpretAsUUID(cityHash64(number, %[3]d)), toDateTime64('2026-%02[3]d-01 00:00:00', 3) + number * 0.001 + number %% 86400,
		['alpha', 'beta', 'gamma'][number %% 3 + 1], map('k' || toString(number %% 5), toString(number * %[5]d), 'env', 'prod'),
		if(number %% 4 = 0, NULL, 'note ' || toString(number)), toDecimal64(number / 7, 12), arrayMap(i -> toString(i), range(number %% 4)),
		number %% 2 = 0, %[5]d, 0,
		concat('{"model":"m', toString(number %% 3), '","usage":{"input":', toString(number), '}', if(number %% 5 = 0, ',"extra":[1,2]', ''), '}')
		FROM numbers(%[4]d)`, db, table, month, n, seed)
}

// Modern is a scratch database on ch-modern and a repository, for freeze-mode tests on the
// engine's own files.
type Modern struct {
	Env  *devstack.Env
	DB   string
	Repo *store.Repository
}

// NewModern makes a scratch Atomic database on ch-modern, unless atomic is false: the test then
// creates DB itself, dropped when it ends.
func NewModern(tb testing.TB, atomic bool) *Modern {
	tb.Helper()
	env := devstack.RequireModern(tb)
	if env.CHModernData == "" {
		tb.Fatal("the stack exports no STACK_CH_MODERN_DATA: freeze mode needs ch-modern's data path")
	}
	f := &Modern{Env: env, DB: devstack.ScratchName("it_mfrz"), Repo: Repo(tb)}
	if atomic {
		f.DB = env.ModernDatabase(tb, "it_mfrz")
	} else {
		tb.Cleanup(func() { _, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + f.DB + " SYNC") })
	}
	return f
}

// SQL runs q on ch-modern and returns its output.
func (f *Modern) SQL(tb testing.TB, q string) string {
	tb.Helper()
	out, err := f.Env.ModernQuery(q)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// Shadow lists the freezes tracevault left in ch-modern's default disk (other tests' may run at
// once, so a test asserts there are none after its own backup ended).
func (f *Modern) Shadow(tb testing.TB) []string {
	tb.Helper()
	return Freezes(tb, f.Env.CHModernData)
}

// Freezes lists the freezes tracevault left in the shadow/ directory of the disk at path.
func Freezes(tb testing.TB, disk string) []string {
	tb.Helper()
	out, err := devstack.Freezes(disk)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// Checksums is each of ModernTables' per-partition row count and content hash in db. The
// Replacing table is read with FINAL, so that a merge after a restore, which may collapse
// versions, cannot change it; the restore's own row check compares the raw rows before the swap.
func (f *Modern) Checksums(tb testing.TB, db string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for tbl, engine := range ModernTables {
		final := ""
		if strings.HasPrefix(engine, "ENGINE = Replacing") {
			final = " FINAL"
		}
		out[tbl] = f.SQL(tb, fmt.Sprintf("SELECT _partition_id, count(), sum(cityHash64(toString(tuple(*)))) FROM %s.%s%s GROUP BY _partition_id ORDER BY _partition_id", db, tbl, final))
	}
	return out
}

// UUIDs is "name uuid" of every table in db.
func (f *Modern) UUIDs(tb testing.TB, db string) string {
	return f.SQL(tb, "SELECT groupArray(name || ' ' || toString(uuid)) FROM (SELECT name, uuid FROM system.tables WHERE database = '"+db+"' ORDER BY name)")
}

// PartTypes is "partition part_type" of table's active parts.
func (f *Modern) PartTypes(tb testing.TB, table string) string {
	return f.SQL(tb, "SELECT groupArray(partition_id || ' ' || part_type) FROM (SELECT partition_id, part_type FROM system.parts WHERE database = '"+f.DB+"' AND table = '"+table+"' AND active ORDER BY partition_id, part_type)")
}
