package demo_test

import (
	"context"
	"errors"
	"strings"
	"testing"

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
