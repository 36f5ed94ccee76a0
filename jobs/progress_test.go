package jobs

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/progress"
)

// TestStatusShowsRunningProgress: the status JSON carries a running job's progress (its
// current table and partition, bytes done and expected) and nothing for a job that is idle.
func TestStatusShowsRunningProgress(t *testing.T) {
	js, err := ParseJobs([]config.Job{
		{Name: "nightly", Schedule: "0 3 * * *", Action: config.ActionBackup, Timeout: config.Duration(time.Hour)},
		{Name: "prune", Schedule: "0 4 * * *", Action: config.ActionPrune, Timeout: config.Duration(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := progress.NewTracker()
	tr.Plan(progress.Unit{Source: "clickhouse", Table: "default.traces", Partition: "202605", Bytes: 1000})
	tr.Begin(progress.Unit{Source: "clickhouse", Table: "default.traces", Partition: "202605"})
	tr.Add(250, 10)
	d := &Daemon{cfg: &config.Config{}, jobs: js, running: map[string]Run{"nightly": {ID: "r1", Job: "nightly"}},
		progress: map[string]*progress.Tracker{"nightly": tr}}
	s, err := d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"progress":{"bytes":250,"rows":10,"expected_bytes":1000`, `"table":"default.traces","partition":"202605"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status jobs JSON lacks %s: %s", want, b)
		}
	}
	if strings.Count(string(b), `"progress"`) != 1 {
		t.Errorf("only the running job has progress: %s", b)
	}
}
