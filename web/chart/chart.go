// Package chart draws the status page's pictures as inline SVG on the server: no script, no
// external asset, colours from the page's CSS (currentColor and the --c1…--c6 custom properties,
// which the page sets for light and dark), and a viewBox that scales to any width. Every bar and
// point carries a <title> with its numbers, shown on hover, and the legend beside the picture
// says each series' last and largest value, so the numbers are readable without a pointer too.
package chart

import (
	"fmt"
	"html"
	"html/template"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Unit says how a value axis and its numbers are written.
type Unit int

// Units of a chart's values.
const (
	Count   Unit = iota
	Bytes        // written in B, KiB, MiB, GiB, TiB
	Seconds      // written in s, min, h, d
)

// Kind is how a chart draws its series.
type Kind int

// Kinds of chart.
const (
	// StackedBars draws one bar per x, its series stacked: the parts of one run.
	StackedBars Kind = iota
	// Lines joins each series' points; two points at the same x draw a vertical step, so a
	// sawtooth (an age that grows, then drops when a snapshot completes) is a line too.
	Lines
)

// Point is one value at one time. Gap lifts the pen before the point: the series has no value
// between the previous point and this one.
type Point struct {
	X   time.Time
	Y   float64
	Gap bool
	// Note is added to the point's hover title (a snapshot id, a drill's outcome).
	Note string
	// Bad marks a point that failed (a drill): drawn larger in the page's --bad colour.
	Bad bool
}

// Series is one named sequence of points, drawn in one colour.
type Series struct {
	Name   string
	Points []Point
	// Color picks --c1…--c6; zero takes the series' position, so every chart that lists the
	// sources in the same order gives each source the same colour.
	Color int
	// Dots draws a Lines series' points unjoined: runs of different jobs (an hourly ZooKeeper
	// record beside a daily set) are not a sequence.
	Dots bool
}

// Chart is one picture.
type Chart struct {
	ID    string // the figure's id, for links and tests
	Title string
	// Note is a line under the title: what the picture measures.
	Note string
	Kind Kind
	Unit Unit
	// From and To bound the time axis; zero takes the data's range.
	From, To time.Time
	Series   []Series
	// Empty is shown instead of the picture when no series has a point.
	Empty string
	// Coincide says the series often share their values (the sources of one set share its
	// cut): each earlier series is drawn wider than the next, so a shared line shows every
	// colour as a band.
	Coincide bool
}

// The drawing's coordinate system: the SVG scales it to the width of its box.
const (
	width    = 480.0
	height   = 190.0
	left     = 68.0 // room for the value labels, at the larger font of a phone too
	right    = 8.0
	top      = 10.0
	bottom   = 22.0 // room for the time labels
	fontSize = 12
	maxColor = 6
	maxMarks = 120 // marks per series: one per 4 units of the drawing's width
)

// Render draws c as an HTML figure: a caption, the SVG and a legend with each series' numbers.
// Every text from the caller is escaped.
func Render(c Chart) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<figure class="chart" id="%s"><figcaption><b>%s</b>`, esc(c.ID), esc(c.Title))
	if c.Note != "" {
		fmt.Fprintf(&b, ` <span class="muted">%s</span>`, esc(c.Note))
	}
	b.WriteString(`</figcaption>`)
	series := clean(c.Series)
	var from, to time.Time
	if len(series) > 0 {
		from, to = timeRange(c, series)
		series = within(series, from, to)
	}
	if len(series) == 0 {
		empty := c.Empty
		if empty == "" {
			empty = "no data yet"
		}
		fmt.Fprintf(&b, `<p class="muted chart-empty">%s</p></figure>`, esc(empty))
		return template.HTML(b.String())
	}
	maxY := maxValue(c.Kind, series)
	yTop, yStep, yDiv := niceScale(maxY, c.Unit)
	p := plot{from: from, to: to, yTop: yTop}

	fmt.Fprintf(&b, `<svg viewBox="0 0 %g %g" width="100%%" role="img" aria-label="%s" font-size="%d" fill="currentColor" preserveAspectRatio="xMidYMid meet">`,
		width, height, esc(c.Title), fontSize)
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.Title))
	drawYAxis(&b, p, yStep, yDiv, c.Unit)
	drawXAxis(&b, p)
	switch c.Kind {
	case StackedBars:
		drawBars(&b, p, series, c.Unit)
	default:
		drawLines(&b, p, series, c.Unit, c.Coincide)
	}
	b.WriteString(`</svg>`)
	drawLegend(&b, series, c.Unit, c.Kind)
	b.WriteString(`</figure>`)
	return template.HTML(b.String())
}

// clean drops what cannot be drawn (NaN, ±Inf, negative values) and series left without points,
// and fixes each series' colour.
func clean(in []Series) []Series {
	var out []Series
	for i, s := range in {
		c := s
		c.Points = nil
		if c.Color <= 0 {
			c.Color = i + 1
		}
		c.Color = (c.Color-1)%maxColor + 1
		for _, pt := range s.Points {
			if math.IsNaN(pt.Y) || math.IsInf(pt.Y, 0) || pt.X.IsZero() {
				continue
			}
			pt.Y = math.Max(pt.Y, 0)
			c.Points = append(c.Points, pt)
		}
		if len(c.Points) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// within keeps the points inside the time axis: a caller's fixed window cuts older points off.
func within(in []Series, from, to time.Time) []Series {
	out := make([]Series, 0, len(in))
	for _, s := range in {
		pts := s.Points
		s.Points = nil
		for _, pt := range pts {
			if !pt.X.Before(from) && !pt.X.After(to) {
				s.Points = append(s.Points, pt)
			}
		}
		if len(s.Points) > 0 {
			out = append(out, s)
		}
	}
	return out
}

func timeRange(c Chart, series []Series) (time.Time, time.Time) {
	from, to := c.From, c.To
	if from.IsZero() || to.IsZero() {
		var lo, hi time.Time
		for _, s := range series {
			for _, pt := range s.Points {
				if lo.IsZero() || pt.X.Before(lo) {
					lo = pt.X
				}
				if pt.X.After(hi) {
					hi = pt.X
				}
			}
		}
		if from.IsZero() {
			from = lo
		}
		if to.IsZero() {
			to = hi
		}
	}
	// One point, or bars at the very edges: room on both sides so nothing is drawn on an axis.
	switch span := to.Sub(from); {
	case span < time.Minute:
		from, to = from.Add(-30*time.Minute), to.Add(30*time.Minute)
	case c.Kind == StackedBars:
		from, to = from.Add(-span/40), to.Add(span/40)
	}
	return from, to
}

func maxValue(k Kind, series []Series) float64 {
	var m float64
	if k == StackedBars {
		sums := map[int64]float64{}
		for _, s := range series {
			for _, pt := range s.Points {
				sums[pt.X.UnixNano()] += pt.Y
			}
		}
		for _, v := range sums {
			m = math.Max(m, v)
		}
		return m
	}
	for _, s := range series {
		for _, pt := range s.Points {
			m = math.Max(m, pt.Y)
		}
	}
	return m
}

// plot maps times and values into the drawing.
type plot struct {
	from, to time.Time
	yTop     float64
}

func (p plot) x(t time.Time) float64 {
	span := p.to.Sub(p.from).Seconds()
	return left + (width-left-right)*t.Sub(p.from).Seconds()/span
}

func (p plot) y(v float64) float64 {
	return height - bottom - (height-bottom-top)*v/p.yTop
}

// niceScale picks the axis' top, its step and the unit the labels are written in, so the ticks
// fall on round numbers of that unit (1, 2 or 5 times a power of ten: 0, 5, 10, 15 min; 0, 256,
// 512 MiB would not be round).
func niceScale(maxY float64, u Unit) (top, step, div float64) {
	div = unitDivisor(maxY, u)
	m := maxY / div
	if m <= 0 {
		m = 1
	}
	raw := m / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, f := range []float64{1, 2, 5, 10} {
		if step = f * mag; step >= raw {
			break
		}
	}
	if u != Seconds && div == 1 && step < 1 { // no fractions of a byte or of a count
		step = 1
	}
	top = math.Ceil(m/step) * step
	return top * div, step * div, div
}

// unitDivisor is the unit a value of size v is written in.
func unitDivisor(v float64, u Unit) float64 {
	switch u {
	case Bytes:
		d := 1.0
		for v/d >= 1024 && d < 1<<40 {
			d *= 1024
		}
		return d
	case Seconds:
		for _, d := range []float64{86400, 3600, 60} {
			if v >= 2*d {
				return d
			}
		}
	}
	return 1
}

func unitName(div float64, u Unit) string {
	switch u {
	case Bytes:
		return map[float64]string{1: "B", 1 << 10: "KiB", 1 << 20: "MiB", 1 << 30: "GiB", 1 << 40: "TiB"}[div]
	case Seconds:
		return map[float64]string{1: "s", 60: "min", 3600: "h", 86400: "d"}[div]
	}
	return ""
}

// Format writes a value with its unit, as titles and the legend show it.
func Format(v float64, u Unit) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	div := unitDivisor(v, u)
	if u == Seconds && v < 120 {
		div = 1
	}
	n := v / div
	s := strings.TrimSuffix(fmt.Sprintf("%.1f", n), ".0")
	if n >= 100 {
		s = fmt.Sprintf("%.0f", n)
	}
	if name := unitName(div, u); name != "" {
		return s + " " + name
	}
	return s
}

func tickLabel(v, div float64, u Unit) string {
	s := strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v/div), "0"), ".")
	if name := unitName(div, u); name != "" && v != 0 {
		return s + " " + name
	}
	return s
}

func drawYAxis(b *strings.Builder, p plot, step, div float64, u Unit) {
	b.WriteString(`<g class="axis">`)
	for i := 0; float64(i)*step <= p.yTop*(1+1e-9); i++ {
		v := float64(i) * step
		y := p.y(v)
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="currentColor" stroke-opacity="%s"/>`,
			left, width-right, y, y, map[bool]string{true: ".5", false: ".15"}[v == 0])
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, left-5, y, esc(tickLabel(v, div, u)))
	}
	b.WriteString(`</g>`)
}

