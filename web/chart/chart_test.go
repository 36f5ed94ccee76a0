package chart

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chart  Chart
		bars   int // <rect class="bar"
		points int // <circle class="point"
		paths  int // <path class="line"
		hits   int // <circle class="point hit": a point that only answers the pointer
		want   []string
		not    []string
	}{
		{
			name:  "no series says so instead of drawing",
			chart: Chart{ID: "c", Title: "new bytes", Kind: StackedBars, Unit: Bytes, Empty: "no snapshot in 7 days"},
			want:  []string{"no snapshot in 7 days"}, not: []string{"<svg"},
		},
		{
			name:  "series without points is empty too",
			chart: Chart{Title: "t", Kind: Lines, Series: []Series{{Name: "clickhouse"}}},
			want:  []string{"no data yet"}, not: []string{"<svg"},
		},
		{
			name: "stacked bars: one per point, titled with time, series and value",
			chart: Chart{Title: "new bytes", Kind: StackedBars, Unit: Bytes, Series: []Series{
				{Name: "clickhouse", Points: []Point{{X: at(0), Y: 3 << 30}, {X: at(60), Y: 1 << 20, Note: "20261206T130000Z-abc"}}},
				{Name: "postgres", Points: []Point{{X: at(0), Y: 512 << 10}, {X: at(60), Y: 0}}}}},
			bars: 4,
			want: []string{"2026-12-06 12:00 UTC · clickhouse: 3 GiB", "postgres: 512 KiB", "(20261206T130000Z-abc)",
				`class="s1"`, `class="s2"`, "total 3 GiB · max 3 GiB", "GiB</text>"},
		},
		{
			name:  "one point: a range around it, no division by zero",
			chart: Chart{Title: "size", Kind: Lines, Unit: Bytes, Series: []Series{{Name: "repository", Points: []Point{{X: at(0), Y: 0}}}}},
			paths: 1, points: 1, want: []string{"repository: 0 B", "last 0 B · max 0 B"},
		},
		{
			name:  "one bar",
			chart: Chart{Title: "duration", Kind: StackedBars, Unit: Seconds, Series: []Series{{Name: "zookeeper", Points: []Point{{X: at(0), Y: 0.4}}}}},
			bars:  1, want: []string{"zookeeper: 0.4 s"},
		},
		{
			name: "sawtooth: a vertical step is two points at one time, a gap lifts the pen",
			chart: Chart{Title: "age", Kind: Lines, Unit: Seconds, From: at(0), To: at(120), Series: []Series{{Name: "postgres", Points: []Point{
				{X: at(0), Y: 600}, {X: at(30), Y: 2400}, {X: at(30), Y: 60}, {X: at(90), Y: 3660, Gap: true}, {X: at(120), Y: 5460}}}}},
			paths: 1, points: 5, want: []string{"postgres: 40 min", "postgres: 60 s", "M", "last 91 min · max 91 min"},
		},
		{
			name: "dots: points unjoined, each marked however many",
			chart: Chart{Title: "duration", Kind: Lines, Unit: Seconds, Series: []Series{{Name: "zookeeper", Dots: true, Points: func() (ps []Point) {
				for i := range 50 {
					ps = append(ps, Point{X: at(i), Y: float64(i)})
				}
				return ps
			}()}}},
			points: 50, want: []string{"zookeeper: 49 s"}, not: []string{"hit"},
		},
		{
			name: "many points: every one on the line, marks thinned to maxMarks with the last kept",
			chart: Chart{Title: "size", Kind: Lines, Unit: Bytes, Series: []Series{{Name: "repository", Points: func() (ps []Point) {
				for i := range 1000 {
					ps = append(ps, Point{X: at(i), Y: float64(i)})
				}
				return ps
			}()}}},
			paths: 1, hits: 1000/9 + 1, want: []string{"repository: 990 B", "repository: 999 B"}, not: []string{"repository: 991 B"},
		},
		{
			name: "coinciding series: the earlier drawn wider",
			chart: Chart{Title: "age", Kind: Lines, Unit: Seconds, Coincide: true, Series: []Series{
				{Name: "a", Points: []Point{{X: at(0), Y: 1}, {X: at(1), Y: 2}}}, {Name: "b", Points: []Point{{X: at(0), Y: 1}, {X: at(1), Y: 2}}}}},
			paths: 2, points: 4, want: []string{`stroke-width="3.5"`, `stroke-width="1.5"`},
		},
		{
			name: "NaN, Inf, negative and out-of-range values never reach the drawing",
			chart: Chart{Title: "rto", Kind: Lines, Unit: Seconds, From: at(0), To: at(60), Series: []Series{{Name: "RTO", Points: []Point{
				{X: at(10), Y: nan()}, {X: at(20), Y: inf()}, {X: at(30), Y: -5}, {X: at(-30), Y: 9}, {X: at(40), Y: 90, Bad: true, Note: "failed"}}}}},
			paths: 1, points: 1, want: []string{"RTO: 0 s", `<circle class="point bad"`, "RTO: 90 s (failed)"},
		},
		{
			name: "labels are escaped",
			chart: Chart{ID: `x"y`, Title: "<b>t</b>", Note: "a & b", Kind: StackedBars, Series: []Series{
				{Name: `<script>alert(1)</script>`, Points: []Point{{X: at(0), Y: 1, Note: `"quoted"`}}}}},
			bars: 1,
			want: []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;b&gt;t&lt;/b&gt;", "a &amp; b", "&#34;quoted&#34;", `id="x&#34;y"`},
			not:  []string{"<script>", "<b>t</b>"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(Render(tc.chart))
			for _, c := range []struct {
				what string
				n    int
			}{{`<rect class="bar"`, tc.bars}, {`<circle class="point"`, tc.points}, {`<path class="line"`, tc.paths}, {`<circle class="point hit"`, tc.hits}} {
				if n := strings.Count(got, c.what); n != c.n {
					t.Errorf("%d × %s, want %d", n, c.what, c.n)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q", w)
				}
			}
			for _, w := range append(tc.not, "NaN", "Inf") {
				if strings.Contains(got, w) {
					t.Errorf("has %q", w)
				}
			}
			wellFormed(t, got)
			if t.Failed() {
				t.Log(got)
			}
		})
	}
}

