package web

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse/replica"
)

var trendNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) time.Time { return trendNow.Add(-d) }

// snap is a snapshot of the sources that started at start, took took, and stands for its start.
func snap(id string, start time.Time, took time.Duration, whole bool, sources ...string) jobs.SnapshotTrend {
	s := jobs.SnapshotTrend{ID: id, Start: start, End: start.Add(took), Status: "complete", Bytes: 10 << 30, NewBytes: 1 << 30}
	if !whole {
		s.Status = "partial"
	}
	for _, src := range sources {
		s.Sources = append(s.Sources, jobs.SourceTrend{Source: src, Seconds: took.Seconds(), NewBytes: 1 << 29, Whole: whole, RecoveryPoint: start})
	}
	return s
}

func TestRecoveryAge(t *testing.T) {
	from, to := ago(24*time.Hour), trendNow
	type pt struct {
		at  time.Duration // before now
		age time.Duration
	}
	for _, tc := range []struct {
		name  string
		snaps []jobs.SnapshotTrend
		want  []pt
	}{
		{name: "no snapshot: no line"},
		{
			name:  "one snapshot before the window: a line rising with the clock",
			snaps: []jobs.SnapshotTrend{snap("a", ago(30*time.Hour), 10*time.Minute, true, "postgres")},
			want:  []pt{{24 * time.Hour, 6 * time.Hour}, {0, 30 * time.Hour}},
		},
		{
			name: "a snapshot in the window drops the age to its cut's age at completion",
			snaps: []jobs.SnapshotTrend{snap("a", ago(30*time.Hour), 10*time.Minute, true, "postgres"),
				snap("b", ago(2*time.Hour), 10*time.Minute, true, "postgres")},
			want: []pt{{24 * time.Hour, 6 * time.Hour}, {110 * time.Minute, 28*time.Hour + 10*time.Minute}, {110 * time.Minute, 10 * time.Minute}, {0, 2 * time.Hour}},
		},
		{
			name: "a partial snapshot moves nothing; the first in the window starts the line",
			snaps: []jobs.SnapshotTrend{snap("p", ago(5*time.Hour), time.Minute, false, "postgres"),
				snap("b", ago(2*time.Hour), 10*time.Minute, true, "postgres")},
			want: []pt{{110 * time.Minute, 10 * time.Minute}, {0, 2 * time.Hour}},
		},
		{
			name: "a snapshot still running at the end of the window is not there yet",
			snaps: []jobs.SnapshotTrend{snap("a", ago(3*time.Hour), time.Minute, true, "postgres"),
				snap("r", ago(time.Minute), time.Hour, true, "postgres")},
			want: []pt{{179 * time.Minute, time.Minute}, {0, 3 * time.Hour}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := recoveryAge([]string{"postgres"}, tc.snaps, from, to)
			if len(got) != 1 || got[0].Name != "postgres" {
				t.Fatalf("series %+v", got)
			}
			var have []pt
			for _, p := range got[0].Points {
				have = append(have, pt{trendNow.Sub(p.X), time.Duration(p.Y * float64(time.Second))})
			}
			if fmt.Sprint(have) != fmt.Sprint(tc.want) {
				t.Errorf("points %v\nwant   %v", have, tc.want)
			}
		})
	}
}

// recordedTrends is a week of history as a daemon records it: a backup every 6 hours of four
// sources (ClickHouse growing), one failed and a daily drill.
func recordedTrends() jobs.Trends {
	sources := []string{"postgres", "clickhouse", "zookeeper", "blobs"}
	t := jobs.Trends{Now: trendNow, Sources: sources}
	for i := 7 * 4; i >= 0; i-- {
		start := trendNow.Add(-time.Duration(i)*6*time.Hour - 25*time.Minute)
		s := jobs.SnapshotTrend{ID: start.Format("20060102T150405Z") + "-abc", Start: start, End: start.Add(12 * time.Minute), Status: "complete"}
		for j, src := range sources {
			grow := int64(28-i+1) * (int64(j+1) << 24)
			sec := float64(30*(j+1)) + float64((i*37)%60)
			whole := !(i == 9 && src == "clickhouse")
			s.Sources = append(s.Sources, jobs.SourceTrend{Source: src, Seconds: sec, NewBytes: grow, Whole: whole, RecoveryPoint: start.Add(time.Second)})
			s.NewBytes += grow
		}
		if i == 9 {
			s.Status = "partial"
		}
		s.Bytes = int64(40-i) << 30
		t.Snapshots = append(t.Snapshots, s)
		if i%4 == 0 {
			outcome := jobs.OutcomeSucceeded
			if i == 16 {
				outcome = jobs.OutcomeFailed
			}
			t.Drills = append(t.Drills, jobs.Run{ID: fmt.Sprintf("drill%d", i), Action: "drill", Start: start.Add(time.Hour), Outcome: outcome,
				Snapshot: s.ID, RTOSeconds: 300 + float64(i*7), RPOSeconds: 3600 + float64(i*60)})
		}
	}
	// An hourly ZooKeeper record over the last day: that source's recovery point is younger.
	for h := 23; h >= 0; h-- {
		start := trendNow.Add(-time.Duration(h)*time.Hour - 55*time.Minute)
		t.Snapshots = append(t.Snapshots, jobs.SnapshotTrend{ID: start.Format("20060102T150405Z") + "-zk", Start: start, End: start.Add(3 * time.Second),
			Status: "complete", Bytes: 2 << 20, NewBytes: 2 << 20, Sources: []jobs.SourceTrend{{Source: "zookeeper", Seconds: 3, NewBytes: 2 << 20, Whole: true, RecoveryPoint: start}}})
	}
	slices.SortFunc(t.Snapshots, func(a, b jobs.SnapshotTrend) int { return a.Start.Compare(b.Start) })
	return t
}

