package replica

import (
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// healthyCluster is three replicas of default.traces, caught up, registered and active, and a
// local event_log: what a check must find nothing wrong with.
func healthyCluster(uuid string) (*clickhouse.View, []replicaFacts) {
	v := &clickhouse.View{Taken: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}
	var facts []replicaFacts
	g := clickhouse.Group{ZooKeeperPath: chtest.TracesPath}
	for i, name := range []string{"ch1", "ch2", "ch3"} {
		addr := "10.0.0." + string(rune('1'+i)) + ":9000"
		v.Replicas = append(v.Replicas, clickhouse.Replica{Addr: addr, Up: true, Macros: map[string]string{"replica": name, "shard": "01"},
			Tables: []clickhouse.ReplicaTable{{Database: "default", Table: "traces", Engine: "ReplicatedReplacingMergeTree", UUID: uuid, ZooKeeperPath: chtest.TracesPath, ReplicaName: name}}})
		g.Registered = append(g.Registered, clickhouse.Registration{Name: name, Active: true})
		g.Members = append(g.Members, clickhouse.Member{Addr: addr, Table: "default.traces", ReplicaName: name, UUID: uuid})
		facts = append(facts, replicaFacts{
			"default.traces":    {Engine: "ReplicatedReplacingMergeTree", UUID: uuid, Columns: []string{"id String", "timestamp DateTime"}, Partitions: map[string]uint64{"202605": 10, "202606": 20}},
			"default.event_log": {Engine: "MergeTree", Columns: []string{"id String"}, Partitions: map[string]uint64{"202605": uint64(i + 1)}},
		})
	}
	v.Groups = []clickhouse.Group{g}
	return v, facts
}

func TestJudge(t *testing.T) {
	tests := []struct {
		name       string
		uuid       string
		mutate     func(v *clickhouse.View, f []replicaFacts, m *[]Migration, o *CheckOptions)
		verdict    string // ch3's traces cell
		problem    string // the one problem's kind, "" for none
		fixContain string
	}{
		{"healthy", "", func(*clickhouse.View, []replicaFacts, *[]Migration, *CheckOptions) {}, VerdictOK, "", ""},
		{"isolated by path", "", func(v *clickhouse.View, f []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			v.Replicas[2].Tables[0].ZooKeeperPath = chtest.TracesPath + "_v2"
			v.Groups[0].Registered = v.Groups[0].Registered[:2]
			v.Groups = append(v.Groups, clickhouse.Group{ZooKeeperPath: chtest.TracesPath + "_v2", Registered: []clickhouse.Registration{{Name: "ch3", Active: true}}})
			f[2]["default.traces"].Partitions = map[string]uint64{}
		}, VerdictIsolated, VerdictIsolated, "tracevault restore-replica ch3"},
		// Fixture test: modern servers have table UUIDs; a re-created table gets a new one.
		{"fixture: isolated by UUID on a modern server", "6f1c2b4e-0000-4000-8000-000000000001", func(v *clickhouse.View, f []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			v.Replicas[2].Tables[0].UUID = "6f1c2b4e-0000-4000-8000-000000000002"
		}, VerdictIsolated, VerdictIsolated, "restore-replica ch3"},
		{"readonly", "", func(v *clickhouse.View, _ []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			v.Replicas[2].Tables[0].IsReadonly = true
		},
			VerdictReadonly, VerdictReadonly, "SYSTEM RESTART REPLICA default.traces"},
		{"session expired", "", func(v *clickhouse.View, _ []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			v.Replicas[2].Tables[0].IsSessionExpired, v.Replicas[2].Tables[0].IsReadonly = true, true
		}, VerdictExpired, "", ""},
		{"inactive in zookeeper", "", func(v *clickhouse.View, _ []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			v.Groups[0].Registered[2].Active = false
		},
			VerdictInactive, VerdictInactive, "SYSTEM RESTART REPLICA"},
		{"not registered", "", func(v *clickhouse.View, _ []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			v.Groups[0].Registered = v.Groups[0].Registered[:2]
		},
			VerdictUnregistered, VerdictUnregistered, "restore-replica ch3"},
		{"rows differ with an empty queue", "", func(_ *clickhouse.View, f []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			f[2]["default.traces"].Partitions["202606"] = 19
		}, VerdictRowsDiffer, VerdictRowsDiffer, "SYSTEM SYNC REPLICA default.traces"},
		{"rows differ while the queue drains", "", func(v *clickhouse.View, f []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			f[2]["default.traces"].Partitions["202606"] = 19
			v.Replicas[2].Tables[0].QueueSize = 3
		}, VerdictSyncing, "", ""},
		{"lagging", "", func(v *clickhouse.View, _ []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			v.Replicas[2].Tables[0].AbsoluteDelay = 900
		},
			VerdictLagging, VerdictLagging, "replication_queue"},
		{"table missing", "", func(v *clickhouse.View, f []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			v.Replicas[2].Tables = nil
			delete(f[2], "default.traces")
		}, VerdictMissing, VerdictMissing, "tracevault restore-replica ch3"},
		{"replica down", "", func(v *clickhouse.View, f []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			v.Replicas[2].Up, v.Replicas[2].Error, v.Replicas[2].Tables = false, "connection refused", nil
			f[2] = nil
		}, VerdictDown, VerdictDown, "restore-replica 10.0.0.3:9000"},
		{"schema differs", "", func(_ *clickhouse.View, f []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			f[2]["default.traces"].Columns = []string{"id String", "timestamp DateTime", "extra UInt8"}
		}, VerdictSchema, VerdictSchema, "ALTER TABLE default.traces ON CLUSTER"},
		{"dirty migration", "", func(_ *clickhouse.View, _ []replicaFacts, m *[]Migration, _ *CheckOptions) {
			*m = []Migration{{Database: "default", Version: 12, Dirty: true}}
		}, VerdictOK, "migration", "force 12"},
		{"zookeeper down", "", func(_ *clickhouse.View, _ []replicaFacts, _ *[]Migration, o *CheckOptions) {
			o.ZooKeeper = []zookeeper.ServerHealth{{Server: "zk1:2181", Error: "connection refused"}}
		}, VerdictOK, "zookeeper", "quorum"},
		{"stale registration of a replica no longer configured", "", func(v *clickhouse.View, _ []replicaFacts, _ *[]Migration, _ *CheckOptions) {
			v.Groups[0].Registered = append(v.Groups[0].Registered, clickhouse.Registration{Name: "ch4"})
		}, VerdictOK, "stale-registration", "replicas/ch4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, f := healthyCluster(tt.uuid)
			var m []Migration
			o := CheckOptions{}
			tt.mutate(v, f, &m, &o)
			rep := judge(v, f, m, o)
			var traces *TableCheck
			for i := range rep.Tables {
				if rep.Tables[i].Table == "default.traces" {
					traces = &rep.Tables[i]
				}
			}
			if traces == nil || len(traces.Cells) != 3 {
				t.Fatalf("no traces row of 3 cells: %+v", rep.Tables)
			}
			if got := traces.Cells[2].Verdict; got != tt.verdict {
				t.Errorf("ch3 traces verdict %q, want %q (%s)", got, tt.verdict, traces.Cells[2].Detail)
			}
			for _, c := range traces.Cells[:2] {
				if c.Verdict != VerdictOK && tt.problem != VerdictDown {
					t.Errorf("peer %s judged %q: %s", c.Replica, c.Verdict, c.Detail)
				}
			}
			if tt.problem == "" && tt.verdict != VerdictExpired {
				if !rep.Healthy || len(rep.Problems) != 0 {
					t.Errorf("want healthy, got %+v", rep.Problems)
				}
				return
			}
			if rep.Healthy {
				t.Fatal("judged healthy")
			}
			if tt.problem == "" {
				return
			}
			found := false
			for _, p := range rep.Problems {
				if p.Kind == tt.problem && strings.Contains(p.Fix, tt.fixContain) {
					found = true
				}
			}
			if !found {
				t.Errorf("no %s problem whose fix says %q: %+v", tt.problem, tt.fixContain, rep.Problems)
			}
		})
	}
}