// wellFormed parses the figure as XML: an unescaped label or an unclosed element fails here.
func wellFormed(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
	}
}

func TestFormatAndScale(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		u    Unit
		want string
	}{
		{0, Bytes, "0 B"}, {1536, Bytes, "1.5 KiB"}, {5 << 30, Bytes, "5 GiB"}, {300 << 20, Bytes, "300 MiB"},
		{0.25, Seconds, "0.2 s"}, {90, Seconds, "90 s"}, {1800, Seconds, "30 min"}, {5400, Seconds, "90 min"}, {4 * 3600, Seconds, "4 h"}, {3 * 86400, Seconds, "3 d"},
		{7, Count, "7"}, {nan(), Bytes, "—"},
	} {
		if got := Format(tc.v, tc.u); got != tc.want {
			t.Errorf("Format(%g, %d) = %q, want %q", tc.v, tc.u, got, tc.want)
		}
	}
	for _, tc := range []struct {
		max       float64
		u         Unit
		top, step float64
	}{
		{0, Bytes, 1, 1}, {3, Count, 3, 1}, {900, Count, 1000, 200}, {3 << 30, Bytes, 3 << 30, 1 << 30}, {2500, Seconds, 50 * 60, 10 * 60}, {1, Seconds, 1, 0.2},
	} {
		top, step, _ := niceScale(tc.max, tc.u)
		if top != tc.top || step != tc.step {
			t.Errorf("niceScale(%g) = %g, %g; want %g, %g", tc.max, top, step, tc.top, tc.step)
		}
	}
}

func nan() float64 { var z float64; return z / z }
func inf() float64 { var z float64; return 1 / z }
