package web

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracevault/tracevault/jobs"
)

// scriptedRead answers a panel's reads in turn: each step returns its value or error after its
// delay (ignoring the context, like a backend that will not be hurried).
type scriptedRead struct {
	mu    sync.Mutex
	steps []readStep
	n     int
}

type readStep struct {
	val   string
	err   error
	delay time.Duration
}

func (s *scriptedRead) read(context.Context) (string, error) {
	s.mu.Lock()
	st := s.steps[min(s.n, len(s.steps)-1)]
	s.n++
	s.mu.Unlock()
	time.Sleep(st.delay)
	return st.val, st.err
}

// TestPanelOverrunServesLastGoodAnswer: a read that overruns the panel's timeout is answered with
// the newest successful read, marked stale, and goes on to fill the cache; with no success yet,
// or when the newest read failed, the request gets an error and never an older success.
func TestPanelOverrunServesLastGoodAnswer(t *testing.T) {
	// A slow read takes four timeouts, and its result is cached as long; requests come 1.25
	// of that apart, so each finds the cache expired, or filled by the read that overran.
	const timeout = 100 * time.Millisecond
	slow, ttl := 4*timeout, 4*timeout
	boom := errors.New("repository refused")
	for _, tc := range []struct {
		name  string
		steps []readStep
		// want is, per request in turn, the value, or "error: <text>", and whether it is stale.
		want  []string
		stale []bool
	}{
		{"fresh reads", []readStep{{val: "a"}, {val: "b"}},
			[]string{"a", "b"}, []bool{false, false}},
		{"overrun after a success serves it stale, then the finished read",
			[]readStep{{val: "a"}, {val: "b", delay: slow}, {val: "c"}},
			[]string{"a", "a", "b"}, []bool{false, true, false}},
		{"overrun with nothing read yet is an error, then the finished read",
			[]readStep{{val: "a", delay: slow}, {val: "b"}},
			[]string{"error: no answer within 100ms", "a"}, []bool{false, false}},
		{"overrun after a failure shows the failure, not an older success",
			[]readStep{{val: "a"}, {err: boom}, {val: "c", delay: slow}},
			[]string{"a", "error: repository refused", "error: repository refused"}, []bool{false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &scriptedRead{steps: tc.steps}
			p := newPanel(src.read, timeout, ttl)
			for i, want := range tc.want {
				a := p.answer(context.Background())
				got := a.val
				if a.err != nil {
					got = "error: " + a.err.Error()
				}
				if !strings.HasPrefix(got, want) {
					t.Errorf("request %d: got %q, want %q", i, got, want)
				}
				if (a.stale > 0) != tc.stale[i] {
					t.Errorf("request %d: stale %s, want stale=%v", i, a.stale, tc.stale[i])
				}
				time.Sleep(5 * timeout)
			}
		})
	}
}

// TestStatusOverrunIsMarkedStale: the page and the API answer with the newest status while a
// fresh read overruns, and say how old it is, instead of 503.
func TestStatusOverrunIsMarkedStale(t *testing.T) {
	now := time.Now().UTC()
	src := &scriptedRead{steps: []readStep{{val: "first"}, {val: "second", delay: 300 * time.Millisecond}}}
	status := func(ctx context.Context) (jobs.Status, error) {
		v, err := src.read(ctx)
		return jobs.Status{Now: now, Storage: v}, err
	}
	s := New(Options{PanelTimeout: 50 * time.Millisecond, PanelCacheTTL: time.Millisecond}, sampleSource())
	s.statusPanel = newPanel(status, 50*time.Millisecond, time.Millisecond)

	if resp, _ := get(t, s, "/api/v1/status"); resp.StatusCode != 200 || resp.Header.Get(staleHeader) != "" {
		t.Fatalf("first read: %d, stale header %q", resp.StatusCode, resp.Header.Get(staleHeader))
	}
	time.Sleep(5 * time.Millisecond)
	resp, body := get(t, s, "/api/v1/status")
	if resp.StatusCode != 200 || resp.Header.Get(staleHeader) == "" || !strings.Contains(body, `"storage":"first"`) {
		t.Errorf("overrun: %d, stale header %q, body %s; want 200 with the first status, marked stale", resp.StatusCode, resp.Header.Get(staleHeader), body)
	}
	p := indexPage{}
	s.panels(context.Background(), &p)
	page := httptest.NewRecorder()
	s.render(page, "index.html", indexWithCharts{p, chartsPanel{}})
	if shown := strings.Contains(page.Body.String(), `id="status-stale"`); p.StatusErr != "" || !shown {
		t.Errorf("page during the overrun: error %q, stale note shown %v", p.StatusErr, shown)
	}
}
