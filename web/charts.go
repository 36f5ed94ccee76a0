package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/web/chart"
)

// TrendSource gives the history the page's pictures draw. It is optional: a source without it
// (a test's fake, an older embedding) gets a page without pictures.
type TrendSource interface {
	Trends(ctx context.Context) (jobs.Trends, error)
}

// The daemon draws its history: without this a change to its method would silently drop the
// pictures.
var _ TrendSource = (*jobs.Daemon)(nil)

// The pictures' windows.
const (
	runWindow = 7 * 24 * time.Hour // per-run new bytes and durations
	ageWindow = 24 * time.Hour     // the recovery point's age
	maxBars   = 200                // newest runs drawn when the window holds more
)

// Reading the history (the catalog and up to 200 run records) can take seconds on a remote
// repository, so it is read at most once a minute, with a generous timeout, and while a read is
// slow the page shows the previous pictures rather than none.
const (
	trendsTTL     = time.Minute
	trendsTimeout = 30 * time.Second
)

// errStillReading: the first read of the history outlasts the page's wait, and goes on.
var errStillReading = errors.New("still reading the catalog and the run history: the pictures follow on a later load")

// trendsCache wraps the trends panel with the last good result.
type trendsCache struct {
	panel *panel[jobs.Trends]
	mu    sync.Mutex
	last  *jobs.Trends
}

func newTrendsCache(src Source) *trendsCache {
	ts, ok := src.(TrendSource)
	if !ok {
		return nil
	}
	return &trendsCache{panel: newPanel(ts.Trends, trendsTimeout, trendsTTL)}
}

// get waits at most wait for the history; a read still running then goes on in the background
// and fills the cache for the next page.
func (c *trendsCache) get(ctx context.Context, wait time.Duration) (*jobs.Trends, error) {
	if c == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t, err := c.panel.get(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.last = &t
		return &t, nil
	}
	if ctx.Err() != nil {
		if c.last != nil {
			return c.last, nil
		}
		return nil, errStillReading
	}
	return nil, err
}

// chartsOf turns the history into the page's pictures.
func chartsOf(t jobs.Trends) []template.HTML {
	now := t.Now
	if now.IsZero() {
		now = time.Now().UTC()
	}
	sources := sourceOrder(t)
	var recent []jobs.SnapshotTrend
	for _, s := range t.Snapshots {
		if now.Sub(s.Start) <= runWindow {
			recent = append(recent, s)
		}
	}
	runsNote := "by source, last 7 days"
	if len(recent) > maxBars { // a frequent schedule: the newest runs, each still a bar
		recent = recent[len(recent)-maxBars:]
		runsNote = fmt.Sprintf("by source, the newest %d runs", maxBars)
	}
	newBytes, seconds := perSource(sources, recent)
	from := now.Add(-runWindow)
	if len(recent) > 0 && recent[0].Start.After(from) {
		from = recent[0].Start // a young repository: its own range, not a week of nothing
	}
	return []template.HTML{
		chart.Render(chart.Chart{ID: "chart-new-bytes", Title: "New bytes per run", Note: runsNote,
			Kind: chart.StackedBars, Unit: chart.Bytes, From: from, To: now, Series: newBytes, Empty: "no snapshot in the last 7 days"}),
		chart.Render(chart.Chart{ID: "chart-duration", Title: "Duration per run", Note: runsNote,
			Kind: chart.Lines, Unit: chart.Seconds, From: from, To: now, Series: seconds, Empty: "no snapshot in the last 7 days"}),
		chart.Render(chart.Chart{ID: "chart-recovery-age", Title: "Recovery point age", Note: "per source, last 24 h: now minus the cut of the newest complete snapshot",
			Kind: chart.Lines, Unit: chart.Seconds, From: now.Add(-ageWindow), To: now, Series: recoveryAge(sources, t.Snapshots, now.Add(-ageWindow), now),
			Empty: "no complete snapshot yet", Coincide: true}),
		chart.Render(chart.Chart{ID: "chart-repository", Title: "Repository size", Note: "what the kept snapshots uploaded, summed; and each snapshot's size",
			Kind: chart.Lines, Unit: chart.Bytes, Series: repositorySize(t.Snapshots), Empty: "no snapshot yet"}),
		chart.Render(chart.Chart{ID: "chart-drills", Title: "Restore drills", Note: "RTO (time to restore) and RPO (the restored snapshot's age) per drill",
			Kind: chart.Lines, Unit: chart.Seconds, Series: drillSeries(t.Drills), Empty: "no restore drill yet"}),
	}
}

// sourceOrder is the configured sources, then any other a snapshot holds: each source keeps
// its colour in every picture.
func sourceOrder(t jobs.Trends) []string {
	out := slices.Clone(t.Sources)
	for _, s := range t.Snapshots {
		for _, c := range s.Sources {
			if !slices.Contains(out, c.Source) {
				out = append(out, c.Source)
			}
		}
	}
	return out
}

