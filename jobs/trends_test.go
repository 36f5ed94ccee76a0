package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
)

func TestSnapshotTrendOf(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	obj := func(src string, size int64, reused bool) store.ManifestObject {
		return store.ManifestObject{ObjectRef: store.ObjectRef{Size: size}, Source: src, Reused: reused}
	}
	comp := func(src, status string, took time.Duration) store.Component {
		return store.Component{Source: src, Start: t0, End: t0.Add(took), Status: status}
	}
	for _, tc := range []struct {
		name string
		m    store.Manifest
		want map[string]SourceTrend
	}{
		{
			name: "new bytes per source leave reused objects out; the source's own cut is its recovery point",
			m: store.Manifest{ID: "a", Start: t0, End: t0.Add(time.Minute), Status: store.StatusComplete,
				Components: []store.Component{comp("clickhouse", store.StatusComplete, 50*time.Second), comp("postgres", store.StatusComplete, 20*time.Second)},
				Cut:        &store.Cut{Time: t0.Add(time.Second), Sources: []store.SourceCut{{Source: "postgres", Time: t0.Add(2 * time.Second)}}},
				Objects:    []store.ManifestObject{obj("clickhouse", 100, false), obj("clickhouse", 1000, true), obj("postgres", 7, false)}},
			want: map[string]SourceTrend{
				"clickhouse": {Source: "clickhouse", Seconds: 50, NewBytes: 100, Whole: true, RecoveryPoint: t0.Add(time.Second)},
				"postgres":   {Source: "postgres", Seconds: 20, NewBytes: 7, Whole: true, RecoveryPoint: t0.Add(2 * time.Second)},
			},
		},
		{
			name: "a partial set moves no recovery point; without a cut the component's start stands for it",
			m: store.Manifest{ID: "b", Start: t0, End: t0.Add(time.Minute), Status: store.StatusPartial,
				Components: []store.Component{comp("zookeeper", store.StatusComplete, time.Second), {Source: "clickhouse", Start: t0, Status: store.StatusPartial}}},
			want: map[string]SourceTrend{
				"zookeeper":  {Source: "zookeeper", Seconds: 1, RecoveryPoint: t0},
				"clickhouse": {Source: "clickhouse", RecoveryPoint: t0},
			},
		},
		{
			name: "a set narrowed by --tables is no backup of the source it narrowed",
			m: store.Manifest{ID: "c", Start: t0, End: t0.Add(time.Minute), Status: store.StatusComplete,
				Scope:      &store.Scope{Sources: []string{"clickhouse", "postgres"}, Narrowed: []string{"clickhouse"}},
				Components: []store.Component{comp("clickhouse", store.StatusComplete, time.Second), comp("postgres", store.StatusComplete, time.Second)}},
			want: map[string]SourceTrend{
				"clickhouse": {Source: "clickhouse", Seconds: 1, RecoveryPoint: t0},
				"postgres":   {Source: "postgres", Seconds: 1, Whole: true, RecoveryPoint: t0},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SnapshotTrendOf(&tc.m)
			if len(got.Sources) != len(tc.want) {
				t.Fatalf("sources %+v", got.Sources)
			}
			for _, s := range got.Sources {
				if s != tc.want[s.Source] {
					t.Errorf("%s: %+v\nwant %+v", s.Source, s, tc.want[s.Source])
				}
			}
		})
	}
}

func TestFinishedDrills(t *testing.T) {
	runs := []Run{ // newest first, as the history returns them
		{ID: "d3", Action: config.ActionDrill, Outcome: OutcomeRunning},
		{ID: "b2", Action: config.ActionBackup, Outcome: OutcomeSucceeded},
		{ID: "d2", Action: config.ActionDrill, Outcome: OutcomeFailed},
		{ID: "d1", Action: config.ActionDrill, Outcome: OutcomeSkipped},
		{ID: "d0", Action: config.ActionDrill, Outcome: OutcomeSucceeded},
	}
	got := FinishedDrills(runs)
	if len(got) != 2 || got[0].ID != "d0" || got[1].ID != "d2" {
		t.Errorf("drills %+v, want d0 then d2", got)
	}
}

// TestTrendsReadsCatalogAndHistory reads what the page's pictures draw from a real (directory)
// repository: every committed snapshot, oldest first, and the finished drills of the history.
func TestTrendsReadsCatalogAndHistory(t *testing.T) {
	ctx := context.Background()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.ZooKeeper.Servers = []string{"127.0.0.1:2181"} // configured, never dialled
	d := &Daemon{cfg: &cfg, repo: repo, history: &History{Repo: repo, Limit: 10}}
	var ids []string
	for range 2 {
		m := store.NewManifest(nil)
		m.Status = store.StatusComplete
		m.Components = []store.Component{{Source: config.SourceZooKeeper, Start: m.Start, End: m.Start.Add(time.Second), Status: store.StatusComplete}}
		if err := repo.CommitManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
		time.Sleep(2 * time.Millisecond) // ids sort by the millisecond
	}
	now := time.Now().UTC()
	for i, r := range []Run{
		{ID: newRunID(), Job: "drill", Action: config.ActionDrill, Start: now.Add(-time.Hour), Outcome: OutcomeSucceeded, RTOSeconds: 12, RPOSeconds: 60},
		{ID: newRunID(), Job: "backup", Action: config.ActionBackup, Start: now.Add(-time.Minute), Outcome: OutcomeSucceeded},
	} {
		if err := d.history.Record(ctx, r); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	tr, err := d.Trends(ctx)
	if err != nil || tr.RunsError != "" || tr.SnapshotsError != "" {
		t.Fatalf("trends: %v %q %q", err, tr.RunsError, tr.SnapshotsError)
	}
	if len(tr.Snapshots) != 2 || tr.Snapshots[0].ID != ids[0] || tr.Snapshots[1].ID != ids[1] {
		t.Errorf("snapshots %+v, want %v oldest first", tr.Snapshots, ids)
	}
	if s := tr.Snapshots[0].Sources; len(s) != 1 || !s[0].Whole || s[0].Seconds != 1 {
		t.Errorf("sources %+v", s)
	}
	if len(tr.Drills) != 1 || tr.Drills[0].RTOSeconds != 12 {
		t.Errorf("drills %+v", tr.Drills)
	}
	if len(tr.Sources) != 1 || tr.Sources[0] != config.SourceZooKeeper {
		t.Errorf("configured sources %v, want zookeeper", tr.Sources)
	}
}
