package clickhouse

import (
	"reflect"
	"strings"
	"testing"
)

// Fixtures shared in spirit with the replica package's tests (package replica cannot see these):
// the 18.16 traces path with a shard macro, and a modern server's capabilities.
const legacyPathShard = "/clickhouse/tables/01/default/traces"

var modern = Capabilities{Version: "24.8.4.13", Major: 24, Minor: 8, TableUUIDs: true, RestoreReplica: true, DefaultReplicatedArgs: true}

// TestClusterPlan covers restore --cluster planning; the SYSTEM RESTORE REPLICA rows are a
// fixture test of a modern server whose parts survived while ZooKeeper lost its metadata.
func TestClusterPlan(t *testing.T) {
	rec := &TableRecord{Table: Table{Database: "default", Name: "traces", Engine: "ReplicatedReplacingMergeTree", ZooKeeperPath: legacyPathShard, Create: tracesCreate}}
	base := &Plan{Steps: []Step{
		{Action: "create-database", Target: "default"},
		{Action: "create-table", Target: "default.traces", table: rec},
		{Action: "load-partition", Target: "default.traces", Partition: "202605", table: rec},
	}}
	view := func(have []bool, readonly bool) *View {
		v := &View{}
		for i, name := range []string{"ch1", "ch2", "ch3"} {
			r := Replica{Addr: name + ":9000", Up: true, Macros: map[string]string{"replica": name, "shard": "01"}}
			if have[i] {
				r.Tables = []ReplicaTable{{Database: "default", Table: "traces", ZooKeeperPath: legacyPathShard, ReplicaName: name, IsReadonly: readonly}}
			}
			v.Replicas = append(v.Replicas, r)
		}
		return v
	}
	reg := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[legacyPathShard+"/replicas/"+n] = true
		}
		return m
	}
	tests := []struct {
		name       string
		caps       Capabilities
		view       *View
		registered map[string]bool
		want       []string
		err        string
	}{
		{"empty replicas, empty zookeeper", Capabilities{Major: 18}, view([]bool{false, false, false}, false), reg(),
			[]string{"create-database", "create-table", "load-partition"}, ""},
		{"empty replicas, zookeeper kept the group", Capabilities{Major: 18}, view([]bool{false, false, false}, false), reg("ch1", "ch2", "ch3"),
			[]string{"create-database", "drop-group " + legacyPathShard, "create-table", "load-partition"}, ""},
		{"one replica lost, still registered", Capabilities{Major: 18}, view([]bool{true, true, false}, false), reg("ch1", "ch2", "ch3"),
			[]string{"create-database", "drop-registration " + legacyPathShard + "/replicas/ch3", "create-table", "load-partition"}, ""},
		{"fixture: modern server, parts survived, zookeeper lost", modern, view([]bool{true, true, true}, true), reg(),
			[]string{"create-database", "restore-metadata SYSTEM RESTORE REPLICA `default`.`traces` ON CLUSTER `default`"}, ""},
		{"18.16, parts survived, zookeeper lost", Capabilities{Version: "18.16.1", Major: 18}, view([]bool{true, true, true}, true), reg(),
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
				g := s.Action
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
