package jobs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/progress"
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
	// Progress is how far the running run has come: bytes and rows done and expected, rate,
	// ETA and the current table and partition.
	Progress *progress.State `json:"progress,omitempty"`
	LastRun  *Run            `json:"last_run,omitempty"`
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
	// DamagedManifests are the catalog's manifests that cannot be read or fail validation: every
	// other snapshot stays usable, but each of these is a problem.
	DamagedManifests []store.DamagedManifest `json:"damaged_manifests,omitempty"`
	// LastDrill is the newest finished restore drill (job or `tracevault drill`): the page's
	// "last proven restore" panel.
	LastDrill *Run `json:"last_drill,omitempty"`
	// Problems is what needs an operator, each with its fix (see StatusProblems).
	Problems []Problem `json:"problems"`
}

// Problem is something an operator must act on, and what to do about it.
type Problem struct {
	What string `json:"what"`
	Fix  string `json:"fix"`
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
			s.RunsError = store.ErrorText(err.Error())
		}
		s.Runs = runs
		if last := LastDrill(runs); last != nil {
			copied := *last
			s.LastDrill = &copied
		}
		// The page and /metrics read one history: what the page shows proven, the metric says.
		if proven := LastProvenDrill(runs); proven != nil && d.metrics != nil {
			d.metrics.observeDrill(*proven)
		}
		cat, err := d.repo.Catalog(ctx)
		if err != nil {
			s.SnapshotsError = store.ErrorText(err.Error())
		}
		snaps := cat.Snapshots
		s.DamagedManifests = cat.Damaged
		s.Freshness = d.freshness(snaps, now)
		s.Repository = usage(snaps, now)
		s.Repository.Bytes = d.metrics.storedBytes.Load()
		for i := len(snaps) - 1; i >= 0 && len(s.Snapshots) < shownRows; i-- {
			sum := Summarize(&snaps[i], d.configuredSources())
			sum.Error = store.ErrorText(sum.Error) // the page may be public
			s.Snapshots = append(s.Snapshots, sum)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range d.jobs {
		js := JobStatus{Name: j.Name, Action: j.Action, Schedule: j.Schedule, Only: j.Only, NextRun: j.Next(now).UTC()}
		_, js.Running = d.running[j.Name]
		if tr, ok := d.progress[j.Name]; ok {
			st := tr.State()
			js.Progress = &st
		}
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
	pitrProblems := d.pitrStatus(&s)
	s.Problems = append(StatusProblems(s), pitrProblems...)
	return s, nil
}

// StatusProblems lists what in s needs an operator, worst first, each with its fix: the page's
// top and the API must never look healthy while a job's last run failed, a source is past its
// schedule, the newest snapshot is partial or a manifest is damaged.
func StatusProblems(s Status) []Problem {
	var out []Problem
	add := func(fix, format string, args ...any) {
		out = append(out, Problem{What: fmt.Sprintf(format, args...), Fix: fix})
	}
	// A failed drill comes first: the newest backup is not proven restorable.
	if r := s.LastDrill; r != nil && r.Outcome != OutcomeSucceeded {
		add("fix the cause, then prove the restore again: tracevault drill (a damaged object: tracevault verify --read-data, then take a new snapshot)",
			"restore drill %s of snapshot %s %s at %s: %s", r.ID, r.Snapshot, r.Outcome, r.Start.UTC().Format("2006-01-02 15:04 UTC"), r.Error)
	}
	if s.SnapshotsError != "" {
		add("check the repository ([storage] url and credentials) and the daemon's log", "snapshot catalog unreadable: %s", s.SnapshotsError)
	}
	for _, dm := range s.DamagedManifests {
		add(dm.Fix()+"; every other snapshot stays usable", "damaged manifest %s: %s", dm.Name, store.ErrorText(dm.Error))
	}
	for _, f := range s.Freshness {
		switch {
		case f.Level == LevelOK:
		case f.IntervalSeconds == 0 && f.Snapshot != "":
			add("add a [[jobs]] backup that covers "+f.Source+", or run tracevault backup --only "+f.Source+" yourself", "%s: %s", f.Source, f.Reason)
		case f.Snapshot == "":
			add("tracevault backup --only "+f.Source+" (then check why no scheduled backup of it completed: each job's last run)", "%s: %s", f.Source, f.Reason)
		default:
			add("tracevault backup --only "+f.Source+", then check why the scheduled backup did not complete (the job's last run, the daemon's log)",
				"%s: newest complete snapshot %s is %s old, past 1.5 × its %s schedule: %s", f.Source, f.Snapshot, roughAge(f.AgeSeconds), roughAge(f.IntervalSeconds), f.Reason)
		}
	}
	if len(s.Snapshots) > 0 && s.Snapshots[0].Status != store.StatusComplete {
		n := s.Snapshots[0]
		add("fix the cause, then take a new snapshot: tracevault backup; restoring from this one needs --allow-partial and restores only what it holds",
			"newest snapshot %s is %s: %s", n.ID, n.Status, n.Error)
	}
	if i := slices.IndexFunc(s.Snapshots, func(n SnapshotSummary) bool { return n.Status == store.StatusComplete && n.BlobCheck != nil }); i >= 0 {
		n, c := s.Snapshots[i], s.Snapshots[i].BlobCheck
		switch {
		case c.Missing > 0:
			add("find why they are gone (a lifecycle or retention rule on the container, a deleted prefix); an older snapshot may hold them: tracevault show ID lists its check, tracevault restore ID --only blobs brings them back",
				"newest blob snapshot %s: %s names %d files the container does not hold (e.g. %s); their rows restore without their file", n.ID, c.Table, c.Missing, strings.Join(c.MissingExamples, ", "))
		case c.Error != "":
			add("check that a [clickhouse] server answers and can read blob_storage_file_log; the next backup checks again",
				"newest blob snapshot %s: the blob container could not be checked against the file log: %s", n.ID, store.ErrorText(c.Error))
		}
	}
	for _, j := range s.Jobs {
		if j.LastRun == nil || (j.LastRun.Outcome != OutcomeFailed && j.LastRun.Outcome != OutcomeInterrupted) {
			continue
		}
		if s.LastDrill != nil && j.LastRun.ID == s.LastDrill.ID {
			continue // said first, as the failed drill
		}
		r := j.LastRun
		add("fix the cause, then run the job again: "+jobCommand(j)+" (or 'run now' on this page)",
			"job %s: last run %s %s at %s: %s", j.Name, r.ID, r.Outcome, r.Start.UTC().Format("2006-01-02 15:04 UTC"), r.Error)
	}
	if s.RunsError != "" {
		add("check the repository ([storage]) and the daemon's log", "run history unreadable: %s", s.RunsError)
	}
	return out
}

// jobCommand is the command line that does by hand what job j does.
func jobCommand(j JobStatus) string {
	switch j.Action {
	case config.ActionBackup:
		if len(j.Only) > 0 {
			return "tracevault backup --only " + strings.Join(j.Only, ",")
		}
		return "tracevault backup"
	case config.ActionZKRecord:
		return "tracevault backup --only " + config.SourceZooKeeper
	}
	return "tracevault " + j.Action
}

func roughAge(seconds float64) string {
	return time.Duration(seconds * float64(time.Second)).Round(time.Minute).String()
}

// freshness judges each configured source: fresh within 1.5 intervals of its most frequent
// backup job (room for jitter and the run itself), stale past 3, and bad with no snapshot at all.
func (d *Daemon) freshness(snaps []store.Manifest, now time.Time) []Freshness {
	var out []Freshness
	for _, src := range d.configuredSources() {
		f := Freshness{Source: src, IntervalSeconds: d.backupInterval(src, now).Seconds()}
		for i := len(snaps) - 1; i >= 0; i-- {
			// Only a set holding src whole counts: one narrowed by --tables or a migration's
			// snapshot of one database is not a backup of src.
			if snaps[i].Status == store.StatusComplete && snaps[i].HoldsWhole(src) {
				f.Snapshot, f.Time = snaps[i].ID, snaps[i].End
				f.AgeSeconds = now.Sub(snaps[i].End).Seconds()
				break
			}
		}
		switch {
		case f.Snapshot == "":
			f.Level, f.Reason = LevelBad, "no complete snapshot holds "+src+" whole"
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

func (d *Daemon) configuredSources() []string { return ConfiguredSources(d.cfg) }

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
