package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

func TestDrillDiskCheck(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir() // one filesystem
	ch := func(dir string, need int64) landing { return landing{what: "clickhouse", dir: dir, need: need} }
	pg := func(dir string, need int64) landing { return landing{what: "postgres", dir: dir, need: need} }
	cases := []struct {
		name    string
		lands   []landing
		want    string // in the result, or in the error when refused
		refused bool
	}{
		{"fits", []landing{ch(dir, 1), pg(dir, 1)}, "2 B to restore", false},
		{"too big", []landing{ch(dir, 1<<62)}, "the snapshot restores 4.0 EiB onto it", true},
		{"both sources together too big", []landing{ch(dir, 1<<61), pg(other, 1<<61+1<<60)}, "not enough disk", true},
		{"replicas on one filesystem count once", []landing{ch(dir, 10), ch(other, 10), ch(dir, 10)}, "10 B to restore", false},
		{"another host's directory", []landing{ch("/nonexistent/clickhouse/", 1<<62), pg(dir, 1)}, "not measured: the data directories of clickhouse", false},
		{"sizes are for people", []landing{ch(dir, 3<<29)}, "1.5 GiB to restore", false},
		{"postgres data_directory unreadable", []landing{pg("", 1<<62)}, "not measured: the data directories of postgres", false},
	}
	for _, c := range cases {
		got, err := diskCheck(c.lands)
		text := got
		if err != nil {
			text = err.Error()
		}
		if (err != nil) != c.refused || !strings.Contains(text, c.want) {
			t.Errorf("%s: diskCheck = %q, %v; want %q (refused %v)", c.name, got, err, c.want, c.refused)
		}
	}
}

func TestRecoveryPoints(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	comp := func(src, status string) store.Component { return store.Component{Source: src, Status: status} }
	snaps := []store.Manifest{
		{ID: "a", Start: t0, Status: store.StatusComplete, Components: []store.Component{comp("postgres", store.StatusComplete), comp("clickhouse", store.StatusComplete)}},
		{ID: "b", Start: t0.Add(time.Hour), Status: store.StatusComplete, Components: []store.Component{comp("clickhouse", store.StatusComplete)}},
		// A partial set proves nothing about any of its sources.
		{ID: "c", Start: t0.Add(2 * time.Hour), Status: store.StatusPartial, Components: []store.Component{comp("postgres", store.StatusComplete), comp("clickhouse", "failed")}},
	}
	got := recoveryPoints(snaps)
	if !got["postgres"].Equal(t0) || !got["clickhouse"].Equal(t0.Add(time.Hour)) || len(got) != 2 {
		t.Errorf("recovery points %v; want postgres from a, clickhouse from b", got)
	}
}

// TestScratchZKNodes: a drill cleans up only the replication-path nodes under its scratch
// database's segment, deepest first, and never a live database's.
func TestScratchZKNodes(t *testing.T) {
	tbl := func(db, zkPath string) clickhouse.TableRecord {
		return clickhouse.TableRecord{Table: clickhouse.Table{Database: db, ZooKeeperPath: zkPath}}
	}
	tests := []struct {
		name   string
		tables []clickhouse.TableRecord
		dbMap  map[string]string
		want   []string
	}{
		{name: "database segment", tables: []clickhouse.TableRecord{tbl("default", "/clickhouse/tables/01/default/traces"), tbl("default", "/clickhouse/tables/01/default/scores")},
			dbMap: map[string]string{"default": "default_drill"}, want: []string{"/clickhouse/tables/01/default_drill"}},
		{name: "nested under the database", tables: []clickhouse.TableRecord{tbl("ux", "/ch/ux/shard1/events")},
			dbMap: map[string]string{"ux": "ux_drill"}, want: []string{"/ch/ux_drill/shard1", "/ch/ux_drill"}},
		{name: "suffix on the table node: nothing above it", tables: []clickhouse.TableRecord{tbl("default", "/clickhouse/tables/traces")},
			dbMap: map[string]string{"default": "default_drill"}},
		{name: "unreplicated and unmapped tables", tables: []clickhouse.TableRecord{tbl("default", ""), tbl("other", "/ch/other/t")},
			dbMap: map[string]string{"default": "default_drill"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scratchZKNodes(tt.tables, tt.dbMap)
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("scratchZKNodes = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDropScratchSQL(t *testing.T) {
	for _, tt := range []struct{ cluster, want string }{
		{"", "DROP DATABASE `default_drill` (on every replica)"},
		{"langfuse", "DROP DATABASE `default_drill` ON CLUSTER `langfuse`"},
	} {
		got := dropScratchSQL(tt.cluster, "default_drill")
		if got != tt.want || strings.Contains(got, "...") {
			t.Errorf("dropScratchSQL(%q) = %q, want %q", tt.cluster, got, tt.want)
		}
	}
}
