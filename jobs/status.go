package jobs

import (
	"context"
	"slices"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
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
	Freshness      []Freshness       `json:"freshness"`
	Repository     RepositoryUsage   `json:"repository"`
}

// Freshness is the recovery point an operator would get now for one source: the age of its
// newest complete snapshot, judged against the most frequent job that backs it up.
type Freshness struct {
	Source          string    `json:"source"`
	Snapshot        string    `json:"snapshot,omitempty"`
	Time            time.Time `json:"time,omitzero"`
	AgeSeconds      float64   `json:"age_seconds"`
	IntervalSeconds float64   `json:"interval_seconds"` // 0: no job backs this source up
	Level           string    `json:"level"`            // ok, warn or bad
	Reason          string    `json:"reason"`
}

// RepositoryUsage is the storage panel: what the repository holds and how fast it grows.
type RepositoryUsage struct {
	Bytes       int64 `json:"bytes"` // all stored objects, as last measured
	Snapshots   int   `json:"snapshots"`
	NewBytes24h int64 `json:"new_bytes_24h"`
	NewBytes7d  int64 `json:"new_bytes_7d"`
}

// Freshness levels.
const (
	LevelOK   = "ok"
	LevelWarn = "warn"
	LevelBad  = "bad"
)

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
		s.Freshness = d.freshness(snaps, now)
		s.Repository = usage(snaps, now)
		s.Repository.Bytes = d.metrics.storedBytes.Load()
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

// freshness judges each configured source: fresh within 1.5 intervals of its most frequent
// backup job (room for jitter and the run itself), stale past 3, and bad with no snapshot at all.
func (d *Daemon) freshness(snaps []store.Manifest, now time.Time) []Freshness {
	var out []Freshness
	for _, src := range d.configuredSources() {
		f := Freshness{Source: src, IntervalSeconds: d.backupInterval(src, now).Seconds()}
		for i := len(snaps) - 1; i >= 0; i-- {
			if snaps[i].Status == store.StatusComplete && slices.Contains(snaps[i].Sources(), src) {
				f.Snapshot, f.Time = snaps[i].ID, snaps[i].End
				f.AgeSeconds = now.Sub(snaps[i].End).Seconds()
				break
			}
		}
		switch {
		case f.Snapshot == "":
			f.Level, f.Reason = LevelBad, "no complete snapshot holds "+src
		case f.IntervalSeconds == 0:
			f.Level, f.Reason = LevelWarn, "no [[jobs]] backup covers "+src
		case f.AgeSeconds <= 1.5*f.IntervalSeconds:
			f.Level, f.Reason = LevelOK, "within its schedule"
		case f.AgeSeconds <= 3*f.IntervalSeconds:
			f.Level, f.Reason = LevelWarn, "a scheduled backup was missed"
		default:
			f.Level, f.Reason = LevelBad, "several scheduled backups were missed"
		}
		out = append(out, f)
	}
	return out
}

func (d *Daemon) configuredSource(src string) bool {
	return slices.Contains(d.configuredSources(), src)
}

func (d *Daemon) configuredSources() []string {
	var out []string
	if d.cfg.Postgres.DSN != "" {
		out = append(out, config.SourcePostgres)
	}
	if len(d.cfg.ClickHouse.Addresses) > 0 {
		out = append(out, config.SourceClickHouse)
	}
	if len(d.cfg.ZooKeeper.Servers) > 0 {
		out = append(out, config.SourceZooKeeper)
	}
	return out
}

// backupInterval is the shortest interval of the jobs that back src up; 0 if none does.
func (d *Daemon) backupInterval(src string, now time.Time) time.Duration {
	var best time.Duration
	for _, j := range d.jobs {
		covers := j.Action == config.ActionBackup && (len(j.Only) == 0 || slices.Contains(j.Only, src)) ||
			j.Action == config.ActionZKRecord && src == config.SourceZooKeeper
		if !covers {
			continue
		}
		next := j.Next(now)
		if iv := j.Next(next).Sub(next); best == 0 || iv < best {
			best = iv
		}
	}
	return best
}

func usage(snaps []store.Manifest, now time.Time) RepositoryUsage {
	u := RepositoryUsage{Snapshots: len(snaps)}
	for _, m := range snaps {
		age := now.Sub(m.Start)
		nb := m.Totals().NewBytes
		if age <= 24*time.Hour {
			u.NewBytes24h += nb
		}
		if age <= 7*24*time.Hour {
			u.NewBytes7d += nb
		}
	}
	return u
}
