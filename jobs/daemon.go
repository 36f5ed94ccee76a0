package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/tracevault/tracevault/config"
)

// Daemon is the long-running side of tracevault: the schedule now, the runs as they land.
type Daemon struct {
	cfg     *config.Config
	jobs    []Job
	log     *slog.Logger
	started time.Time
}

// NewDaemon prepares a daemon for a validated configuration.
func NewDaemon(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	jobs, err := ParseJobs(cfg.Jobs)
	if err != nil {
		return nil, err
	}
	return &Daemon{cfg: cfg, jobs: jobs, log: log, started: time.Now()}, nil
}

// JobStatus is one job as the status page shows it.
type JobStatus struct {
	Name     string    `json:"name"`
	Action   string    `json:"action"`
	Schedule string    `json:"schedule"`
	Only     []string  `json:"only,omitempty"`
	NextRun  time.Time `json:"next_run"`
}

// Status is the daemon's state for the web package.
type Status struct {
	Now     time.Time   `json:"now"`
	Started time.Time   `json:"started"`
	Storage string      `json:"storage"`
	Jobs    []JobStatus `json:"jobs"`
}

// Status reports the schedule; it never returns secrets (the storage URL carries none).
func (d *Daemon) Status(_ context.Context) (Status, error) {
	now := time.Now().UTC()
	s := Status{Now: now, Started: d.started.UTC(), Storage: d.cfg.Storage.URL}
	for _, j := range d.jobs {
		s.Jobs = append(s.Jobs, JobStatus{Name: j.Name, Action: j.Action, Schedule: j.Schedule, Only: j.Only, NextRun: j.Next(now).UTC()})
	}
	return s, nil
}
