package restore

import (
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

func TestPlanRefuseLive(t *testing.T) {
	sec := &clickhouse.Section{Tables: []clickhouse.TableRecord{{Table: clickhouse.Table{Database: "default", Name: "traces",
		ZooKeeperPath: "/clickhouse/tables/01/default/traces",
		Create:        "CREATE TABLE default.traces (id String) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/default/traces', '{replica}') ORDER BY id"}}}}
	scratch := "CREATE TABLE IF NOT EXISTS `default_drill`.traces (id String) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/default_drill/traces', '{replica}') ORDER BY id"
	live := "CREATE TABLE IF NOT EXISTS `default_drill`.traces (id String) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/default/traces', '{replica}') ORDER BY id"
	cases := []struct {
		name  string
		steps []Step
		want  string // substring of the refusal; empty = allowed
	}{
		{"scratch database and path", []Step{{Action: "create-database", Target: "default_drill"}, {Action: "create-table", Target: "default_drill.traces", SQL: scratch},
			{Action: "load-partition", Target: "default_drill.traces", Partition: "202605"}}, ""},
		{"live database", []Step{{Action: "create-database", Target: "default"}}, "database default"},
		{"load into live table", []Step{{Action: "load-partition", Target: "default.traces", Partition: "202605"}}, "database default"},
		{"live path as written", []Step{{Action: "create-table", Target: "default_drill.traces", SQL: live}}, "/clickhouse/tables/{shard}/default/traces"},
		{"live path expanded", []Step{{Action: "drop-registration", Target: "default_drill.traces", ZooKeeperPath: "/clickhouse/tables/01/default/traces"}}, "live table default.traces"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := (&Plan{Snapshot: "s", Steps: c.steps}).RefuseLive(sec)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused a scratch plan: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("allowed a plan touching production")
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("refusal %q does not name %q", err, c.want)
			}
		})
	}
}
