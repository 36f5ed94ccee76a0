package web

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// screenshotDir is where the browser tests keep their pictures for a person to look at: t.TempDir
// is deleted with the test.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("TRACEVAULT_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "tracevault-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot directory: %v", err)
	}
	return dir
}

// TestChartsInBrowserWithRecordedHistory draws the page's pictures from a fixed week of recorded
// history (no daemon, no service of the stack) in headless Chromium, light and dark, at 1280 px
// and on a 390 px phone: every chart is there and visible, its numbers are in hover titles, no
// label falls outside its drawing, nothing scrolls sideways, and the dark palette is used in
// dark mode. Screenshots are kept for a person to look at.
func TestChartsInBrowserWithRecordedHistory(t *testing.T) {
	browser := chromium(t)
	src := trendingSource{sampleSource(), recordedTrends()}
	src.st.LastDrill = &src.trends.Drills[len(src.trends.Drills)-1] // the page's card agrees with the picture
	srv := httptest.NewServer(New(Options{Version: "charts"}, src))
	defer srv.Close()
	dir := screenshotDir(t)

	bctx := newBrowser(t, context.Background(), browser, 1280, 1000)
	if err := chromedp.Do(bctx); err != nil { // starts the browser, without a timeout
		t.Fatal(err)
	}
	bctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	// For each chart: its box, whether it is shown, and the labels that leave its drawing.
	const measure = `(() => {
		const out = {page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth, charts: []};
		for (const f of document.querySelectorAll("#charts figure.chart")) {
			const svg = f.querySelector("svg");
			const c = {id: f.id, figure: f.scrollWidth, figureBox: f.clientWidth, outside: []};
			if (svg) {
				const r = svg.getBoundingClientRect(), st = getComputedStyle(svg);
				c.width = r.width; c.height = r.height; c.right = r.right;
				c.shown = st.display !== "none" && st.visibility === "visible" && r.width > 0 && r.height > 0;
				c.titles = svg.querySelectorAll("rect.bar > title, circle.point > title").length;
				c.marks = svg.querySelectorAll("rect.bar, circle.point").length;
				for (const tx of svg.querySelectorAll("text")) {
					const b = tx.getBBox();
					if (b.x < 0 || b.x + b.width > 480 || b.y < 0 || b.y + b.height > 190) c.outside.push(tx.textContent + " " + [b.x, b.y, b.width, b.height].map(Math.round).join(","));
				}
				const bar = svg.querySelector("g.s1 rect.bar, g.s1 circle.point");
				c.fill = bar ? getComputedStyle(bar).fill : "";
				const label = svg.querySelector(".axis text");
				c.text = label ? getComputedStyle(label).fill : "";
			}
			out.charts.push(c);
		}
		return out;
	})()`
	type measured struct {
		Page, View float64
		Charts     []struct {
			ID                   string
			Figure, FigureBox    float64
			Width, Height, Right float64
			Shown                bool
			Titles, Marks        int
			Outside              []string
			Fill, Text           string
		}
	}
	wantCharts := []string{"chart-new-bytes", "chart-duration", "chart-recovery-age", "chart-repository", "chart-drills"}
	for _, w := range []struct {
		name          string
		width, height int64
		mobile        bool
		scheme        string
		fill          string // --c1 in that scheme
	}{
		{"1280-light", 1280, 1000, false, "light", "rgb(9, 105, 218)"},
		{"1280-dark", 1280, 1000, false, "dark", "rgb(68, 147, 248)"},
		{"390-light", 390, 844, true, "light", "rgb(9, 105, 218)"},
		{"390-dark", 390, 844, true, "dark", "rgb(68, 147, 248)"},
	} {
		vp := []chromedp.EmulateViewportOption{}
		if w.mobile {
			vp = append(vp, chromedp.EmulateScale(3), chromedp.EmulateMobile)
		}
		if _, err := chromedp.Call(bctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: w.scheme}}}); err != nil {
			t.Fatalf("%s: emulate %s: %v", w.name, w.scheme, err)
		}
		if err := chromedp.Do(bctx,
			chromedp.EmulateViewport(w.width, w.height, vp...),
			chromedp.Navigate(srv.URL+"/"),
			chromedp.WaitVisible(chromedp.ID("charts")),
		); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		got, err := chromedp.Run(bctx, chromedp.Evaluate[measured](measure))
		if err != nil {
			t.Fatalf("%s: measure: %v", w.name, err)
		}
		shot, err := chromedp.Run(bctx, chromedp.Screenshot(chromedp.ID("charts")))
		if err != nil {
			t.Fatalf("%s: screenshot: %v", w.name, err)
		}
		p := filepath.Join(dir, "charts-"+w.name+".png")
		if err := os.WriteFile(p, shot, 0o644); err != nil {
			t.Fatalf("keep screenshot: %v", err)
		}
		t.Logf("%s: screenshot %s", w.name, p)
		if !w.mobile { // the whole page too, to see the pictures among the panels
			page, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatalf("%s: page screenshot: %v", w.name, err)
			}
			p := filepath.Join(dir, "status-page-with-charts-"+w.name+".png")
			if err := os.WriteFile(p, page, 0o644); err != nil {
				t.Fatalf("keep screenshot: %v", err)
			}
			t.Logf("%s: screenshot %s", w.name, p)
		}

		if got.Page > got.View+1 {
			t.Errorf("%s: the page is %.0f px wide in %.0f: it scrolls sideways", w.name, got.Page, got.View)
		}
		if len(got.Charts) != len(wantCharts) {
			t.Fatalf("%s: %d charts, want %d", w.name, len(got.Charts), len(wantCharts))
		}
		for i, c := range got.Charts {
			switch {
			case c.ID != wantCharts[i]:
				t.Errorf("%s: chart %d is %q, want %q", w.name, i, c.ID, wantCharts[i])
			case !c.Shown:
				t.Errorf("%s: %s is not visible (%.0f × %.0f)", w.name, c.ID, c.Width, c.Height)
			case c.Right > got.View+1 || c.Figure > c.FigureBox+1:
				t.Errorf("%s: %s overflows: ends at %.0f in %.0f, content %.0f in %.0f", w.name, c.ID, c.Right, got.View, c.Figure, c.FigureBox)
			case c.Titles != c.Marks || c.Marks == 0:
				t.Errorf("%s: %s has %d bars and points, %d with a title", w.name, c.ID, c.Marks, c.Titles)
			case len(c.Outside) > 0:
				t.Errorf("%s: %s: labels outside the drawing: %q", w.name, c.ID, c.Outside)
			case c.ID != "chart-repository" && c.ID != "chart-drills" && c.Fill != w.fill:
				t.Errorf("%s: %s draws its first source in %s, want %s", w.name, c.ID, c.Fill, w.fill)
			}
			if w.scheme == "dark" && (c.Text == "rgb(110, 119, 129)" || c.Text == "rgb(0, 0, 0)") {
				t.Errorf("%s: %s writes its axis in %s, the light scheme's colour", w.name, c.ID, c.Text)
			}
		}
		t.Logf("%s: page %.0f px in %.0f; first chart %.0f × %.0f px", w.name, got.Page, got.View, got.Charts[0].Width, got.Charts[0].Height)
	}
}

