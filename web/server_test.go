package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/migrate"
	"github.com/tracevault/tracevault/snapshot/clickhouse/replica"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// fakeSource stands in for the daemon: these tests exercise only the HTTP layer (the end-to-end
// test drives the real daemon).
type fakeSource struct {
	st      jobs.Status
	err     error
	delay   time.Duration // of Status
	zkDelay time.Duration
	zk      []zookeeper.ServerHealth
	snap    *store.Manifest
	migs    []jobs.MigrationState
	report  *replica.Report

	mu        sync.Mutex
	triggered []string
	calls     map[string]int // panel reads, by panel
}

func (f *fakeSource) count(panel string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[panel]++
}

func wait[T any](ctx context.Context, d time.Duration, v T, err error) (T, error) {
	select {
	case <-time.After(d):
		return v, err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

func (f *fakeSource) Status(ctx context.Context) (jobs.Status, error) {
	f.count("status")
	return wait(ctx, f.delay, f.st, f.err)
}

func (f *fakeSource) ZooKeeper(ctx context.Context) ([]zookeeper.ServerHealth, error) {
	f.count("zookeeper")
	// Like a dead ensemble with a long session timeout: ignores ctx, the server must not wait.
	time.Sleep(f.zkDelay)
	return f.zk, nil
}

func (f *fakeSource) Replicas(context.Context) (*replica.Report, error) {
	f.count("replicas")
	return f.report, nil
}

func (f *fakeSource) Migrations(context.Context) ([]jobs.MigrationState, error) {
	f.count("migrations")
	return f.migs, nil
}

func (f *fakeSource) Snapshot(_ context.Context, id string) (*store.Manifest, error) {
	f.count("snapshot " + id)
	if f.snap == nil || !strings.HasPrefix(f.snap.ID, id) {
		return nil, store.ErrNotFound
	}
	return f.snap, nil
}

func (f *fakeSource) Trigger(job, trigger string) (jobs.Run, error) {
	if job == "nojob" {
		return jobs.Run{}, fmt.Errorf("no job named %q: %w", job, jobs.ErrNoJob)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.triggered = append(f.triggered, job+"/"+trigger)
	return jobs.Run{ID: "r1", Job: job, Trigger: trigger, Outcome: jobs.OutcomeRunning}, nil
}

func (f *fakeSource) VerifySnapshot(context.Context, string) (store.VerifyReport, error) {
	return store.VerifyReport{Snapshots: 1, Objects: 3}, nil
}

func (f *fakeSource) triggers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.triggered...)
}

func do(t *testing.T, h http.Handler, req *http.Request) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	return do(t, h, httptest.NewRequest(http.MethodGet, path, nil))
}

// decodeStrict decodes the whole body into v, failing on any field v does not declare: the
// documented shapes are the types.
func decodeStrict(t *testing.T, body string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, body)
	}
}

