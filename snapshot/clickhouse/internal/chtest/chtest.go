// Package chtest is test support shared by the ClickHouse packages' tests (the core, restore and
// replica): the recorded statements and paths their fixture tests feed the planners, a quiet
// logger and a scratch repository, and the live tables the integration tests build on the
// 18.16 cluster and on ch-modern. It imports nothing of snapshot/clickhouse, so the core's own
// in-package tests can use it too.
package chtest

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Langfuse's traces table as 18.16 records it: a replicated engine whose path holds the shard
// macro, and that path as the server expands it on shard 01.
const (
	TracesCreate = "CREATE TABLE default.traces (`id` String, `timestamp` DateTime, `event_ts` DateTime) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/default/traces', '{replica}', event_ts) PARTITION BY toYYYYMM(timestamp) ORDER BY (id) SETTINGS index_granularity = 8192"
	TracesPath   = "/clickhouse/tables/01/default/traces"
)

// ModernVersion is the version of the modern server the fixture tests stand for where no modern
// engine runs (24.8: Atomic databases, table UUIDs, SYSTEM RESTORE REPLICA, default replicated
// engine arguments).
const ModernVersion = "24.8.4.13"

// Quiet is a logger that drops everything, for code under test that logs.
var Quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Repo is a plaintext filesystem repository in a directory removed when the test ends.
func Repo(tb testing.TB) *store.Repository {
	tb.Helper()
	repo, err := store.Open(context.Background(), store.Options{URL: "file://" + tb.TempDir(), Log: Quiet})
	if err != nil {
		tb.Fatal(err)
	}
	return repo
}

// FreezeTable is a replicated table t with two partitions (202606: 1 row, 202607: 2 rows) in a
// scratch database on the 18.16 cluster, for freeze-mode tests.
func FreezeTable(tb testing.TB) (*devstack.Env, string) {
	tb.Helper()
	env := devstack.Require(tb)
	db := env.CHDatabase(tb, "it_frz")
	for _, sql := range []string{
		"CREATE TABLE " + db + ".t ON CLUSTER " + env.CHCluster + " (d Date, x UInt32) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/" + db + "/t', '{replica}') PARTITION BY toYYYYMM(d) ORDER BY x",
		"INSERT INTO " + db + ".t VALUES ('2026-06-01', 1), ('2026-07-01', 2), ('2026-07-02', 3)",
	} {
		if err := env.CHExec(0, sql); err != nil {
			tb.Fatal(err)
		}
	}
	return env, db
}