// TestVerdictsInViewOnAPhone opens the page on a 390 px phone: in every table the verdict (a
// run's outcome, a snapshot's status, a job's last run, a table's replicas, a migration's state)
// is in view without scrolling the table sideways.
func TestVerdictsInViewOnAPhone(t *testing.T) {
	browser := chromium(t)
	src := sampleSource()
	src.st.Jobs[0].LastRun = &src.st.Runs[0]
	srv := httptest.NewServer(New(Options{Version: "verdicts"}, src))
	defer srv.Close()
	bctx := newBrowser(t, context.Background(), browser, 0, 0)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatal(err)
	}
	bctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(bctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile),
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("runs")),
	); err != nil {
		t.Fatal(err)
	}
	// The first cell of each row coloured by its verdict, and where it ends.
	const measure = `(() => {
		const out = {};
		for (const id of ["jobs", "runs", "snapshots", "replicas", "migrations"]) {
			const t = document.getElementById(id);
			if (!t) { out[id] = -1; continue; }
			let right = 0;
			for (const row of t.querySelectorAll("tr")) {
				const v = row.querySelector("td.ok, td.warn, td.bad, td span.ok, td span.warn, td span.bad");
				if (v) right = Math.max(right, v.getBoundingClientRect().right);
			}
			out[id] = right;
		}
		return out;
	})()`
	got, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]float64](measure))
	if err != nil {
		t.Fatal(err)
	}
	for id, right := range got {
		switch {
		case right < 0:
			t.Errorf("no table %s", id)
		case right == 0:
			t.Errorf("table %s shows no verdict", id)
		case right > 390:
			t.Errorf("table %s: its verdict ends at %.0f px, off a 390 px screen", id, right)
		}
	}
	t.Logf("verdicts end at %v px", got)
}
