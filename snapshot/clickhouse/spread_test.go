package clickhouse

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestAssignExports checks which replica gives each partition of a replicated table: only a
// replica fit for the partition (cut not before the primary's, same columns, same listing of
// it), the least loaded of those, the largest partitions placed first.
func TestAssignExports(t *testing.T) {
	tbl := Table{Database: "d", Name: "traces", Engine: "ReplicatedReplacingMergeTree", UUID: "u"}
	cols := []string{"id String", "event_ts DateTime"}
	cut := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	part := func(id string, bytes uint64) Partition {
		return Partition{ID: id, Parts: []string{id + "_1_4_1"}, Rows: 10, Bytes: bytes, visible: 10, content: []string{id + "_1_4_1 h"}}
	}
	sized := func(bytes ...uint64) []Partition {
		var out []Partition
		for i, b := range bytes {
			out = append(out, part(string(rune('a'+i)), b))
		}
		return out
	}
	// replica lists parts as the primary does, unless changed.
	replica := func(addr string, parts []Partition, change func(*replicaFit)) replicaFit {
		r := replicaFit{Addr: addr, Cut: cut, Columns: cols, Listing: slices.Clone(parts)}
		if change != nil {
			change(&r)
		}
		return r
	}
	three := func(parts []Partition, changeB, changeC func(*replicaFit)) []replicaFit {
		return []replicaFit{replica("A", parts, nil), replica("B", parts, changeB), replica("C", parts, changeC)}
	}
	equal := sized(100, 100, 100, 100, 100, 100)
	uneven := sized(10, 70, 20, 30, 40)
	tests := []struct {
		name     string
		parts    []Partition
		replicas []replicaFit
		load     map[string]*exportLoad // before
		want     []string
		wantLoad map[string]exportLoad // after
	}{
		{"one replica gives everything", uneven, []replicaFit{replica("A", uneven, nil)}, nil,
			[]string{"A", "A", "A", "A", "A"}, map[string]exportLoad{"A": {170, 5}}},
		{"equal partitions go round the replicas", equal, three(equal, nil, nil), nil,
			[]string{"A", "B", "C", "A", "B", "C"}, map[string]exportLoad{"A": {200, 2}, "B": {200, 2}, "C": {200, 2}}},
		// 70 A, 40 B, 30 B (40 < 70), 20 A (70 = 70, fewer exports), 10 B.
		{"largest first, each to the fewest bytes", uneven, three(uneven, nil, func(r *replicaFit) { r.Cut = cut.Add(-time.Second) }), nil,
			[]string{"B", "A", "A", "B", "B"}, map[string]exportLoad{"A": {90, 2}, "B": {80, 3}}},
		{"a replica behind the primary's cut gives nothing", equal, three(equal, func(r *replicaFit) { r.Cut = cut.Add(-time.Second) }, nil), nil,
			[]string{"A", "C", "A", "C", "A", "C"}, map[string]exportLoad{"A": {300, 3}, "C": {300, 3}}},
		{"a replica ahead of the primary's cut may give", sized(5, 5), three(sized(5, 5), func(r *replicaFit) { r.Cut = cut.Add(time.Second) }, nil), nil,
			[]string{"A", "B"}, map[string]exportLoad{"A": {5, 1}, "B": {5, 1}}},
		{"a replica whose columns differ gives nothing", equal, three(equal, nil, func(r *replicaFit) { r.Columns = cols[:1] }), nil,
			[]string{"A", "B", "A", "B", "A", "B"}, map[string]exportLoad{"A": {300, 3}, "B": {300, 3}}},
		{"a replica whose listing was not read gives nothing", equal, three(equal, func(r *replicaFit) { r.Columns, r.Listing = nil, nil }, nil), nil,
			[]string{"A", "C", "A", "C", "A", "C"}, map[string]exportLoad{"A": {300, 3}, "C": {300, 3}}},
		{"a replica without the table gives nothing", sized(5, 5), three(sized(5, 5), func(r *replicaFit) { r.Columns, r.Listing = []string{}, nil }, func(r *replicaFit) { r.Listing = nil }), nil,
			[]string{"A", "A"}, map[string]exportLoad{"A": {10, 2}}},
		// Without the mismatches: A, B, C.
		{"a partition listed with other parts or contents stays off that replica", sized(9, 8, 7), three(sized(9, 8, 7), func(r *replicaFit) {
			r.Listing[1].Parts = append(r.Listing[1].Parts, "b_5_5_0") // not fetched by the primary yet, or fetched here first
		}, func(r *replicaFit) {
			r.Listing[2].content = []string{"c_1_4_1 other"}
		}), nil,
			[]string{"A", "C", "B"}, map[string]exportLoad{"A": {9, 1}, "B": {7, 1}, "C": {8, 1}}},
		{"a partition with other patch parts stays off that replica", sized(9, 8, 7), three(sized(9, 8, 7), func(r *replicaFit) {
			r.Listing[1].Patches = []string{"patch-0a-b_5_5_0"}
		}, nil), nil,
			[]string{"A", "C", "B"}, map[string]exportLoad{"A": {9, 1}, "B": {7, 1}, "C": {8, 1}}},
		{"a partition with other visible rows stays off that replica", sized(9, 8, 7), three(sized(9, 8, 7), nil, func(r *replicaFit) {
			r.Listing[2].visible = 9 // a lightweight delete masked a row here
		}), nil,
			[]string{"A", "B", "B"}, map[string]exportLoad{"A": {9, 1}, "B": {15, 2}}},
		{"a partition with other rows stays off that replica", sized(9, 8, 7), three(sized(9, 8, 7), func(r *replicaFit) { r.Listing[1].Rows = 11 }, nil), nil,
			[]string{"A", "C", "B"}, map[string]exportLoad{"A": {9, 1}, "B": {7, 1}, "C": {8, 1}}},
		{"a partition counted while it changed stays off that replica", sized(9, 8, 7), three(sized(9, 8, 7), func(r *replicaFit) {
			r.Listing[1].unsettled = "token" // each listing draws its own (see countVisible)
		}, nil), nil,
			[]string{"A", "C", "B"}, map[string]exportLoad{"A": {9, 1}, "B": {7, 1}, "C": {8, 1}}},
		{"a partition a replica does not list stays off it", sized(9, 8, 7), three(sized(9, 8, 7), func(r *replicaFit) { r.Listing = slices.Delete(r.Listing, 1, 2) }, func(r *replicaFit) { r.Listing = nil }), nil,
			[]string{"A", "A", "B"}, map[string]exportLoad{"A": {17, 2}, "B": {7, 1}}},
		{"earlier tables' load counts", sized(100, 100), three(sized(100, 100), nil, nil), map[string]*exportLoad{"A": {1000, 4}, "B": {100, 1}},
			[]string{"C", "B"}, map[string]exportLoad{"A": {1000, 4}, "B": {200, 2}, "C": {100, 1}}},
		{"a loaded primary still gives what no one else can", sized(100, 100), three(sized(100, 100), func(r *replicaFit) { r.Cut = cut.Add(-time.Second) }, func(r *replicaFit) { r.Columns = nil }),
			map[string]*exportLoad{"A": {1000, 4}},
			[]string{"A", "A"}, map[string]exportLoad{"A": {1200, 6}}},
		{"fewest exports break a tie of bytes", sized(0, 0, 0), three(sized(0, 0, 0), nil, nil), map[string]*exportLoad{"A": {0, 2}, "B": {0, 1}},
			[]string{"C", "B", "C"}, map[string]exportLoad{"A": {0, 2}, "B": {0, 2}, "C": {0, 2}}},
		{"no partitions", nil, three(nil, nil, nil), nil, nil, map[string]exportLoad{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			load := map[string]*exportLoad{}
			for addr, l := range tt.load {
				load[addr] = &exportLoad{l.bytes, l.exports}
			}
			var got []string
			for _, j := range assignExports(tbl, tt.parts, cols, tt.replicas, load) {
				got = append(got, tt.replicas[j].Addr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("assigned %v, want %v", got, tt.want)
			}
			gotLoad := map[string]exportLoad{}
			for addr, l := range load {
				if l.exports > 0 {
					gotLoad[addr] = *l
				}
			}
			if !reflect.DeepEqual(gotLoad, tt.wantLoad) {
				t.Errorf("load after %v, want %v", gotLoad, tt.wantLoad)
			}
		})
	}
}

// TestSourceReplicas checks that only the replicas healthy for a replicated table are
// candidates, least delay and queue first, and that a local table is read from every server.
func TestSourceReplicas(t *testing.T) {
	servers := []*Server{{Addr: "a"}, {Addr: "b"}, {Addr: "c"}, {Addr: "d"}, {Addr: "e"}}
	row := func(table string, change func(*ReplicaTable)) ReplicaTable {
		r := ReplicaTable{Database: "d", Table: table}
		if change != nil {
			change(&r)
		}
		return r
	}
	view := &View{Replicas: []Replica{
		{Addr: "a", Up: true, Tables: []ReplicaTable{row("t", func(r *ReplicaTable) { r.IsReadonly = true }), row("u", nil)}},
		{Addr: "b", Up: true, Tables: []ReplicaTable{row("t", func(r *ReplicaTable) { r.AbsoluteDelay = 5 })}},
		{Addr: "c", Up: true, Tables: []ReplicaTable{row("t", func(r *ReplicaTable) { r.QueueSize = 3 })}},
		{Addr: "d", Up: true, Tables: []ReplicaTable{row("t", func(r *ReplicaTable) { r.IsSessionExpired = true })}},
		{Addr: "e", Up: true, Tables: []ReplicaTable{row("t", nil), row("u", func(r *ReplicaTable) { r.IsReadonly = true })}},
	}}
	replicated := func(name string) Table { return Table{Database: "d", Name: name, Engine: "ReplicatedMergeTree"} }
	tests := []struct {
		name  string
		table Table
		want  []string
	}{
		{"readonly and expired replicas are left out", replicated("t"), []string{"e", "c", "b"}},
		{"only the replicas that have the table", replicated("u"), []string{"a"}},
		{"no replica has it", replicated("v"), []string{}},
		{"a local table is read everywhere", Table{Database: "d", Name: "t", Engine: "MergeTree"}, []string{"a", "b", "c", "d", "e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []string{}
			for _, s := range sourceReplicas(tt.table, servers, view) {
				got = append(got, s.Addr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("sourceReplicas = %v, want %v", got, tt.want)
			}
		})
	}
}