func perSource(sources []string, snaps []jobs.SnapshotTrend) (newBytes, seconds []chart.Series) {
	for i, src := range sources {
		nb, sec := chart.Series{Name: src, Color: i + 1}, chart.Series{Name: src, Color: i + 1, Dots: true}
		for _, s := range snaps {
			for _, c := range s.Sources {
				if c.Source != src {
					continue
				}
				note := s.ID
				if s.Status != "complete" {
					note += ", " + s.Status
				}
				nb.Points = append(nb.Points, chart.Point{X: s.Start, Y: float64(c.NewBytes), Note: note})
				sec.Points = append(sec.Points, chart.Point{X: s.Start, Y: c.Seconds, Note: note})
			}
		}
		newBytes, seconds = append(newBytes, nb), append(seconds, sec)
	}
	return newBytes, seconds
}

// recoveryAge draws, per source, what a restore at each moment of [from, to] would lose: the time
// since the recovery point of the newest snapshot complete by then. It grows with the clock and
// drops when a snapshot holding the source whole completes: a sawtooth.
func recoveryAge(sources []string, snaps []jobs.SnapshotTrend, from, to time.Time) []chart.Series {
	type completion struct {
		at, point time.Time
		id        string
	}
	var out []chart.Series
	for i, src := range sources {
		var done []completion
		for _, s := range snaps {
			for _, c := range s.Sources {
				if c.Source == src && c.Whole && !s.End.IsZero() {
					done = append(done, completion{s.End, c.RecoveryPoint, s.ID})
				}
			}
		}
		slices.SortFunc(done, func(a, b completion) int { return a.at.Compare(b.at) })
		ser := chart.Series{Name: src, Color: i + 1}
		var rp time.Time // the recovery point so far; zero: none yet
		age := func(t time.Time, note string) {
			ser.Points = append(ser.Points, chart.Point{X: t, Y: t.Sub(rp).Seconds(), Note: note})
		}
		for _, d := range done {
			if d.at.After(from) {
				break
			}
			if d.point.After(rp) {
				rp = d.point
			}
		}
		if !rp.IsZero() {
			age(from, "")
		}
		for _, d := range done {
			if !d.at.After(from) || d.at.After(to) {
				continue
			}
			if !rp.IsZero() {
				age(d.at, "")
			}
			if d.point.After(rp) {
				rp = d.point
			}
			age(d.at, d.id+" completed")
		}
		if !rp.IsZero() {
			age(to, "now")
		}
		out = append(out, ser)
	}
	return out
}

// repositorySize sums what each kept snapshot uploaded, in order: the repository's growth (what
// pruning freed is gone with the snapshots that uploaded it), beside each snapshot's own size.
func repositorySize(snaps []jobs.SnapshotTrend) []chart.Series {
	stored := chart.Series{Name: "stored, summed", Color: 1}
	each := chart.Series{Name: "one snapshot", Color: 4, Dots: true}
	var sum int64
	for _, s := range snaps {
		sum += s.NewBytes
		stored.Points = append(stored.Points, chart.Point{X: s.Start, Y: float64(sum), Note: s.ID})
		each.Points = append(each.Points, chart.Point{X: s.Start, Y: float64(s.Bytes), Note: s.ID})
	}
	return []chart.Series{stored, each}
}

func drillSeries(drills []jobs.Run) []chart.Series {
	rto := chart.Series{Name: "RTO", Color: 5}
	rpo := chart.Series{Name: "RPO", Color: 6}
	for _, d := range drills {
		note := d.Outcome
		if d.Snapshot != "" {
			note += ", snapshot " + d.Snapshot
		}
		if d.Outcome != jobs.OutcomeSucceeded && d.RTOSeconds == 0 {
			continue // a drill that restored nothing measured nothing
		}
		bad := d.Outcome != jobs.OutcomeSucceeded
		rto.Points = append(rto.Points, chart.Point{X: d.Start, Y: d.RTOSeconds, Note: note, Bad: bad})
		rpo.Points = append(rpo.Points, chart.Point{X: d.Start, Y: d.RPOSeconds, Note: note, Bad: bad})
	}
	return []chart.Series{rto, rpo}
}

// chartsPanel is the pictures' part of the index page.
type chartsPanel struct {
	Enabled bool // the source keeps a history to draw
	Charts  []template.HTML
	Err     string
	Pending string // the history is being read: not an error
}

// indexWithCharts is the index page with its pictures.
type indexWithCharts struct {
	indexPage
	Charts chartsPanel
}

func (s *Server) charts(ctx context.Context) chartsPanel {
	if s.trends == nil {
		return chartsPanel{}
	}
	t, err := s.trends.get(ctx, s.opts.PanelTimeout)
	if errors.Is(err, errStillReading) {
		return chartsPanel{Enabled: true, Pending: err.Error()}
	}
	if err != nil {
		return chartsPanel{Enabled: true, Err: errText(err)}
	}
	p := chartsPanel{Enabled: true, Charts: chartsOf(*t)}
	if t.SnapshotsError != "" {
		p.Err = "catalog unavailable: " + t.SnapshotsError
	} else if t.RunsError != "" {
		p.Err = "run history unavailable: " + t.RunsError
	}
	return p
}

// apiTrends serves what the pictures are drawn from.
func (s *Server) apiTrends(w http.ResponseWriter, r *http.Request) {
	if s.trends == nil {
		writeJSON(w, http.StatusNotFound, apiError{"this server keeps no history to draw"})
		return
	}
	t, err := s.trends.get(r.Context(), s.opts.PanelTimeout)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{errText(err)})
		return
	}
	writeJSON(w, http.StatusOK, t)
}
