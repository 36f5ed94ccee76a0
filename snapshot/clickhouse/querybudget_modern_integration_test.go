package clickhouse_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
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

// TestModernBackupSumsInTheExport: on 26.7 a logical backup's content checksums come from the
// exports' own reads (a row hash appended to each SELECT), not from a second query that reads
// every new partition again: no query of the backup sums the rows of a stream it walks (a table
// with a JSON column is summed apart), and every partition of Langfuse v4's tables, lightweight
// updates and their patch parts included, has a checksum of values that equals the server's.
func TestModernBackupSumsInTheExport(t *testing.T) {
	f := newModernFixture(t, 1000)
	// A lightweight update, as Langfuse v4 edits a span: patch parts, which the exports apply.
	f.sql("UPDATE " + f.db + ".events_full SET output = 'edited', updated_at = now64(6) WHERE cityHash64(span_id) % 7 = 0")
	if n := f.sql("SELECT count() FROM system.parts WHERE active AND database = '" + f.db + "' AND startsWith(name, 'patch-')"); n == "0" {
		t.Fatal("the update wrote no patch part")
	}
	t0 := f.sql("SELECT toString(now64(6))")
	m := f.backup()
	t1 := f.sql("SELECT toString(now64(6))")
	f.sql("SYSTEM FLUSH LOGS")
	window := fmt.Sprintf("type = 'QueryStart' AND event_time_microseconds > '%s' AND event_time_microseconds < '%s'", t0, t1)
	sums := f.sql("SELECT query FROM system.query_log WHERE " + window + " AND query LIKE '%sum(cityHash64%'")
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	summed := 0
	for _, tb := range sec.Tables {
		for _, p := range tb.Partitions {
			want := strings.Fields(f.sql(fmt.Sprintf("SELECT count(), sum(cityHash64(tuple(*))) FROM %s.%s WHERE _partition_id = '%s'", f.db, tb.Name, p.ID)))
			if p.Content == nil || p.Content.Kind != clickhouse.ContentTuple || fmt.Sprint(p.Content.Rows) != want[0] || fmt.Sprint(p.Content.Sum) != want[1] {
				t.Errorf("%s partition %s: content %+v, want the server's count and sum %v", tb.Name, p.ID, p.Content, want)
			}
			// A stream the reader walks carries its sum; one it cannot walk (a JSON column,
			// checked by the query log) is summed by a query of its own.
			if p.Checked == clickhouse.CheckedStream {
				summed++
				if name := fmt.Sprintf("`%s`.`%s` ", f.db, tb.Name); strings.Contains(sums, name) {
					t.Errorf("%s partition %s was read again to sum it:\n%s", tb.Name, p.ID, sums)
				}
			}
		}
	}
	if summed == 0 {
		t.Fatal("no partition exported through the walked stream")
	}
}
