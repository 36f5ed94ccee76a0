package jobs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// Run outcomes.
const (
	OutcomeRunning     = "running"
	OutcomeSucceeded   = "succeeded"
	OutcomeFailed      = "failed"
	OutcomeSkipped     = "skipped" // the previous occurrence was still running
	OutcomeInterrupted = "interrupted"
)

// Triggers of a run.
const (
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
	TriggerCatchUp  = "catch-up"
)

// Run is one execution of a job, as the history keeps it.
type Run struct {
	ID      string `json:"id"`
	Job     string `json:"job"`
	Action  string `json:"action"`
	Trigger string `json:"trigger"`
	// Occurrence is the scheduled time a scheduled or catch-up run stands for; zero for manual runs.
	Occurrence time.Time `json:"occurrence,omitzero"`
	Host       string    `json:"host"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"`
	Outcome    string    `json:"outcome"`
	Bytes      int64     `json:"bytes,omitempty"`
	Snapshot   string    `json:"snapshot,omitempty"`
	// Cut is the snapshot's cut (every write acknowledged before it is in the snapshot) and the
	// skew between its sources' cuts; zero for a partial snapshot and other jobs.
	Cut            time.Time `json:"cut,omitzero"`
	CutSkewSeconds float64   `json:"cut_skew_seconds,omitempty"`
	Error          string    `json:"error,omitempty"`
	// A drill's measured recovery: time to restore (total and per source) and the restored
	// snapshot's age when the drill started.
	RTOSeconds     float64            `json:"rto_seconds,omitempty"`
	RPOSeconds     float64            `json:"rpo_seconds,omitempty"`
	RestoreSeconds map[string]float64 `json:"restore_seconds,omitempty"`
	// A replay of Langfuse's raw events: how many it sent and the recovery point reached.
	ReplayedEvents int    `json:"replayed_events,omitempty"`
	RecoveryPoint  string `json:"recovery_point,omitempty"`
}

// History keeps runs in the repository under runs/, so every daemon sharing the repository
// sees the same history and it survives restarts. It keeps the newest Limit runs.
type History struct {
	Repo  *store.Repository
	Limit int
}

func runName(r Run) string {
	return "runs/" + r.Start.UTC().Format("20060102T150405.000000000Z") + "-" + r.ID + ".json"
}

// Record writes (or rewrites) a run and trims the history to its limit. The error is stored as
// safe text (see store.ErrorText): run records reach the public status page.
func (h *History) Record(ctx context.Context, r Run) error {
	r.Error = store.ErrorText(r.Error)
	if err := h.Repo.PutJSON(ctx, runName(r), r); err != nil {
		return fmt.Errorf("record run %s of job %s: %w", r.ID, r.Job, err)
	}
	if r.Outcome == OutcomeRunning {
		return nil
	}
	names, err := h.names(ctx)
	if err != nil {
		return err
	}
	for len(names) > h.Limit {
		if err := h.Repo.Backend().Delete(ctx, names[0]); err != nil {
			return err
		}
		names = names[1:]
	}
	return nil
}

func (h *History) names(ctx context.Context) ([]string, error) {
	var names []string
	err := h.Repo.Backend().List(ctx, "runs/", func(o store.ObjectInfo) error {
		if strings.HasSuffix(o.Name, ".json") {
			names = append(names, o.Name)
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}

// Recent returns up to n runs, newest first.
func (h *History) Recent(ctx context.Context, n int) ([]Run, error) {
	names, err := h.names(ctx)
	if err != nil {
		return nil, err
	}
	var out []Run
	for i := len(names) - 1; i >= 0 && len(out) < n; i-- {
		var r Run
		if err := h.Repo.GetJSON(ctx, names[i], &r); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue // trimmed by another daemon meanwhile
			}
			if errors.Is(err, store.ErrUndecodable) {
				continue // one damaged record must not hide the history; Record trims it in time
			}
			return nil, err
		}
		// The id reaches URLs and file names; a run that is not the file it is stored as was not
		// written by a daemon, and is skipped.
		if store.ValidRunID(r.ID) != nil || runName(r) != names[i] {
			continue
		}
		r.Error = store.ErrorText(r.Error) // records written before errors were sanitised
		out = append(out, r)
	}
	return out, nil
}
