package jobs

import (
	"context"
	"time"
)

// JobStatus is one job as the status page shows it.
type JobStatus struct {
	Name     string    `json:"name"`
	Action   string    `json:"action"`
	Schedule string    `json:"schedule"`
	Only     []string  `json:"only,omitempty"`
	NextRun  time.Time `json:"next_run"`
	Running  bool      `json:"running"`
	LastRun  *Run      `json:"last_run,omitempty"`
}

// SnapshotSummary is one catalog row.
type SnapshotSummary struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Status   string    `json:"status"`
	Sources  []string  `json:"sources"`
	Bytes    int64     `json:"bytes"`
	NewBytes int64     `json:"new_bytes"`
	Objects  int       `json:"objects"`
	Seconds  float64   `json:"duration_seconds"`
	Error    string    `json:"error,omitempty"`
}

// Status is the daemon's state for the web package. Each part reports its own error, so one
// slow or failing backend leaves the rest of the page intact.
type Status struct {
	Now            time.Time         `json:"now"`
	Started        time.Time         `json:"started"`
	Storage        string            `json:"storage"`
	Jobs           []JobStatus       `json:"jobs"`
	Runs           []Run             `json:"runs"`
	RunsError      string            `json:"runs_error,omitempty"`
	Snapshots      []SnapshotSummary `json:"snapshots"`
	SnapshotsError string            `json:"snapshots_error,omitempty"`
}

const shownRows = 20

// Status reports the schedule, recent runs and the newest snapshots; it never returns secrets
// (the storage URL carries none).
func (d *Daemon) Status(ctx context.Context) (Status, error) {
	now := time.Now().UTC()
	s := Status{Now: now, Started: d.started.UTC(), Storage: d.cfg.Storage.URL}
	if d.history != nil {
		runs, err := d.history.Recent(ctx, shownRows*2)
		if err != nil {
			s.RunsError = err.Error()
		}
		s.Runs = runs
		snaps, err := d.repo.Snapshots(ctx)
		if err != nil {
			s.SnapshotsError = err.Error()
		}
		for i := len(snaps) - 1; i >= 0 && len(s.Snapshots) < shownRows; i-- {
			m := snaps[i]
			t := m.Totals()
			s.Snapshots = append(s.Snapshots, SnapshotSummary{ID: m.ID, Time: m.Start, Status: m.Status, Sources: m.Sources(),
				Bytes: t.Bytes, NewBytes: t.NewBytes, Objects: t.Objects, Seconds: m.End.Sub(m.Start).Seconds(), Error: m.Error})
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range d.jobs {
		js := JobStatus{Name: j.Name, Action: j.Action, Schedule: j.Schedule, Only: j.Only, NextRun: j.Next(now).UTC()}
		_, js.Running = d.running[j.Name]
		for i := range s.Runs {
			if s.Runs[i].Job == j.Name && s.Runs[i].Outcome != OutcomeRunning {
				js.LastRun = &s.Runs[i]
				break
			}
		}
		s.Jobs = append(s.Jobs, js)
	}
	if len(s.Runs) > shownRows {
		s.Runs = s.Runs[:shownRows]
	}
	return s, nil
}