// timeSteps are the tick intervals of the time axis, the first that gives at most five ticks wins.
var timeSteps = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
	3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}

func drawXAxis(b *strings.Builder, p plot) {
	span := p.to.Sub(p.from)
	step := timeSteps[len(timeSteps)-1]
	for _, s := range timeSteps {
		if span/s <= 5 {
			step = s
			break
		}
	}
	layout := "15:04"
	if step >= 24*time.Hour {
		layout = "Jan 2"
	}
	b.WriteString(`<g class="axis">`)
	for t := p.from.UTC().Truncate(step).Add(step); !t.After(p.to); t = t.Add(step) {
		x := p.x(t)
		fmt.Fprintf(b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="currentColor" stroke-opacity=".5"/>`, x, x, height-bottom, height-bottom+4)
		// A label centred on a tick at the edge would be cut off: it ends (or starts) there.
		label, anchor := t.Format(layout), "middle"
		if half := float64(len(label)) * fontSize * 0.3; x+half > width {
			anchor = "end"
		} else if x-half < 0 {
			anchor = "start"
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s">%s</text>`, x, height-7, anchor, label)
	}
	b.WriteString(`</g>`)
}

func drawBars(b *strings.Builder, p plot, series []Series, u Unit) {
	// Bars as wide as the closest two runs allow, so they never overlap.
	xs := map[int64]time.Time{}
	for _, s := range series {
		for _, pt := range s.Points {
			xs[pt.X.UnixNano()] = pt.X
		}
	}
	// As wide as the runs' number allows: runs close together (an hourly ZooKeeper record beside
	// a daily set) may touch, but one close pair does not make every bar a hairline.
	barW := math.Max(1, math.Min(16, 0.8*(width-left-right)/float64(len(xs))))
	base := map[int64]float64{}
	for _, s := range series {
		fmt.Fprintf(b, `<g class="s%d">`, s.Color)
		for _, pt := range s.Points {
			k := pt.X.UnixNano()
			y0 := base[k]
			base[k] += pt.Y
			yTop, yBot := p.y(base[k]), p.y(y0)
			fmt.Fprintf(b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s</title></rect>`,
				p.x(pt.X)-barW/2, yTop, barW, yBot-yTop, esc(title(pt, s.Name, u)))
		}
		b.WriteString(`</g>`)
	}
}

func drawLines(b *strings.Builder, p plot, series []Series, u Unit, coincide bool) {
	for i, s := range series {
		fmt.Fprintf(b, `<g class="s%d">`, s.Color)
		var d strings.Builder
		for i, pt := range s.Points {
			cmd := "L"
			if i == 0 || pt.Gap {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f", cmd, p.x(pt.X), p.y(pt.Y))
		}
		stroke := 2.0
		if coincide {
			stroke = 1.5 + 2*float64(len(series)-1-i)
		}
		if !s.Dots {
			fmt.Fprintf(b, `<path class="line" d="%s" fill="none" stroke="currentColor" stroke-width="%.1f" stroke-linejoin="round"><title>%s</title></path>`,
				d.String(), stroke, esc(s.Name))
		}
		// Few points are marked; many (a sawtooth over a day) only answer the pointer. Past
		// maxMarks a line's pointer targets are thinned evenly (the line keeps every point):
		// more are closer than a pointer can tell apart, and each costs the page a title. Dots
		// are the data, and are thinned only past twice as many.
		marked := len(s.Points) <= 40 || s.Dots
		limit := maxMarks
		if s.Dots {
			limit = 2 * maxMarks
		}
		every := (len(s.Points) + limit - 1) / limit
		for j, pt := range s.Points {
			if j%every != 0 && j != len(s.Points)-1 && !pt.Bad {
				continue
			}
			class, r, fill := "point", 2.5, "currentColor"
			switch {
			case pt.Bad:
				class, r = "point bad", 4.5
			case !marked:
				class, r, fill = "point hit", 4, "transparent"
			}
			fmt.Fprintf(b, `<circle class="%s" cx="%.1f" cy="%.1f" r="%g" fill="%s"><title>%s</title></circle>`,
				class, p.x(pt.X), p.y(pt.Y), r, fill, esc(title(pt, s.Name, u)))
		}
		b.WriteString(`</g>`)
	}
}

func title(pt Point, name string, u Unit) string {
	t := pt.X.UTC().Format("2006-01-02 15:04 UTC") + " · " + name + ": " + Format(pt.Y, u)
	if pt.Note != "" {
		t += " (" + pt.Note + ")"
	}
	return t
}

func drawLegend(b *strings.Builder, series []Series, u Unit, k Kind) {
	b.WriteString(`<ul class="legend">`)
	for _, s := range series {
		last := s.Points[len(s.Points)-1]
		var peak, sum float64
		for _, pt := range s.Points {
			peak = math.Max(peak, pt.Y)
			sum += pt.Y
		}
		numbers := "last " + Format(last.Y, u) + " · max " + Format(peak, u)
		if k == StackedBars && u == Bytes {
			numbers = "total " + Format(sum, u) + " · max " + Format(peak, u)
		}
		fmt.Fprintf(b, `<li class="s%d"><span class="swatch"></span>%s <span class="muted">%s</span></li>`, s.Color, esc(s.Name), esc(numbers))
	}
	b.WriteString(`</ul>`)
}

func sortedTimes(m map[int64]time.Time) []time.Time {
	keys := slices.Sorted(maps.Keys(m))
	out := make([]time.Time, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

func esc(s string) string { return html.EscapeString(s) }
