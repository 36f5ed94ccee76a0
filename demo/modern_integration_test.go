package demo_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
)

// seedModern seeds the modern schema into a new database on ch-modern, dropped when the test
// ends.
func seedModern(t *testing.T, env *devstack.Env, traces int) (string, demo.Result) {
	t.Helper()
	db := devstack.ScratchName("it_modern")
	t.Cleanup(func() { _, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + db + " SYNC") })
	res, err := demo.Seed(context.Background(), demo.Options{ClickHouse: []string{env.CHModernNative}, ClickHouseHTTP: []string{env.CHModernHTTP},
		Database: db, Modern: true, Traces: traces, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	return db, res
}

// TestModernSeedLangfuseTypes: the modern seed creates Langfuse v3's shapes with their real
// column types in an Atomic database, fills every table over several monthly partitions, hits
// NULLs and deleted rows, and refuses a second seed.
func TestModernSeedLangfuseTypes(t *testing.T) {
	env := devstack.RequireModern(t)
	db, res := seedModern(t, env, 2000)
	q := func(sql string) string {
		t.Helper()
		out, err := env.ModernQuery(sql)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := q("SELECT engine FROM system.databases WHERE name = '" + db + "'"); got != "Atomic" {
		t.Errorf("database engine %q, want Atomic", got)
	}
	wantTypes := map[string]string{
		"traces.timestamp":                    "DateTime64(3)",
		"traces.metadata":                     "Map(LowCardinality(String), String)",
		"traces.public":                       "Bool",
		"traces.tags":                         "Array(String)",
		"traces.environment":                  "LowCardinality(String)",
		"observations.end_time":               "Nullable(DateTime64(3))",
		"observations.total_cost":             "Nullable(Decimal(18, 12))",
		"observations.cost_details":           "Map(LowCardinality(String), Decimal(18, 12))",
		"observations.usage_details":          "Map(LowCardinality(String), UInt64)",
		"scores.trace_id":                     "Nullable(String)",
		"events.id":                           "UUID",
		"events.body":                         "JSON",
		"events.is_deleted":                   "Bool",
		"schema_migrations.version":           "Int64",
		"observations.provided_usage_details": "Map(LowCardinality(String), UInt64)",
	}
	for col, want := range wantTypes {
		table, name, _ := strings.Cut(col, ".")
		if got := q("SELECT type FROM system.columns WHERE database = '" + db + "' AND table = '" + table + "' AND name = '" + name + "'"); got != want {
			t.Errorf("%s has type %q, want %q", col, got, want)
		}
	}
	if got := q("SELECT engine_full LIKE 'ReplacingMergeTree(event_ts, is_deleted)%' FROM system.tables WHERE database = '" + db + "' AND name = 'traces'"); got != "1" {
		t.Errorf("traces is not ReplacingMergeTree(event_ts, is_deleted)")
	}
	for _, table := range demo.ModernTables {
		if res.Rows["clickhouse:"+table] == 0 {
			t.Errorf("%s: no rows seeded", table)
		}
		if got := q("SELECT uniqExact(_partition_id) >= 6 FROM " + db + "." + table); got != "1" {
			t.Errorf("%s spans fewer than 6 monthly partitions", table)
		}
	}
	for what, sql := range map[string]string{
		"deleted traces":            "SELECT countIf(is_deleted = 1) > 0 FROM " + db + ".traces",
		"NULL and set end times":    "SELECT countIf(end_time IS NULL) > 0 AND countIf(end_time IS NOT NULL) > 0 FROM " + db + ".observations",
		"non-zero Decimal64 costs":  "SELECT countIf(total_cost > 0) > 0 FROM " + db + ".observations",
		"JSON paths of every shape": "SELECT countIf(body.nested.deep.ok::Bool) > 0 AND countIf(body.model::String = 'gpt-4o') > 0 FROM " + db + ".events",
	} {
		if got := q(sql); got != "1" {
			t.Errorf("%s: %s answered %q", what, sql, got)
		}
	}
	again, err := demo.Seed(context.Background(), demo.Options{ClickHouse: []string{env.CHModernNative}, ClickHouseHTTP: []string{env.CHModernHTTP},
		Database: db, Modern: true, Traces: 10, Seed: 3})
	if err != nil || len(again.Skipped) != 1 {
		t.Errorf("second seed: %+v, %v; want clickhouse skipped", again, err)
	}
	if _, err := demo.Seed(context.Background(), demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster,
		Database: db, Modern: true, Traces: 10}); err == nil || errors.Is(err, demo.ErrAlreadySeeded) {
		t.Errorf("modern seed on the 18.16 cluster: %v; want a refusal naming the single-server requirement", err)
	}
}

// TestModernSeedLangfuseV4: the modern seed creates Langfuse v4's events_full, events_core with
// the materialized view that fills it, and the staging table, with every property a backup of
// v4 must carry, and fills them.
func TestModernSeedLangfuseV4(t *testing.T) {
	env := devstack.RequireModern(t)
	db, res := seedModern(t, env, 600)
	q := func(sql string) string {
		t.Helper()
		out, err := env.ModernQuery(sql)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	in := "database = '" + db + "'"
	for _, tc := range []struct{ what, sql, want string }{
		{"events_full's engine", "SELECT engine_full LIKE 'ReplacingMergeTree(event_ts, is_deleted)%' FROM system.tables WHERE " + in + " AND name = 'events_full'", "1"},
		{"events_core's engine", "SELECT engine FROM system.tables WHERE " + in + " AND name = 'events_core'", "ReplacingMergeTree"},
		{"monthly partitions", "SELECT partition_key FROM system.tables WHERE " + in + " AND name = 'events_full'", "toYYYYMM(start_time)"},
		{"a primary key shorter than the sorting key", "SELECT primary_key || ' | ' || sorting_key FROM system.tables WHERE " + in + " AND name = 'events_full'",
			"project_id, toStartOfMinute(start_time), xxHash32(trace_id) | project_id, toStartOfMinute(start_time), xxHash32(trace_id), span_id, start_time"},
		{"SAMPLE BY", "SELECT sampling_key FROM system.tables WHERE " + in + " AND name IN ('events_full', 'events_core') GROUP BY sampling_key", "xxHash32(trace_id)"},
		{"block number and offset columns", "SELECT countIf(position(create_table_query, 'enable_block_number_column = 1') > 0 AND position(create_table_query, 'enable_block_offset_column = 1') > 0) FROM system.tables WHERE " + in + " AND name IN ('events_full', 'events_core')", "2"},
		{"skip index kinds", "SELECT arrayStringConcat(arraySort(groupUniqArray(type)), ',') FROM system.data_skipping_indices WHERE " + in + " AND table = 'events_full'", "bloom_filter,minmax,ngrambf_v1,text"},
		{"text indexes", "SELECT arrayStringConcat(arraySort(groupArray(expr || ':' || type_full)), ',') FROM system.data_skipping_indices WHERE " + in + " AND table = 'events_full' AND type = 'text'",
			"input:text(tokenizer = splitByNonAlpha),output:text(tokenizer = splitByNonAlpha)"},
		{"MATERIALIZED and ALIAS columns", "SELECT arrayStringConcat(arraySort(groupArray(name || ':' || default_kind)), ',') FROM system.columns WHERE " + in + " AND table = 'events_full' AND default_kind IN ('MATERIALIZED', 'ALIAS')",
			"input_cost:MATERIALIZED,input_length:MATERIALIZED,output_length:MATERIALIZED,total_cost:ALIAS"},
		{"a Decimal map", "SELECT type FROM system.columns WHERE " + in + " AND table = 'events_full' AND name = 'cost_details'", "Map(LowCardinality(String), Decimal(18, 12))"},
		{"ZSTD(3)", "SELECT compression_codec FROM system.columns WHERE " + in + " AND table = 'events_full' AND name = 'input'", "CODEC(ZSTD(3))"},
		{"the view's target", "SELECT engine || ' TO ' || arrayStringConcat(arrayMap(x -> x, dependencies_table), ',') FROM system.tables WHERE " + in + " AND name = 'events_full'", "ReplacingMergeTree TO events_core_mv"},
		{"the view feeds events_core", "SELECT position(create_table_query, 'TO " + db + ".events_core') > 0 AND position(create_table_query, 'FROM " + db + ".events_full') > 0 FROM system.tables WHERE " + in + " AND name = 'events_core_mv'", "1"},
		{"events_core has every events_full row", "SELECT (SELECT count() FROM " + db + ".events_full) = (SELECT count() FROM " + db + ".events_core) AND (SELECT count() FROM " + db + ".events_core) > 0", "1"},
		{"blob paths", "SELECT countIf(blob_storage_file_path NOT LIKE 'events/proj-%/observation/%.json') FROM " + db + ".events_full", "0"},
		{"text searchable input", "SELECT count() > 0 FROM " + db + ".events_full WHERE hasToken(input, 'refund')", "1"},
		{"3-minute staging partitions", "SELECT partition_key FROM system.tables WHERE " + in + " AND name = 'observations_batch_staging'", "toStartOfInterval(s3_first_seen_timestamp, toIntervalMinute(3))"},
		{"a staging TTL", "SELECT position(create_table_query, 'TTL toDateTime(s3_first_seen_timestamp)') > 0 FROM system.tables WHERE " + in + " AND name = 'observations_batch_staging'", "1"},
		{"many staging partitions", "SELECT uniqExact(_partition_id) >= 10 FROM " + db + ".observations_batch_staging", "1"},
	} {
		if got := q(tc.sql); got != tc.want {
			t.Errorf("%s: %s\n got %q\nwant %q", tc.what, tc.sql, got, tc.want)
		}
	}
	if res.Rows["clickhouse:events_full"] != 600*3 || res.Rows["clickhouse:events_core"] != 600*3 {
		t.Errorf("seeded %d events_full and %d events_core rows, want %d of each", res.Rows["clickhouse:events_full"], res.Rows["clickhouse:events_core"], 600*3)
	}
}

// TestModernLoadLedger: demo load --modern writes Langfuse v4's way for 60 ticks (inserts,
// lightweight updates and deletes, OPTIMIZE, TRUNCATE) and its ledger says exactly what
// events_full and events_core then hold, read with FINAL: the same ids, partitions and values
// of the edited columns, by content and by count and digest.
func TestModernLoadLedger(t *testing.T) {
	env := devstack.RequireModern(t)
	db, _ := seedModern(t, env, 300)
	ledger := filepath.Join(t.TempDir(), "ledger")
	ctx := context.Background()
	res, err := demo.Load(ctx, demo.LoadOptions{ClickHouse: []string{env.CHModernNative}, Database: db, Modern: true,
		Rate: 600, Interval: 50 * time.Millisecond, Ticks: 60, Ledger: ledger, Seed: 5,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ops %v in %s, %d ticks", res.Ops, res.Duration, res.Batches)
	for _, op := range []string{demo.OpInsert, demo.OpUpdate, demo.OpErase, demo.OpOptimize, demo.OpTruncate} {
		if res.Ops[op] == 0 {
			t.Errorf("the load reports no %s (ops %v)", op, res.Ops)
		}
	}
	want, err := demo.Ledger{Path: ledger}.Expected(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	counts, err := demo.Ledger{Path: ledger}.RowsBefore(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var updates, erased int64
	for k, c := range counts {
		if k.Table == "clickhouse:events_full" {
			updates, erased = updates+c.Updates, erased+c.Erased
		}
	}
	if updates == 0 || erased == 0 {
		t.Errorf("the ledger records %d updated and %d erased events_full rows; want both", updates, erased)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{env.CHModernNative}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	prefix := "ld-" + res.RunID + "-"
	for _, table := range []string{"events_full", "events_core"} {
		got, err := demo.ReadRows(ctx, conn, db, table, "span_id", prefix, demo.ModernTracked)
		if err != nil {
			t.Fatal(err)
		}
		exp := want["clickhouse:"+table]
		wn, ws := demo.Digest(exp, demo.ModernTracked)
		gn, gs := demo.Digest(got, demo.ModernTracked)
		if gn != wn || gs != ws || wn == 0 {
			t.Errorf("%s holds %d rows of the run (digest %x); the ledger expects %d (%x)", table, gn, gs, wn, ws)
		}
		for id, w := range exp {
			if g, ok := got[id]; !ok || !reflect.DeepEqual(g, w) {
				t.Errorf("%s: row %s reads %+v (present %t); the ledger expects %+v", table, id, g, ok, w)
				break
			}
		}
		var final uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+"."+table+" FINAL WHERE startsWith(span_id, ?)", prefix).Scan(&final); err != nil {
			t.Fatal(err)
		}
		if int64(final) != wn {
			t.Errorf("%s: count() FINAL of the run's rows is %d; the ledger expects %d", table, final, wn)
		}
	}
	staged, err := demo.ReadRows(ctx, conn, db, "observations_batch_staging", "id", prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	if exp := want["clickhouse:observations_batch_staging"]; len(exp) == 0 || !reflect.DeepEqual(staged, exp) {
		t.Errorf("observations_batch_staging holds %d rows of the run; the ledger expects %d, in the same 3-minute partitions", len(staged), len(exp))
	}
	if n, ok := want["clickhouse:events"]; !ok || len(n) != 0 {
		t.Errorf("the ledger does not record the legacy events table truncated: %v", n)
	}
	if got, err := env.ModernQuery("SELECT count() FROM " + db + ".events"); err != nil || got != "0" {
		t.Errorf("the truncated legacy events table holds %s rows (%v)", got, err)
	}
	if got, err := env.ModernQuery("SELECT count() > 0 FROM system.parts WHERE database = '" + db + "' AND table = 'events_full' AND startsWith(name, 'patch-')"); err != nil || got != "1" {
		t.Logf("no patch parts of events_full left (%s, %v): merges applied them all", got, err)
	}
}
