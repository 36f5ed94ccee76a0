package jobs

import (
	"context"
	"os"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
)

// LastDrill is the newest finished drill run, for the page's "last proven restore" panel.
func LastDrill(runs []Run) *Run {
	for i := range runs {
		if runs[i].Action == config.ActionDrill && runs[i].Outcome != OutcomeRunning && runs[i].Outcome != OutcomeSkipped {
			return &runs[i]
		}
	}
	return nil
}

// LastProvenDrill is the newest successful drill run, job or `tracevault drill`, for
// tracevault_drill_last_success_timestamp_seconds: read from the same history as LastDrill.
func LastProvenDrill(runs []Run) *Run {
	var last *Run
	for i := range runs {
		if runs[i].Action == config.ActionDrill && runs[i].Outcome == OutcomeSucceeded && (last == nil || runs[i].End.After(last.End)) {
			last = &runs[i]
		}
	}
	return last
}

// DrillRun turns a drill's result into its run record's fields.
func DrillRun(r *Run, res *DrillResult) {
	if res == nil {
		return
	}
	r.Snapshot, r.RTOSeconds, r.RPOSeconds = res.Snapshot, res.RTOSeconds, res.RPOSeconds
	r.RestoreSeconds = map[string]float64{}
	for _, s := range res.Sources {
		r.RestoreSeconds[s.Source] = s.RestoreSeconds
	}
}

// RecordDrill keeps a drill run outside the daemon (`tracevault drill`) in the shared run
// history, so the status page and /metrics of every daemon see the proof or the failure.
func RecordDrill(ctx context.Context, repo *store.Repository, res *DrillResult, start time.Time) (Run, error) {
	host, _ := os.Hostname()
	r := Run{ID: newRunID(), Job: config.ActionDrill, Action: config.ActionDrill, Trigger: TriggerManual, Host: host,
		Start: start.UTC(), End: time.Now().UTC(), Outcome: res.Outcome, Error: res.Error}
	DrillRun(&r, res)
	return r, (&History{Repo: repo, Limit: historyLimit}).Record(ctx, r)
}
