package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/tracevault/tracevault/config"
)

// TestDrillMetricReadsTheHistory checks that the last-success metric counts every successful
// drill in the run history (the page's source), also one `tracevault drill` recorded, and never
// goes back to an older proof.
func TestDrillMetricReadsTheHistory(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)
	cliDrill := Run{ID: "r3", Job: config.ActionDrill, Action: config.ActionDrill, Trigger: TriggerManual, Outcome: OutcomeSucceeded,
		Start: t0.Add(2 * time.Hour), End: t0.Add(3 * time.Hour), RestoreSeconds: map[string]float64{"clickhouse": 12}}
	jobDrill := Run{ID: "r1", Job: "weekly-drill", Action: config.ActionDrill, Trigger: TriggerSchedule, Outcome: OutcomeSucceeded,
		Start: t0, End: t0.Add(time.Hour)}
	failedDrill := Run{ID: "r4", Job: config.ActionDrill, Action: config.ActionDrill, Outcome: OutcomeFailed, Start: t0.Add(4 * time.Hour), End: t0.Add(5 * time.Hour)}
	backup := Run{ID: "r5", Job: "nightly", Action: config.ActionBackup, Outcome: OutcomeSucceeded, Start: t0.Add(6 * time.Hour), End: t0.Add(7 * time.Hour)}
	tests := []struct {
		name    string
		seen    []Run // runs this daemon ran itself
		history []Run // newest first, as History.Recent returns
		want    time.Time
	}{
		{name: "a CLI drill in the history counts", history: []Run{backup, failedDrill, cliDrill, jobDrill}, want: cliDrill.End},
		{name: "an older history does not lower a newer proof", seen: []Run{cliDrill}, history: []Run{jobDrill}, want: cliDrill.End},
		{name: "a daemon's own drill counts without history", seen: []Run{jobDrill}, want: jobDrill.End},
		{name: "failed drills and backups prove nothing", history: []Run{backup, failedDrill}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMetrics()
			for _, r := range tt.seen {
				m.observeRun(r)
			}
			if tt.history != nil {
				m.drills.read = func(context.Context) ([]Run, error) { return tt.history, nil }
			}
			fams, err := m.reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var got float64
			for _, f := range fams {
				if f.GetName() == "tracevault_drill_last_success_timestamp_seconds" {
					got = f.GetMetric()[0].GetGauge().GetValue()
				}
			}
			var want float64
			if !tt.want.IsZero() {
				want = float64(tt.want.Unix())
			}
			if got != want {
				t.Errorf("tracevault_drill_last_success_timestamp_seconds = %v, want %v", got, want)
			}
		})
	}
}
