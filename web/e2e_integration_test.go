package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/jobs"
)

// chromium finds Debian's browser; the end-to-end test never downloads one.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is required under CI (make test installs it: apt-get install chromium)")
	}
	t.Skip("chromium not installed (apt-get install chromium)")
	return ""
}

// newBrowser starts headless Chromium at path for the rest of the test, its window w×h pixels (0,
// 0: Chromium's default). Its TMPDIR is the test's: a stopped Chromium leaves its singleton
// directory there, which the test's clean-up then removes.
func newBrowser(t *testing.T, parent context.Context, path string, w, h int) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Env("TMPDIR="+t.TempDir()))
	if w > 0 {
		opts = append(opts, chromedp.WindowSize(w, h))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	return bctx
}

// TestStatusPageInBrowser drives the real daemon's page in headless Chromium: the snapshot of a
// run appears, the replica matrix shows three healthy replicas, logging in with the token shows
// "run now", and clicking it starts a run that then appears in the runs list. Then replica 3's
// table is moved to another replication group, and the page shows that problem first, with its fix.
func TestStatusPageInBrowser(t *testing.T) {
	devstack.Disruptive(t)
	env := devstack.Require(t)
	browser := chromium(t)
	const token = "e2e-token"
	cfg := config.Defaults()
	cfg.Storage.URL = "file://" + t.TempDir()
	cfg.ZooKeeper.Servers = []string{env.ZK}
	cfg.ZooKeeper.Roots = []string{"/clickhouse/tables"}
	// The replica panel checks one scratch database: a replicated table on all three replicas.
	db := env.CHDatabase(t, "e2e_web")
	table := func(path string) string {
		return fmt.Sprintf("CREATE TABLE %s.spans (id UInt64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/%s/%s', '{replica}') ORDER BY id", db, db, path)
	}
	for _, q := range []string{strings.Replace(table("spans"), "spans (", "spans ON CLUSTER "+env.CHCluster+" (", 1),
		"INSERT INTO " + db + ".spans SELECT number FROM system.numbers LIMIT 1000", "SYSTEM SYNC REPLICA " + db + ".spans"} {
		if err := env.CHExec(0, q); err != nil {
			t.Fatal(err)
		}
	}
	for i := range env.CHHTTP {
		if err := env.CHExec(i, "SYSTEM SYNC REPLICA "+db+".spans"); err != nil {
			t.Fatal(err)
		}
	}
	cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses, cfg.ClickHouse.Cluster = env.CHNative, env.CHHTTP, env.CHCluster
	cfg.ClickHouse.Databases = []string{db}
	cfg.Migrate.ClickHouseDatabase = ""
	cfg.Jobs = []config.Job{{Name: "e2e-zk", Schedule: "@daily", Action: config.ActionZKRecord, Timeout: config.Duration(time.Minute), CatchUp: "none"}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := jobs.NewDaemon(&cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Stop(time.Minute)
	first, err := d.Trigger("e2e-zk", jobs.TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	snapshot := waitForRun(t, d, first.ID)

	// No panel cache: each reload must show what the step before it did.
	srv := httptest.NewServer(New(Options{Version: "e2e", Token: token, Log: quiet, PanelTimeout: 10 * time.Second, PanelCacheTTL: time.Nanosecond}, d))
	defer srv.Close()

	bctx := newBrowser(t, ctx, browser, 1280, 1600)
	// The first call starts the browser and must not carry a timeout (it would stop the browser).
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("load the page: %v", err)
	}
	bctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	page, err := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatalf("read the page: %v", err)
	}
	if !strings.Contains(page, snapshot) {
		t.Errorf("the page does not list snapshot %s", snapshot)
	}
	if strings.Contains(page, "run now") {
		t.Error("run now is offered before logging in")
	}
	if i := strings.Index(page, "<h2>Replicas</h2>"); i < 0 || !strings.Contains(page, `id="replicas"`) {
		t.Fatalf("no replica matrix on the page:\n%s", page[max(i, 0):])
	}
	matrix, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("replicas")))
	if err != nil {
		t.Fatalf("replica matrix: %v", err)
	}
	if n := strings.Count(matrix, "ok 1000 rows"); n != 3 || !strings.Contains(page, "every replica in its group") {
		t.Errorf("replica matrix shows %d healthy replicas of %s.spans, want 3:\n%s", n, db, matrix)
	}

	runNow := chromedp.CSS(`button.run-now[data-job="e2e-zk"]`)
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(runNow),
		chromedp.Click(runNow),
		chromedp.WaitVisible(chromedp.ID("flash")),
	); err != nil {
		t.Fatalf("log in and click run now: %v", err)
	}
	flash, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("flash")))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`started run (\w+)`).FindStringSubmatch(flash)
	if m == nil {
		t.Fatalf("after run now, the page says %q", flash)
	}
	waitForRun(t, d, m[1])

	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("runs"))); err != nil {
		t.Fatalf("reload the page: %v", err)
	}
	runs, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("runs")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(runs, "manual") || strings.Count(runs, "succeeded") < 2 {
		t.Errorf("runs list after run now:\n%s", runs)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	saveArtifact(t, "status-page.png", shot)

	// Replica 3 re-creates its table under another path: it forms a group of its own.
	if err := env.CHExec(2, "DROP TABLE "+db+".spans"); err != nil {
		t.Fatal(err)
	}
	if err := env.CHExec(2, table("spans_elsewhere")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("problems"))); err != nil {
		t.Fatalf("reload the page with replica 3 isolated: %v", err)
	}
	problems, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("problems")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(problems, db+".spans on ch3") || !strings.Contains(problems, "tracevault restore-replica ch3") {
		t.Errorf("with replica 3 isolated, the problems say:\n%s", problems)
	}
	page, err = chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Index(page, `id="problems"`) > strings.Index(page, "Freshness") {
		t.Error("the problems are not at the top of the page")
	}
	if shot, err = chromedp.Run(bctx, chromedp.FullScreenshot(100)); err == nil {
		saveArtifact(t, "status-page-isolated-replica.png", shot)
	}

	// With ZooKeeper stopped the page, with its default panel timeout, still renders within 2 s,
	// the ZooKeeper panel in error and the rest intact.
	if err := env.Stop(ctx, "zk"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Start(context.Background(), "zk"); err != nil {
			t.Errorf("restart zookeeper: %v", err)
		}
	})
	plain := httptest.NewServer(New(Options{Version: "e2e", Log: quiet}, d))
	defer plain.Close()
	start := time.Now()
	resp, err := http.Get(plain.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if took := time.Since(start); took > 2*time.Second || resp.StatusCode != http.StatusOK {
		t.Errorf("with zookeeper stopped the page took %s (status %d), want 200 within 2 s", took, resp.StatusCode)
	}
	if !strings.Contains(string(body), "zookeeper "+env.ZK+":") || !strings.Contains(string(body), snapshot) {
		t.Errorf("with zookeeper stopped, want its problem on the page and the runs intact:\n%s", body)
	}
}

// waitForRun waits for a run to finish successfully and returns its snapshot id.
func waitForRun(t *testing.T, d *jobs.Daemon, id string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := d.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range st.Runs {
			if r.ID == id && r.Outcome != jobs.OutcomeRunning {
				if r.Outcome != jobs.OutcomeSucceeded {
					t.Fatalf("run %s: %s %s", id, r.Outcome, r.Error)
				}
				return r.Snapshot
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("run %s did not finish within 60 s", id)
	return ""
}

// saveArtifact keeps a file for people to look at after the run: in $ARTIFACTS_DIR, else in the
// repository's git-ignored artifacts/.
func saveArtifact(t *testing.T, name string, data []byte) {
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("keep artifact %s: %v", name, err)
		return
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Logf("keep artifact %s: %v", name, err)
		return
	}
	t.Logf("screenshot: %s", p)
}
