package restore

import (
	"bytes"
	"strings"
	"testing"
)

// TestPlanMarksWhatOverwritesLiveData: --dry-run says which databases a map leaves out, warns
// first of what the plan writes over, and marks each such step; the refusal without --replace
// names every partition --replace would overwrite, with the rows it holds now.
func TestPlanMarksWhatOverwritesLiveData(t *testing.T) {
	p := &Plan{Snapshot: "20261206T0300-aa", DatabaseMap: map[string]string{"ux_db": "ux_db2"}, LeftOut: []string{"default"}, Steps: []Step{
		{Action: ActionCreateDatabase, Target: "ux_db2"},
		{Action: ActionCreateTable, Target: "ux_db2.traces"},
		{Action: ActionLoadPartition, Target: "ux_db2.traces", Partition: "202605", Replica: "ch1", Rows: 5},
	}}
	var out bytes.Buffer
	WritePlan(&out, p)
	if !strings.HasPrefix(out.String(), "restoring only the mapped databases: ux_db → ux_db2 (the snapshot's default left as it is)\n") ||
		strings.Contains(out.String(), "overwrites live data]") || !strings.Contains(out.String(), "; 0 steps overwrite live data") {
		t.Errorf("map plan:\n%s", out.String())
	}
	if err := refuseOverwrites(p); err != nil {
		t.Errorf("a plan writing over nothing refused: %v", err)
	}

	p = &Plan{Snapshot: "20261206T0300-aa", Steps: []Step{
		{Action: ActionCreateTable, Target: "default.traces"},
		{Action: ActionLoadPartition, Target: "default.traces", Partition: "202605", Replica: "ch1", Rows: 5, Overwrites: true, LiveRows: 7},
		{Action: ActionLoadPartition, Target: "default.traces", Partition: "202606", Replica: "ch1", Rows: 5},
		{Action: ActionLoadPartition, Target: "default.traces", Partition: "202607", Replica: "ch1", Rows: 5, Overwrites: true, LiveRows: 3},
		{Action: ActionLoadPartition, Target: "default.scores", Partition: "all", Replica: "ch1", Rows: 1, Overwrites: true, LiveRows: 2},
	}}
	out.Reset()
	WritePlan(&out, p)
	text := out.String()
	for _, want := range []string{
		"WARNING: this plan writes over live data in place, marked [overwrites live data] below: default.traces partitions 202605, 202607 (2 partitions, 10 rows now); default.scores partition all (2 rows now)\n",
		"partition 202605 on ch1: 5 rows, 0 bytes from object  [overwrites live data]: replaces the 7 rows it holds now\n",
		"; 3 steps overwrite live data\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("plan lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "202606 on ch1: 5 rows, 0 bytes from object  [") {
		t.Errorf("a load into an empty partition is marked:\n%s", text)
	}
	err := refuseOverwrites(p)
	for _, want := range []string{"default.traces partitions 202605, 202607 (2 partitions, 10 rows now)", "default.scores partition all (2 rows now)", "--replace would overwrite exactly these partitions in place"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %v lacks %q", err, want)
		}
	}
}
