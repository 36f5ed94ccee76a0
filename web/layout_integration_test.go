package web

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// TestPageLayoutInBrowser renders a page with the widest content an operator meets (twenty
// failed runs whose errors are long unbroken tokens, long snapshot ids, many problems) in
// headless Chromium at 1280 px and on a 390 px phone: the page never scrolls sideways, and the
// runs and snapshots tables fit their panel or scroll inside it. Screenshots are kept.
func TestPageLayoutInBrowser(t *testing.T) {
	browser := chromium(t)
	src := sampleSource()
	now := time.Now().UTC()
	long := "load partition 202611 of default.observations from http://ch1.internal:8123/?query=SELECT%20*%20FROM%20default.observations%20WHERE%20_partition_id%3D%27202611%27%20FORMAT%20Native&max_execution_time=0&send_progress_in_http_headers=1" +
		strings.Repeat("0123456789abcdef", 20) + "\x00\x01binary tail"
	src.st.Runs = nil
	src.st.Snapshots = nil
	for i := range 20 {
		start := now.Add(-time.Duration(i) * time.Hour)
		src.st.Runs = append(src.st.Runs, jobs.Run{ID: fmt.Sprintf("run%02d", i), Job: "nightly-backup-of-everything", Trigger: jobs.TriggerSchedule,
			Start: start, End: start.Add(time.Minute), Outcome: jobs.OutcomeFailed, Snapshot: fmt.Sprintf("20261127T%02d0000Z-abcdef", i), Error: store.ErrorText(long)})
		src.st.Snapshots = append(src.st.Snapshots, jobs.SnapshotSummary{ID: fmt.Sprintf("20261127T%02d0000Z-abcdef", i), Time: start, Status: store.StatusPartial,
			Sources: []string{"postgres", "clickhouse", "zookeeper"}, Bytes: 123 << 30, NewBytes: 4 << 30, Objects: 12345, Seconds: 3600, Error: "clickhouse: boom"})
	}
	src.st.Jobs[0].LastRun = &src.st.Runs[0]
	src.st.DamagedManifests = []store.DamagedManifest{{Name: "snapshots/20261101T030000Z-0badc0ffee.json", Error: strings.Repeat("x", 300)}}
	src.st.Problems = jobs.StatusProblems(src.st)
	src.zk = append(src.zk, zookeeper.ServerHealth{Server: "zookeeper-2.zookeeper-headless.langfuse.svc.cluster.local:2181", Error: "dial tcp: i/o timeout"})
	srv := httptest.NewServer(New(Options{Version: "layout"}, src))
	defer srv.Close()

	bctx := newBrowser(t, context.Background(), browser, 1280, 1000)
	if err := chromedp.Do(bctx); err != nil { // starts the browser, without a timeout
		t.Fatal(err)
	}
	bctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()

	// For the page and each wide table: how wide it is, and whether its panel scrolls it.
	const measure = `(() => {
		const out = {page: document.documentElement.scrollWidth, view: window.innerWidth, tables: {}};
		for (const id of ["runs", "snapshots", "jobs", "zookeeper", "replicas"]) {
			const t = document.getElementById(id);
			if (!t) { out.tables[id] = null; continue; }
			const w = t.parentElement;
			const th = t.querySelector("th");
			out.tables[id] = {panel: w.clientWidth, content: w.scrollWidth, right: w.getBoundingClientRect().right,
				overflow: getComputedStyle(w).overflowX, first: th.textContent, firstRight: th.getBoundingClientRect().right};
		}
		return out;
	})()`
	type box struct {
		Panel, Content, Right, FirstRight float64
		Overflow, First                   string
	}
	type measured struct {
		Page, View float64
		Tables     map[string]*box
	}
	verdictFirst := map[string]string{"runs": "outcome", "snapshots": "status", "replicas": "verdict"}
	for _, w := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{{"1280", 1280, 1000, false}, {"phone-390", 390, 844, true}} {
		vp := []chromedp.EmulateViewportOption{}
		if w.mobile {
			vp = append(vp, chromedp.EmulateScale(3), chromedp.EmulateMobile)
		}
		if err := chromedp.Do(bctx,
			chromedp.EmulateViewport(w.width, w.height, vp...),
			chromedp.Navigate(srv.URL+"/"),
			chromedp.WaitVisible(chromedp.ID("runs")),
		); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		got, err := chromedp.Run(bctx, chromedp.Evaluate[measured](measure))
		if err != nil {
			t.Fatalf("%s: measure: %v", w.name, err)
		}
		shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("%s: screenshot: %v", w.name, err)
		}
		saveArtifact(t, "status-page-"+w.name+".png", shot)
		if got.Page > got.View+1 {
			t.Errorf("%s: the page is %.0f px wide in a %.0f px window: it scrolls sideways", w.name, got.Page, got.View)
		}
		for id, b := range got.Tables {
			switch {
			case b == nil:
				t.Errorf("%s: no table %s", w.name, id)
			case b.Right > got.View+1:
				t.Errorf("%s: table %s's panel ends at %.0f px, past the %.0f px window", w.name, id, b.Right, got.View)
			case b.Content > b.Panel+1 && b.Overflow != "auto" && b.Overflow != "scroll":
				t.Errorf("%s: table %s is %.0f px in a %.0f px panel that does not scroll (overflow-x %s)", w.name, id, b.Content, b.Panel, b.Overflow)
			case verdictFirst[id] != "" && (b.First != verdictFirst[id] || b.FirstRight > got.View):
				// On a phone the other columns scroll off: the verdict must be the one left in view.
				t.Errorf("%s: table %s starts with %q ending at %.0f px, want %q in the %.0f px window", w.name, id, b.First, b.FirstRight, verdictFirst[id], got.View)
			}
		}
		t.Logf("%s: page %.0f px in %.0f; runs %.0f in %.0f; snapshots %.0f in %.0f", w.name, got.Page, got.View,
			got.Tables["runs"].Content, got.Tables["runs"].Panel, got.Tables["snapshots"].Content, got.Tables["snapshots"].Panel)
	}
}