func sampleSource() *fakeSource {
	now := time.Now().UTC()
	next := now.Add(150 * time.Minute)
	f := &fakeSource{
		st: jobs.Status{Now: now, Storage: "file:///repo",
			Jobs: []jobs.JobStatus{{Name: "nightly", Action: "backup", Schedule: "0 3 * * *", NextRun: next}},
			Runs: []jobs.Run{{ID: "r0", Job: "nightly", Trigger: jobs.TriggerSchedule, Start: now.Add(-time.Hour), End: now.Add(-59 * time.Minute), Outcome: jobs.OutcomeSucceeded, Snapshot: "20261125T0300-ab",
				Cut: time.Date(2026, 11, 25, 3, 0, 1, 250e6, time.UTC), CutSkewSeconds: 0.042},
				{ID: "r1", Job: jobs.ActionReplayEvents, Action: jobs.ActionReplayEvents, Trigger: jobs.TriggerManual, Start: now.Add(-2 * time.Hour), End: now.Add(-2 * time.Hour),
					Outcome: jobs.OutcomeSucceeded, ReplayedEvents: 4812,
					RecoveryPoint: "ClickHouse restored to the snapshot 20261125T0300-ab at 03:00:01Z, then 4,812 events written until 03:13:31Z replayed"}},
			Snapshots: []jobs.SnapshotSummary{{ID: "20261125T0300-ab", Time: now.Add(-time.Hour), Status: "complete", Sources: []string{"clickhouse"}}},
			Freshness: []jobs.Freshness{{Source: "clickhouse", Snapshot: "20261125T0300-ab", AgeSeconds: 3600, IntervalSeconds: 86400, Level: jobs.LevelOK, Reason: "within its schedule"},
				{Source: "postgres", Level: jobs.LevelBad, Reason: "no complete snapshot holds postgres"}},
		},
		zk: []zookeeper.ServerHealth{{Server: "127.0.0.1:2181", OK: true, Mode: "standalone", ZnodeCount: 4242}},
		migs: []jobs.MigrationState{{Target: "clickhouse", Status: &migrate.Status{Database: "default", Version: 7, Dirty: true,
			Pending: []migrate.FileState{{Version: 8, Title: "add_tags"}}}}},
		report: &replica.Report{Taken: now, Replicas: []replica.Column{{Name: "ch1", Up: true}, {Name: "ch3", Up: true}},
			Tables: []replica.TableCheck{{Table: "default.traces", Replicated: true, ZooKeeperPath: "/clickhouse/tables/01/default/traces",
				Cells: []replica.Cell{{Replica: "ch1", Verdict: "ok", Rows: 100}, {Replica: "ch3", Verdict: "isolated", ZooKeeperPath: "/elsewhere/traces"}}}},
			Problems: []replica.Problem{{Kind: "isolated", Table: "default.traces", Replica: "ch3", Message: "replicates under /elsewhere/traces", Fix: "tracevault restore-replica ch3"},
				{Kind: "zookeeper", Message: "zookeeper said so too", Fix: "tracevault zk health"}}},
		snap: &store.Manifest{ID: "20261125T0300-ab", Status: "complete", Objects: []store.ManifestObject{{Source: "clickhouse", Kind: "partition", Database: "default", Table: "traces", Partition: "202605", Rows: 10}}},
	}
	f.st.Problems = jobs.StatusProblems(f.st)
	return f
}

