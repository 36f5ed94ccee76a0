package clickhouse

import (
	"strings"
	"testing"
)

const tracesCreate = "CREATE TABLE default.traces (`id` String, `timestamp` DateTime, `event_ts` DateTime) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/default/traces', '{replica}', event_ts) PARTITION BY toYYYYMM(timestamp) ORDER BY (id) SETTINGS index_granularity = 8192"

func TestRewriteCreate(t *testing.T) {
	mvCreate := "CREATE MATERIALIZED VIEW default.project_environments_traces_mv TO default.project_environments (`project_id` String) AS SELECT project_id, groupUniqArrayState(environment) AS environments FROM default.traces GROUP BY project_id"
	tests := []struct {
		name string
		stmt string
		r    Rewrite
		want []string // fragments the result must contain
		not  []string // fragments it must not
	}{
		{"in place on a cluster", tracesCreate, Rewrite{Database: "default", Cluster: "default"},
			[]string{"CREATE TABLE IF NOT EXISTS `default`.traces ON CLUSTER `default` (", "'/clickhouse/tables/{shard}/default/traces', '{replica}', event_ts"}, nil},
		{"database map moves the zookeeper path", tracesCreate, Rewrite{Database: "restored", Cluster: "default", DBMap: map[string]string{"default": "restored"},
			ZKPathMap: func(p string) string { return MapZooKeeperPath(p, "default", "restored") }},
			[]string{"`restored`.traces ON CLUSTER", "'/clickhouse/tables/{shard}/restored/traces'"}, []string{"/default/traces"}},
		{"staging twin is local and not replicated", tracesCreate, Rewrite{Database: "default", Table: "__tracevault_staging_traces", Cluster: "default", Staging: true},
			[]string{"CREATE TABLE IF NOT EXISTS `default`.`__tracevault_staging_traces` (", "ENGINE = ReplacingMergeTree(event_ts) PARTITION BY"}, []string{"ON CLUSTER", "/clickhouse/"}},
		{"view follows the database map", mvCreate, Rewrite{Database: "restored", DBMap: map[string]string{"default": "restored"}},
			[]string{"CREATE MATERIALIZED VIEW IF NOT EXISTS `restored`.project_environments_traces_mv TO `restored`.project_environments", "FROM `restored`.traces"}, []string{"default."}},
		// Fixture: modern servers (Atomic databases) keep the table UUID, which the default
		// replication path '/clickhouse/tables/{uuid}/{shard}' is derived from.
		{"fixture: modern server keeps the UUID", "CREATE TABLE default.traces (`id` String) ENGINE = ReplicatedReplacingMergeTree ORDER BY id",
			Rewrite{Database: "default", Cluster: "default", UUID: "5f2e9c1a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"},
			[]string{"CREATE TABLE IF NOT EXISTS `default`.traces UUID '5f2e9c1a-3b4d-4e6f-8a9b-0c1d2e3f4a5b' ON CLUSTER `default`"}, nil},
		{"fixture: staging from a modern default-args engine", "CREATE TABLE default.traces (`id` String) ENGINE = ReplicatedReplacingMergeTree ORDER BY id",
			Rewrite{Database: "default", Table: "s", Staging: true}, []string{"ENGINE = ReplacingMergeTree() ORDER BY id"}, []string{"Replicated"}},
	}
	for _, tt := range tests {
		got, err := RewriteCreate(tt.stmt, tt.r)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: missing %q in\n%s", tt.name, w, got)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(got, n) {
				t.Errorf("%s: unexpected %q in\n%s", tt.name, n, got)
			}
		}
	}
}