// TestJudgeLocalTables: local tables hold different rows on each replica, so only their
// existence and columns are compared.
func TestJudgeLocalTables(t *testing.T) {
	v, f := healthyCluster("")
	rep := judge(v, f, nil, CheckOptions{})
	if !rep.Healthy {
		t.Fatalf("event_log's different row counts judged a problem: %+v", rep.Problems)
	}
	delete(f[1], "default.event_log")
	rep = judge(v, f, nil, CheckOptions{})
	if rep.Healthy || rep.Problems[0].Kind != VerdictMissing || !strings.Contains(rep.Problems[0].Fix, "--from-snapshot") {
		t.Errorf("a missing local table: %+v", rep.Problems)
	}
}

func TestWriteReport(t *testing.T) {
	v, f := healthyCluster("")
	v.Replicas[2].Tables[0].ZooKeeperPath = chtest.TracesPath + "_v2"
	var b strings.Builder
	WriteReport(&b, judge(v, f, nil, CheckOptions{}))
	for _, want := range []string{"default.traces", "ok 30", "isolated 30", "fix: tracevault restore-replica ch3"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestWriteReportSyncing: a cell whose queue is not empty has not had its rows compared, so
// the report must not call the cluster healthy, nor call it a problem.
func TestWriteReportSyncing(t *testing.T) {
	tests := []struct {
		name       string
		queue      uint32
		want, deny string
	}{
		{"caught up", 0, "healthy: 2 tables on 3 replicas", "syncing"},
		{"queue draining", 3, "rows not compared while syncing: default.traces on ch3", "healthy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, f := healthyCluster("")
			v.Replicas[2].Tables[0].QueueSize = tt.queue
			f[2]["default.traces"].Partitions["202606"] = 19
			if tt.queue == 0 {
				f[2]["default.traces"].Partitions["202606"] = 20
			}
			var b strings.Builder
			WriteReport(&b, judge(v, f, nil, CheckOptions{}))
			if !strings.Contains(b.String(), tt.want) || strings.Contains(b.String(), tt.deny) {
				t.Errorf("report wants %q, not %q:\n%s", tt.want, tt.deny, b.String())
			}
		})
	}
}
