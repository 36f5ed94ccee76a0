package clickhouse_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestModernUnchangedBackupQueryBudget holds the fixed cost of the backup a daemon takes every
// few minutes: a second backup of an unchanged database exports nothing, reuses every object,
// and stays within a budget of queries per table, counted in ClickHouse 26.7's own
// system.query_log. Reading a table's metadata twice, or a round trip per partition, breaks it.
// It holds for a repository whose configuration covers more sources than the backup, as
// `backup --only clickhouse` takes it: the reused objects' content checksums come from the
// newest snapshot holding ClickHouse, not from the newest full set, which may not exist.
func TestModernUnchangedBackupQueryBudget(t *testing.T) {
	for _, configured := range [][]string{nil, {"postgres", "clickhouse", "zookeeper"}} {
		t.Run(fmt.Sprintf("configured %v", configured), func(t *testing.T) {
			f := newModernFixture(t, 1000)
			f.repo.SetConfigured(configured)
			modernUnchangedBackupQueryBudget(t, f)
		})
	}
}

func modernUnchangedBackupQueryBudget(t *testing.T, f *modernFixture) {
	f.backup()
	t0 := f.sql("SELECT toString(now64(6))")
	m := f.backup()
	t1 := f.sql("SELECT toString(now64(6))")
	f.sql("SYSTEM FLUSH LOGS")

	if tot := m.Totals(); tot.Reused != tot.Objects || tot.NewBytes != 0 {
		t.Errorf("the unchanged database's second backup stored %d new bytes; %d of %d objects reused", tot.NewBytes, tot.Reused, tot.Objects)
	}
	tables := atoi(t, f.sql("SELECT count() FROM system.tables WHERE database = '"+f.db+"'"))
	filled := atoi(t, f.sql("SELECT uniqExact(table) FROM system.parts WHERE active AND database = '"+f.db+"'"))
	// The window's end is the server's clock as the second SELECT ran, which started inside it.
	window := fmt.Sprintf("type = 'QueryStart' AND event_time_microseconds > '%s' AND event_time_microseconds < '%s' AND query != 'SELECT toString(now64(6))'", t0, t1)
	counts := strings.Fields(f.sql("SELECT count(), countIf(query LIKE '%FORMAT Native%') FROM system.query_log WHERE " + window))
	if len(counts) != 2 {
		t.Fatalf("query_log counts %q", counts)
	}
	queries, exports := atoi(t, counts[0]), atoi(t, counts[1])
	// Measured, and held exactly: a new query on this path is a cost every run pays, to be
	// justified here. Once per run: the connection's capability probe, macros, databases,
	// tables, replicas, and replicas joined with tables (6). Per table: SHOW CREATE (1). Per
	// table holding parts: its columns, its partitions (2).
	budget := 6 + tables + 2*filled
	kinds := f.sql("SELECT count() AS n, any(substring(replaceRegexpAll(query, '\\\\s+', ' '), 1, 100)) FROM system.query_log WHERE " + window + " GROUP BY normalizedQueryHash(query) ORDER BY n DESC FORMAT TSV")
	if queries > budget || exports != 0 || queries == 0 {
		t.Errorf("%d queries (%d exports) for %d tables; the budget is %d and no export:\n%s", queries, exports, tables, budget, kinds)
	}
	t.Logf("%d queries for %d tables, %d of them holding parts (budget %d):\n%s", queries, tables, filled, budget, kinds)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q is not a count", s)
	}
	return n
}
