package clickhouse

import (
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
)

// A cluster migration replays each statement on a target that replicates differently.
func TestRewriteCreateTopology(t *testing.T) {
	replicated := &Topology{Replicated: true, ZooKeeperPath: DefaultZooKeeperPath, Replica: "{replica}"}
	layered := &Topology{Replicated: true, ZooKeeperPath: "/ch/{layer}-{shard}/{database}.{table}", Replica: "{host}"}
	single := &Topology{}
	const plain = "CREATE TABLE default.traces (`id` String, `event_ts` DateTime64(3), `note` String DEFAULT 'ENGINE = x(') ENGINE = ReplacingMergeTree(event_ts) PARTITION BY toYYYYMM(event_ts) ORDER BY id SETTINGS index_granularity = 8192"
	const modernDefault = "CREATE TABLE default.scores (`id` String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}') ORDER BY id"
	const noArgs = "CREATE TABLE default.scores (`id` String) ENGINE = MergeTree ORDER BY id"
	tests := []struct {
		name string
		stmt string
		r    Rewrite
		want []string
		not  []string
		err  string
	}{
		{"replicated to unreplicated", chtest.TracesCreate, Rewrite{Database: "default", Topology: single},
			[]string{"CREATE TABLE IF NOT EXISTS `default`.traces (", "ENGINE = ReplacingMergeTree(event_ts) PARTITION BY"}, []string{"ON CLUSTER", "/clickhouse/", "{replica}"}, ""},
		{"modern explicit default path to unreplicated", modernDefault, Rewrite{Database: "default", Topology: single},
			[]string{"ENGINE = MergeTree() ORDER BY id"}, []string{"Replicated", "{uuid}"}, ""},
		{"unreplicated to replicated on a named cluster", plain, Rewrite{Database: "langfuse", Cluster: "prod ch", Topology: replicated},
			[]string{"CREATE TABLE IF NOT EXISTS `langfuse`.traces ON CLUSTER `prod ch` (",
				"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/langfuse/traces', '{replica}', event_ts) PARTITION BY",
				"DEFAULT 'ENGINE = x('"}, nil, ""},
		{"unreplicated without arguments to replicated", noArgs, Rewrite{Database: "default", Cluster: "default", Topology: replicated},
			[]string{"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/default/scores', '{replica}') ORDER BY id"}, nil, ""},
		{"replicated to another macro layout", chtest.TracesCreate, Rewrite{Database: "default", Cluster: "c2", Topology: layered},
			[]string{"ON CLUSTER `c2`", "ENGINE = ReplicatedReplacingMergeTree('/ch/{layer}-{shard}/default.traces', '{host}', event_ts)"}, []string{"/clickhouse/tables"}, ""},
		{"unreplicated stays unreplicated", plain, Rewrite{Database: "default", Topology: single},
			[]string{"ENGINE = ReplacingMergeTree(event_ts) PARTITION BY"}, []string{"Replicated"}, ""},
		{"a view has no engine to rewrite", "CREATE VIEW default.v (`id` String) AS SELECT id FROM default.traces", Rewrite{Database: "default", Topology: replicated},
			[]string{"AS SELECT id FROM default.traces"}, []string{"Replicated"}, ""},
		{"old MergeTree syntax is refused", "CREATE TABLE default.old (`d` Date, `id` String) ENGINE = MergeTree(d, (id), 8192)", Rewrite{Database: "default", Topology: replicated},
			nil, nil, "old MergeTree syntax"},
		{"a path that leaves its quotes is refused", plain, Rewrite{Database: "default", Topology: &Topology{Replicated: true, ZooKeeperPath: "/x'); DROP", Replica: "{replica}"}},
			nil, nil, "leave its quotes"},
	}
	for _, tt := range tests {
		got, err := RewriteCreate(tt.stmt, tt.r)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: got %v, %q; want error %q", tt.name, err, got, tt.err)
			}
			continue
		}
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

func TestTopologyFor(t *testing.T) {
	tests := []struct {
		name       string
		replicated bool
		macros     map[string]string
		path       string
		err        bool
	}{
		{"single server", false, nil, "", false},
		{"shard and replica", true, map[string]string{"shard": "01", "replica": "ch1"}, DefaultZooKeeperPath, false},
		{"replica only", true, map[string]string{"replica": "ch1"}, "/clickhouse/tables/{database}/{table}", false},
		{"no replica macro", true, map[string]string{"shard": "01"}, "", true},
	}
	for _, tt := range tests {
		got, err := TopologyFor(tt.replicated, tt.macros)
		if (err != nil) != tt.err || err == nil && got.ZooKeeperPath != tt.path {
			t.Errorf("%s: got %+v, %v", tt.name, got, err)
		}
	}
}
