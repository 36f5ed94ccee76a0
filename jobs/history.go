package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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

// endName is where a run's end is recorded: a second object beside its start's, never a
// rewrite of it, so that an append-only credential can record it (store.AppendOnly). Readers
// take the end when there is one.
func endName(r Run) string { return strings.TrimSuffix(runName(r), ".json") + endSuffix }

const endSuffix = ".end.json"

// Record writes a run, its start or its end, and trims the history to its limit. The error is
// stored as safe text (see store.ErrorText): run records reach the public status page.
func (h *History) Record(ctx context.Context, r Run) error {
	r.Error = store.ErrorText(r.Error)
	name, write := runName(r), h.Repo.PutJSON
	if r.Outcome != OutcomeRunning {
		name, write = endName(r), h.Repo.CreateJSON
	}
	// A name already taken is a record that stands: a retried record whose first attempt
	// landed, or the end another daemon recorded first (a dead daemon's run, interrupted).
	if err := write(ctx, name, r); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("record run %s of job %s: %w", r.ID, r.Job, err)
	}
	if r.Outcome == OutcomeRunning || h.Repo.AppendOnly() {
		// Append-only: the history is trimmed by the identity that may delete (prune).
		return nil
	}
	_, err := h.trim(ctx)
	return err
}

// trim removes the oldest runs beyond the limit, both records of each, and says how many.
func (h *History) trim(ctx context.Context) (int, error) {
	names, err := h.names(ctx)
	if err != nil {
		return 0, err
	}
	removed := 0
	for len(names) > h.Limit {
		start := strings.TrimSuffix(names[0], endSuffix)
		if start != names[0] {
			start += ".json"
		}
		for _, n := range []string{names[0], start} {
			if err := h.Repo.Backend().Delete(ctx, n); err != nil {
				return removed, err
			}
		}
		names = names[1:]
		removed++
	}
	return removed, nil
}

func (h *History) names(ctx context.Context) ([]string, error) {
	// One name per run, its end's when it has one: newest record wins.
	byRun := map[string]string{}
	err := h.Repo.Backend().List(ctx, "runs/", func(o store.ObjectInfo) error {
		if start, ok := strings.CutSuffix(o.Name, endSuffix); ok {
			byRun[start] = o.Name
		} else if start, ok := strings.CutSuffix(o.Name, ".json"); ok {
			if _, ended := byRun[start]; !ended {
				byRun[start] = o.Name
			}
		}
		return nil
	})
	keys := slices.Sorted(maps.Keys(byRun))
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = byRun[k]
	}
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
		if store.ValidRunID(r.ID) != nil || (runName(r) != names[i] && endName(r) != names[i]) {
			continue
		}
		r.Error = store.ErrorText(r.Error) // records written before errors were sanitised
		out = append(out, r)
	}
	return out, nil
}