func TestPageAndAPI(t *testing.T) {
	src := sampleSource()
	s := New(Options{Version: "test"}, src)

	resp, body := get(t, s, "/")
	for _, want := range []string{"nightly", "in 2 h", "file:///repo", "every day at 03:00 UTC", "4242", "standalone",
		"no complete snapshot holds postgres", "tracevault backup --only postgres", `href="/snapshots/20261125T0300-ab"`, "cut 03:00:01.250",
		"default.traces on ch3: replicates under /elsewhere/traces", "tracevault restore-replica ch3",
		"clickhouse schema_migrations is dirty at version 7", "recovery point:</span> ClickHouse restored to the snapshot 20261125T0300-ab", "tracevault migrate --target clickhouse force 7", "8_add_tags"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if resp.StatusCode != 200 || t.Failed() {
		t.Fatalf("page: %d\n%s", resp.StatusCode, body)
	}
	if i := strings.Index(body, "default.traces on ch3"); i < 0 || i > strings.Index(body, "Freshness") {
		t.Error("the isolated replica is not at the top of the page")
	}
	if strings.Contains(body, "zookeeper said so too") {
		t.Error("a zookeeper problem of the replica check is shown twice (the zookeeper panel has it)")
	}

	apis := []struct {
		path string
		into any
		ok   func(v any) bool
	}{
		{"/api/v1/status", &jobs.Status{}, func(v any) bool { return len(v.(*jobs.Status).Jobs) == 1 && len(v.(*jobs.Status).Freshness) == 2 }},
		{"/api/v1/jobs", &[]jobs.JobStatus{}, func(v any) bool { return (*v.(*[]jobs.JobStatus))[0].Name == "nightly" }},
		{"/api/v1/runs", &[]jobs.Run{}, func(v any) bool { return (*v.(*[]jobs.Run))[0].Snapshot == "20261125T0300-ab" }},
		{"/api/v1/snapshots", &[]jobs.SnapshotSummary{}, func(v any) bool { return len(*v.(*[]jobs.SnapshotSummary)) == 1 }},
		{"/api/v1/snapshots/20261125T0300", &store.Manifest{}, func(v any) bool { return v.(*store.Manifest).Objects[0].Table == "traces" }},
		{"/api/v1/zookeeper", &[]zookeeper.ServerHealth{}, func(v any) bool { return (*v.(*[]zookeeper.ServerHealth))[0].ZnodeCount == 4242 }},
		{"/api/v1/replicas", &replica.Report{}, func(v any) bool { return v.(*replica.Report).Tables[0].Cells[1].Verdict == "isolated" }},
		{"/api/v1/migrations", &[]jobs.MigrationState{}, func(v any) bool { return (*v.(*[]jobs.MigrationState))[0].Status.Dirty }},
	}
	for _, a := range apis {
		resp, body := get(t, s, a.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s", a.path, resp.StatusCode, body)
			continue
		}
		decodeStrict(t, body, a.into)
		if !a.ok(a.into) {
			t.Errorf("%s: unexpected content %s", a.path, body)
		}
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/nope": 404, "/api/v1/snapshots/zzz": 404, "/snapshots/20261125T0300-ab": 200} {
		if resp, _ := get(t, s, path); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if _, body := get(t, s, "/snapshots/20261125T0300-ab"); !strings.Contains(body, "default.traces") || !strings.Contains(body, "202605") {
		t.Errorf("snapshot page lacks its table and partition:\n%s", body)
	}
}

// TestSlowBackendsDoNotHangThePage: each panel is bounded and shows its own error, the rest of
// the page intact — even when a backend ignores its context.
func TestSlowBackendsDoNotHangThePage(t *testing.T) {
	src := sampleSource()
	src.zkDelay = time.Hour
	s := New(Options{PanelTimeout: 200 * time.Millisecond}, src)
	start := time.Now()
	resp, body := get(t, s, "/")
	if took := time.Since(start); took > 2*time.Second || resp.StatusCode != 200 {
		t.Fatalf("page took %s, status %d", took, resp.StatusCode)
	}
	if !strings.Contains(body, "zookeeper unavailable: no answer within 200ms") || !strings.Contains(body, "nightly") {
		t.Errorf("want the zookeeper panel in error and the jobs panel intact:\n%s", body)
	}

	src = sampleSource()
	src.delay = time.Hour
	if _, body := get(t, New(Options{PanelTimeout: 100 * time.Millisecond}, src), "/"); !strings.Contains(body, "status unavailable") || !strings.Contains(body, "4242") {
		t.Errorf("want the status panel in error and the zookeeper panel intact:\n%s", body)
	}
	src = sampleSource()
	src.err = errors.New("boom")
	if resp, _ := get(t, New(Options{}, src), "/readyz"); resp.StatusCode != 503 {
		t.Errorf("readyz with a failing backend: %d, want 503", resp.StatusCode)
	}
}

func TestActionsNeedTokenAndAreCSRFSafe(t *testing.T) {
	const token = "s3cret-token"
	a := newAuth(token)
	value, _ := a.newSession(time.Now())
	session := &http.Cookie{Name: sessionCookie, Value: value}
	form := func(path string, vals url.Values, mod func(*http.Request)) *http.Request {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(vals.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if mod != nil {
			mod(r)
		}
		return r
	}
	withCookie := func(r *http.Request) { r.AddCookie(session) }
	tests := []struct {
		name    string
		token   string
		req     *http.Request
		code    int
		started bool
	}{
		{"no token configured: read-only", "", form("/api/v1/jobs/nightly/run", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer x") }), 403, false},
		{"no credentials", token, form("/api/v1/jobs/nightly/run", nil, nil), 401, false},
		{"wrong bearer", token, form("/api/v1/jobs/nightly/run", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }), 401, false},
		{"bearer", token, form("/api/v1/jobs/nightly/run", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }), 202, true},
		{"cookie without csrf", token, form("/jobs/nightly/run", nil, withCookie), 403, false},
		{"cookie, csrf, but cross-site", token, form("/jobs/nightly/run", url.Values{"csrf": {a.csrf()}}, func(r *http.Request) {
			withCookie(r)
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}), 403, false},
		{"cookie, csrf, foreign origin", token, form("/jobs/nightly/run", url.Values{"csrf": {a.csrf()}}, func(r *http.Request) {
			withCookie(r)
			r.Header.Set("Origin", "https://evil.example")
		}), 403, false},
		{"page form: cookie and csrf", token, form("/jobs/nightly/run", url.Values{"csrf": {a.csrf()}}, func(r *http.Request) {
			withCookie(r)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
		}), 303, true},
		{"unknown job is not found", token, form("/api/v1/jobs/nojob/run", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }), 404, false},
		{"GET cannot act", token, httptest.NewRequest(http.MethodGet, "/api/v1/jobs/nightly/run", nil), 405, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := sampleSource()
			resp, body := do(t, New(Options{Token: tc.token}, src), tc.req)
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			if started := len(src.triggers()) > 0; started != tc.started {
				t.Errorf("job started: %v, want %v", started, tc.started)
			}
			if strings.Contains(body, token) {
				t.Error("the response shows the token")
			}
		})
	}
}

func TestLoginAndReadProtection(t *testing.T) {
	const token = "s3cret-token"
	src := sampleSource()
	s := New(Options{Token: token, RequireTokenForRead: true}, src)

	if resp, body := get(t, s, "/"); resp.StatusCode != 401 || !strings.Contains(body, `name="token"`) || strings.Contains(body, "nightly") {
		t.Errorf("unauthenticated page: %d, want 401 with a login form and no data\n%s", resp.StatusCode, body)
	}
	if resp, _ := get(t, s, "/api/v1/status"); resp.StatusCode != 401 {
		t.Errorf("unauthenticated API: %d, want 401", resp.StatusCode)
	}
	login := func(tok string) *http.Response {
		r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, _ := do(t, s, r)
		return resp
	}
	if resp := login("wrong"); len(resp.Cookies()) != 0 {
		t.Error("a wrong token got a session cookie")
	}
	resp := login(token)
	if len(resp.Cookies()) != 1 || resp.Cookies()[0].SameSite != http.SameSiteStrictMode || !resp.Cookies()[0].HttpOnly || resp.Cookies()[0].Value == token {
		t.Fatalf("login cookie: %+v", resp.Cookies())
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(resp.Cookies()[0])
	if resp, body := do(t, s, r); resp.StatusCode != 200 || !strings.Contains(body, "run now") || !strings.Contains(body, newAuth(token).csrf()) {
		t.Errorf("logged-in page: %d, want run-now buttons carrying the CSRF value", resp.StatusCode)
	}
}

func TestCronWords(t *testing.T) {
	for expr, want := range map[string]string{
		"0 3 * * *":                    "every day at 03:00 UTC",
		"15 * * * *":                   "every hour at :15",
		"*/5 * * * *":                  "every 5 min",
		"*/2 * * * * *":                "every 2 s",
		"@hourly":                      "every hour",
		"CRON_TZ=Europe/Berlin @daily": "every day at 00:00 (Europe/Berlin)",
		"0 3 1-7 * 1":                  "",
		"0 */15 * * * *":               "every 15 min", // seconds first, as in make run's run.toml
		"0 30 * * * *":                 "every hour at :30",
		"0 0 3 * * *":                  "every day at 03:00 UTC",
		"30 */6 * * *":                 "every 6 h at :30",
		"7 30 * * * *":                 "",
	} {
		if got := cronWords(expr); got != want {
			t.Errorf("cronWords(%q) = %q, want %q", expr, got, want)
		}
	}
}

// TestSnapshotPageShowsCut: the snapshot page and its API say the set's cut, and a snapshot from
// before cuts were recorded says it has none.
func TestSnapshotPageShowsCut(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 3, 0, 1, 250e6, time.UTC)
	cut := store.NewCut([]store.SourceCut{{Source: "postgres", Time: t0, Position: "lsn 0/3000148"}, {Source: "clickhouse", Time: t0.Add(42 * time.Millisecond)}})
	tests := []struct {
		name string
		cut  *store.Cut
		want []string
	}{
		{"recorded", cut, []string{"2026-11-25 03:00:01.250 UTC", "skew 42ms", "postgres 03:00:01.250", "lsn 0/3000148", "clickhouse 03:00:01.292"}},
		{"old snapshot", nil, []string{"cut: not recorded"}},
	}
	for _, tt := range tests {
		src := sampleSource()
		src.snap.Cut = tt.cut
		s := New(Options{Version: "test"}, src)
		_, body := get(t, s, "/snapshots/20261125T0300-ab")
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: the snapshot page lacks %q:\n%s", tt.name, w, body)
			}
		}
		var m store.Manifest
		_, api := get(t, s, "/api/v1/snapshots/20261125T0300-ab")
		decodeStrict(t, api, &m)
		if (m.Cut == nil) != (tt.cut == nil) || (m.Cut != nil && !m.Cut.Time.Equal(t0)) {
			t.Errorf("%s: the API's cut is %v", tt.name, m.Cut)
		}
	}
}
