package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/jobs"
)

type fakeStatus struct {
	st    jobs.Status
	err   error
	delay time.Duration
}

// Status is a stand-in for the daemon: this test exercises only the HTTP layer.
func (f fakeStatus) Status(ctx context.Context) (jobs.Status, error) {
	select {
	case <-time.After(f.delay):
		return f.st, f.err
	case <-ctx.Done():
		return jobs.Status{}, ctx.Err()
	}
}

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(body)
}

func TestPageAndAPI(t *testing.T) {
	next := time.Now().Add(150 * time.Minute).UTC()
	src := fakeStatus{st: jobs.Status{Now: time.Now().UTC(), Storage: "file:///repo", Jobs: []jobs.JobStatus{{Name: "nightly", Action: "backup", Schedule: "0 3 * * *", NextRun: next}}}}
	s := New(Options{Version: "test"}, src)

	resp, body := get(t, s, "/")
	if resp.StatusCode != 200 || !strings.Contains(body, "nightly") || !strings.Contains(body, "in 2 h") || !strings.Contains(body, "file:///repo") {
		t.Errorf("page: %d\n%s", resp.StatusCode, body)
	}
	resp, body = get(t, s, "/api/v1/status")
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	var st jobs.Status
	if resp.StatusCode != 200 || dec.Decode(&st) != nil || len(st.Jobs) != 1 || !st.Jobs[0].NextRun.Equal(next) {
		t.Errorf("api: %d %s", resp.StatusCode, body)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/nope": 404} {
		if resp, _ := get(t, s, path); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestSlowBackendDoesNotHangThePage: the status read is bounded and its error is shown.
func TestSlowBackendDoesNotHangThePage(t *testing.T) {
	s := New(Options{PanelTimeout: 100 * time.Millisecond}, fakeStatus{delay: time.Hour})
	start := time.Now()
	resp, body := get(t, s, "/")
	if time.Since(start) > 2*time.Second || resp.StatusCode != 200 || !strings.Contains(body, "status unavailable") {
		t.Errorf("slow backend: %s, %d\n%s", time.Since(start), resp.StatusCode, body)
	}
	if resp, _ := get(t, New(Options{}, fakeStatus{err: errors.New("boom")}), "/readyz"); resp.StatusCode != 503 {
		t.Errorf("readyz with a failing backend: %d, want 503", resp.StatusCode)
	}
}
