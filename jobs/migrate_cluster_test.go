package jobs

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
)

// The pass state is saved after every partition: a pass run again after an interruption
// moves only the partitions whose object the target does not hold yet.
func TestMigrationStateResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.toml.migrate-state.json")
	src, dst := []string{"a:9000"}, []string{"b:9000"}
	st, err := loadMigrationState(path, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range [][3]string{{"db.traces", "202601", "o1"}, {"db.traces", "202602", "o2"}, {"db.traces", "202603", "o3"}, {"db.traces", "202603", ""}} {
		if err := st.loaded(l[0], l[1], l[2]); err != nil {
			t.Fatal(err)
		}
	}
	again, err := loadMigrationState(path, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	m := &ClusterMigration{state: again}
	steps := []restore.Step{
		{Action: restore.ActionCreateTable, Target: "db.traces"},
		{Action: restore.ActionLoadPartition, Target: "db.traces", Partition: "202601", Object: "o1", Rows: 10},
		{Action: restore.ActionLoadPartition, Target: "db.traces", Partition: "202602", Object: "o2b", Rows: 20},
		{Action: restore.ActionLoadPartition, Target: "db.traces", Partition: "202603", Object: "o3", Rows: 30},
	}
	rep := &PassReport{}
	got := m.changedSteps(steps, rep)
	var kept []string
	for _, s := range got {
		kept = append(kept, string(s.Action)+" "+s.Partition)
	}
	if want := "create-table ,load-partition 202602,load-partition 202603"; strings.Join(kept, ",") != want || rep.BehindPartitions != 2 || rep.BehindRows != 50 {
		t.Errorf("kept %q (%d partitions, %d rows behind), want %q, 2, 50", kept, rep.BehindPartitions, rep.BehindRows, want)
	}
	tests := []struct {
		name     string
		src, dst []string
	}{
		{"another source", []string{"c:9000"}, dst},
		{"another target", src, []string{"a:9000", "d:9000"}},
	}
	for _, tt := range tests {
		if _, err := loadMigrationState(path, tt.src, tt.dst); err == nil || !strings.Contains(err.Error(), "remove it to start over") {
			t.Errorf("%s: %v, want refused", tt.name, err)
		}
	}
}