type trendingSource struct {
	*fakeSource
	trends jobs.Trends
}

func (s trendingSource) Trends(context.Context) (jobs.Trends, error) { return s.trends, nil }

func TestChartsOnThePage(t *testing.T) {
	src := trendingSource{sampleSource(), recordedTrends()}
	_, body := get(t, New(Options{Version: "test"}, src), "/")
	for _, want := range []string{`id="charts"`, `id="chart-new-bytes"`, `id="chart-duration"`, `id="chart-recovery-age"`, `id="chart-repository"`,
		`id="chart-drills"`, "clickhouse: ", "RTO", "(failed, snapshot "} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Every run of the week, 4 sources each (the oldest of the 29 is 25 min past the week), and
	// 24 ZooKeeper records.
	if n := strings.Count(body, `<rect class="bar"`); n != 28*4+24 {
		t.Errorf("%d bars, want %d", n, 28*4+24)
	}
	resp, api := get(t, New(Options{Version: "test"}, src), "/api/v1/trends")
	var tr jobs.Trends
	dec := json.NewDecoder(strings.NewReader(api))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tr); err != nil || resp.StatusCode != 200 || len(tr.Snapshots) != len(src.trends.Snapshots) || len(tr.Drills) != 8 {
		t.Errorf("GET /api/v1/trends: %d, %v, %d snapshots, %d drills", resp.StatusCode, err, len(tr.Snapshots), len(tr.Drills))
	}
	if resp, _ := get(t, New(Options{Version: "test"}, sampleSource()), "/api/v1/trends"); resp.StatusCode != 404 {
		t.Errorf("GET /api/v1/trends without a history: %d, want 404", resp.StatusCode)
	}
	// A frequent schedule: 7 days of 5-minute runs draw the newest 200, and say so.
	four := []string{"postgres", "clickhouse", "zookeeper", "blobs"}
	busy := trendingSource{sampleSource(), jobs.Trends{Now: trendNow, Sources: four}}
	for i := range 7 * 24 * 12 {
		busy.trends.Snapshots = append(busy.trends.Snapshots, snap(fmt.Sprint(i), ago(time.Duration(7*24*12-i)*5*time.Minute), time.Second, true, four...))
	}
	_, body = get(t, New(Options{Version: "test"}, busy), "/")
	if n := strings.Count(body, `<rect class="bar"`); n != 4*maxBars || !strings.Contains(body, "the newest 200 runs") {
		t.Errorf("5-minute runs: %d bars, want %d and a note", n, 4*maxBars)
	}
	if len(body) > 512<<10 {
		t.Errorf("5-minute runs: the page is %d KiB", len(body)>>10)
	}
	t.Logf("5-minute runs: the page is %d KiB", len(body)>>10)
	_, without := get(t, New(Options{Version: "test"}, sampleSource()), "/")
	if strings.Contains(without, "<svg") || strings.Contains(without, "Trends") {
		t.Error("a source without history still draws pictures")
	}
	empty := trendingSource{sampleSource(), jobs.Trends{Now: trendNow, Sources: []string{"postgres"}}}
	_, body = get(t, New(Options{Version: "test"}, empty), "/")
	for _, want := range []string{"no snapshot in the last 7 days", "no complete snapshot yet", "no restore drill yet"} {
		if !strings.Contains(body, want) {
			t.Errorf("empty history: page lacks %q", want)
		}
	}
}

func TestWorstVerdict(t *testing.T) {
	for _, tc := range []struct {
		verdicts []string
		want     string
	}{
		{nil, ""},
		{[]string{"ok", "ok"}, "ok"},
		{[]string{"ok", "syncing", "ok"}, "syncing"},
		{[]string{"lagging", "isolated", "down"}, "isolated"},
		{[]string{"", "ok"}, "ok"},
	} {
		var cells []replica.Cell
		for _, v := range tc.verdicts {
			cells = append(cells, replica.Cell{Verdict: v})
		}
		if got := worstVerdict(cells); got != tc.want {
			t.Errorf("worstVerdict(%v) = %q, want %q", tc.verdicts, got, tc.want)
		}
	}
}

// slowTrends answers after a delay, like a remote repository with many run records.
type slowTrends struct {
	*fakeSource
	delay time.Duration
}

func (s slowTrends) Trends(ctx context.Context) (jobs.Trends, error) {
	return wait(ctx, s.delay, recordedTrends(), nil)
}

// TestSlowHistoryNeverHoldsThePage: the page answers within the panel timeout while the history
// is read, says the pictures follow, and draws them once the read has finished.
func TestSlowHistoryNeverHoldsThePage(t *testing.T) {
	s := New(Options{Version: "test", PanelTimeout: 100 * time.Millisecond}, slowTrends{sampleSource(), 300 * time.Millisecond})
	start := time.Now()
	_, body := get(t, s, "/")
	if took := time.Since(start); took > time.Second {
		t.Errorf("the page took %s", took)
	}
	if !strings.Contains(body, `id="charts-pending"`) || strings.Contains(body, "<svg") || strings.Contains(body, "charts-error") {
		t.Errorf("while reading: want the note and no pictures")
	}
	time.Sleep(400 * time.Millisecond)
	if _, body = get(t, s, "/"); !strings.Contains(body, `id="chart-recovery-age"`) {
		t.Error("no pictures once the history was read")
	}
}
