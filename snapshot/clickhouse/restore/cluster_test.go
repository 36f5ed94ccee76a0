package restore

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
)

// TestClusterPlan covers restore --cluster planning; the SYSTEM RESTORE REPLICA rows are a
// fixture test of a modern server whose parts survived while ZooKeeper lost its metadata.
func TestClusterPlan(t *testing.T) {
	rec := &clickhouse.TableRecord{Table: clickhouse.Table{Database: "default", Name: "traces", Engine: "ReplicatedReplacingMergeTree", ZooKeeperPath: chtest.TracesPath, Create: chtest.TracesCreate}}
	base := &Plan{Steps: []Step{
		{Action: "create-database", Target: "default"},
		{Action: "create-table", Target: "default.traces", table: rec},
		{Action: "load-partition", Target: "default.traces", Partition: "202605", table: rec},
	}}
	view := func(have []bool, readonly bool) *clickhouse.View {
		v := &clickhouse.View{}
		for i, name := range []string{"ch1", "ch2", "ch3"} {
			r := clickhouse.Replica{Addr: name + ":9000", Up: true, Macros: map[string]string{"replica": name, "shard": "01"}}
			if have[i] {
				r.Tables = []clickhouse.ReplicaTable{{Database: "default", Table: "traces", ZooKeeperPath: chtest.TracesPath, ReplicaName: name, IsReadonly: readonly}}
			}
			v.Replicas = append(v.Replicas, r)
		}
		return v
	}
	reg := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[chtest.TracesPath+"/replicas/"+n] = true
		}
		return m
	}
	// A modern server: SYSTEM RESTORE REPLICA is what the plan depends on.
	modern := clickhouse.Capabilities{Version: chtest.ModernVersion, Major: 24, Minor: 8, TableUUIDs: true, DatabaseUUIDs: true, RestoreReplica: true, DefaultReplicatedArgs: true}
	tests := []struct {
		name       string
		caps       clickhouse.Capabilities
		view       *clickhouse.View
		registered map[string]bool
		want       []string
		err        string
	}{
		{"empty replicas, empty zookeeper", clickhouse.Capabilities{Major: 18}, view([]bool{false, false, false}, false), reg(),
			[]string{"create-database", "create-table", "load-partition"}, ""},
		{"empty replicas, zookeeper kept the group", clickhouse.Capabilities{Major: 18}, view([]bool{false, false, false}, false), reg("ch1", "ch2", "ch3"),
			[]string{"create-database", "drop-group " + chtest.TracesPath, "create-table", "load-partition"}, ""},
		{"one replica lost, still registered", clickhouse.Capabilities{Major: 18}, view([]bool{true, true, false}, false), reg("ch1", "ch2", "ch3"),
			[]string{"create-database", "drop-registration " + chtest.TracesPath + "/replicas/ch3", "create-table", "load-partition"}, ""},
		{"fixture: modern server, parts survived, zookeeper lost", modern, view([]bool{true, true, true}, true), reg(),
			[]string{"create-database", "restore-metadata SYSTEM RESTORE REPLICA `default`.`traces` ON CLUSTER `default`"}, ""},
		{"18.16, parts survived, zookeeper lost", clickhouse.Capabilities{Version: "18.16.1", Major: 18}, view([]bool{true, true, true}, true), reg(),
			nil, "has no SYSTEM RESTORE REPLICA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := clusterPlan(base, tt.view, tt.caps, "default", tt.registered)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range p.Steps {
				g := string(s.Action)
				if s.ZooKeeperPath != "" {
					g += " " + s.ZooKeeperPath
				}
				if s.Action == "restore-metadata" {
					g += " " + s.SQL
				}
				got = append(got, g)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("steps %v\nwant %v", got, tt.want)
			}
		})
	}
}
