package jobs

import (
	"context"
	"slices"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Trends is the history the status page draws: every snapshot of the catalog with each source's
// part of it, and the drills with what they measured. Nothing here is stored for the pictures:
// it is read from the catalog and the run history.
type Trends struct {
	Now time.Time `json:"now"`
	// Sources are the configured sources, in the order every picture lists them.
	Sources []string `json:"sources"`
	// Snapshots are the catalog's, oldest first.
	Snapshots []SnapshotTrend `json:"snapshots"`
	// Drills are the finished drills among the recent runs, oldest first.
	Drills []Run `json:"drills"`
	// RunsError and SnapshotsError say which half could not be read; the other is still drawn.
	RunsError      string `json:"runs_error,omitempty"`
	SnapshotsError string `json:"snapshots_error,omitempty"`
}

// SnapshotTrend is one snapshot as the pictures need it.
type SnapshotTrend struct {
	ID       string        `json:"id"`
	Start    time.Time     `json:"start"`
	End      time.Time     `json:"end"`
	Status   string        `json:"status"`
	Bytes    int64         `json:"bytes"`
	NewBytes int64         `json:"new_bytes"`
	Sources  []SourceTrend `json:"sources"`
}

// SourceTrend is one source's part of a snapshot.
type SourceTrend struct {
	Source   string  `json:"source"`
	Seconds  float64 `json:"seconds"`
	NewBytes int64   `json:"new_bytes"`
	// Whole is set when the snapshot is complete and holds the source whole: only then does it
	// move the source's recovery point (as the freshness cards judge it).
	Whole bool `json:"whole"`
	// RecoveryPoint is the moment the source's part stands for: its cut where the manifest
	// records one, else the component's start (no write after it is surely in).
	RecoveryPoint time.Time `json:"recovery_point"`
}

// trendRuns bounds the runs read for the drill picture: the history keeps up to historyLimit,
// and each is a read of the repository.
const trendRuns = 200

// Trends reads the catalog and the recent runs for the status page's pictures.
func (d *Daemon) Trends(ctx context.Context) (Trends, error) {
	t := Trends{Now: time.Now().UTC(), Sources: d.configuredSources()}
	if d.history == nil {
		return t, nil
	}
	runs, err := d.history.Recent(ctx, trendRuns)
	if err != nil {
		t.RunsError = store.ErrorText(err.Error())
	}
	t.Drills = FinishedDrills(runs)
	cat, err := d.repo.Catalog(ctx)
	if err != nil {
		t.SnapshotsError = store.ErrorText(err.Error())
	}
	for i := range cat.Snapshots {
		t.Snapshots = append(t.Snapshots, SnapshotTrendOf(&cat.Snapshots[i]))
	}
	return t, nil
}

// FinishedDrills picks the drills that ran to an outcome from runs (newest first, as the
// history returns them), oldest first.
func FinishedDrills(runs []Run) []Run {
	var out []Run
	for _, r := range slices.Backward(runs) {
		if r.Action == config.ActionDrill && r.Outcome != OutcomeRunning && r.Outcome != OutcomeSkipped {
			out = append(out, r)
		}
	}
	return out
}

// SnapshotTrendOf sums a manifest per source.
func SnapshotTrendOf(m *store.Manifest) SnapshotTrend {
	tot := m.Totals()
	s := SnapshotTrend{ID: m.ID, Start: m.Start, End: m.End, Status: m.Status, Bytes: tot.Bytes, NewBytes: tot.NewBytes}
	for _, c := range m.Components {
		st := SourceTrend{Source: c.Source, Whole: holdsWhole(m, c), RecoveryPoint: c.Start}
		if !c.End.IsZero() {
			st.Seconds = c.End.Sub(c.Start).Seconds()
		}
		if m.Cut != nil {
			st.RecoveryPoint = m.Cut.Time
			for _, sc := range m.Cut.Sources {
				if sc.Source == c.Source && !sc.Time.IsZero() {
					st.RecoveryPoint = sc.Time
				}
			}
		}
		for _, o := range m.Objects {
			if o.Source == c.Source && !o.Reused {
				st.NewBytes += o.Size
			}
		}
		s.Sources = append(s.Sources, st)
	}
	return s
}

// holdsWhole is the freshness cards' rule: a complete set that holds the source whole (one
// narrowed by --tables, or a migration's snapshot of one database, is no backup of it).
func holdsWhole(m *store.Manifest, c store.Component) bool {
	return m.Status == store.StatusComplete && m.HoldsWhole(c.Source)
}
