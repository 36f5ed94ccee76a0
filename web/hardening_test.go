package web

import (
	"crypto/tls"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestPanelsReadOncePerTTL: concurrent requests share one read of each expensive panel, and
// requests within the cache's lifetime read nothing, so an unauthenticated client cannot make
// every request open connections to the backends and decode every manifest (a snapshot's page
// included).
func TestPanelsReadOncePerTTL(t *testing.T) {
	src := sampleSource()
	src.delay, src.zkDelay = 100*time.Millisecond, 100*time.Millisecond
	s := New(Options{PanelCacheTTL: time.Minute}, src)
	paths := []string{"/", "/api/v1/status", "/api/v1/problems", "/api/v1/zookeeper", "/api/v1/replicas", "/api/v1/migrations", "/readyz",
		"/snapshots/20261125T0300", "/api/v1/snapshots/20261125T0300"}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if resp, body := get(t, s, paths[i%len(paths)]); resp.StatusCode != 200 {
				t.Errorf("%s: %d %s", paths[i%len(paths)], resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	get(t, s, "/") // later, within the TTL
	src.mu.Lock()
	defer src.mu.Unlock()
	for _, panel := range []string{"status", "zookeeper", "replicas", "migrations", "snapshot 20261125T0300"} {
		if n := src.calls[panel]; n != 1 {
			t.Errorf("panel %s read %d times for 51 requests, want 1", panel, n)
		}
	}
}

// TestPanelCacheExpires: past the TTL the panel is read again, so the page stays current.
func TestPanelCacheExpires(t *testing.T) {
	src := sampleSource()
	s := New(Options{PanelCacheTTL: 50 * time.Millisecond}, src)
	get(t, s, "/api/v1/zookeeper")
	time.Sleep(80 * time.Millisecond)
	get(t, s, "/api/v1/zookeeper")
	src.mu.Lock()
	defer src.mu.Unlock()
	if n := src.calls["zookeeper"]; n != 2 {
		t.Errorf("zookeeper read %d times across an expiry, want 2", n)
	}
}

func postLogin(t *testing.T, s http.Handler, token, remote string, mod func(*http.Request)) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = remote
	if mod != nil {
		mod(r)
	}
	resp, _ := do(t, s, r)
	return resp
}

// TestSessionExpiresAndLogoutRevokes: the session cookie expires, is HttpOnly, SameSite and
// Secure over TLS; after logout the same cookie no longer reads or acts, and an expired or
// tampered one never did.
func TestSessionExpiresAndLogoutRevokes(t *testing.T) {
	const token = "s3cret-token"
	s := New(Options{Token: token, RequireTokenForRead: true}, sampleSource())
	resp := postLogin(t, s, token, "192.0.2.1:1234", func(r *http.Request) { r.TLS = &tls.ConnectionState{} })
	if len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d cookies", len(resp.Cookies()))
	}
	c := resp.Cookies()[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || !c.Secure || c.MaxAge <= 0 || c.MaxAge > 12*3600 ||
		c.Expires.Before(time.Now().Add(11*time.Hour)) || c.Expires.After(time.Now().Add(13*time.Hour)) || strings.Contains(c.Value, token) {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Secure over TLS, expiring in 12 h", c)
	}
	read := func(cookie *http.Cookie) int {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/status", nil)
		r.AddCookie(cookie)
		resp, _ := do(t, s, r)
		return resp.StatusCode
	}
	if code := read(c); code != 200 {
		t.Fatalf("logged in: read %d, want 200", code)
	}
	a := newAuth(token)
	expired, _ := a.newSession(time.Now().Add(-13 * time.Hour))
	other, _ := a.newSession(time.Now())
	tampered := strings.Replace(other, ".", "9.", 1) // a later expiry under the same mac
	for name, v := range map[string]string{"expired": expired, "tampered": tampered, "old token-derived": a.derive("session"), "garbage": "x.y"} {
		if code := read(&http.Cookie{Name: sessionCookie, Value: v}); code != 401 {
			t.Errorf("%s session: read %d, want 401", name, code)
		}
	}

	r := httptest.NewRequest(http.MethodPost, "/logout", nil)
	r.AddCookie(c)
	if resp, _ := do(t, s, r); resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %d %+v, want a redirect clearing the cookie", resp.StatusCode, resp.Cookies())
	}
	if code := read(c); code != 401 {
		t.Errorf("the logged-out cookie still reads: %d, want 401", code)
	}
	act := httptest.NewRequest(http.MethodPost, "/jobs/nightly/run", strings.NewReader(url.Values{"csrf": {a.csrf()}}.Encode()))
	act.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	act.AddCookie(c)
	if resp, _ := do(t, s, act); resp.StatusCode != 401 {
		t.Errorf("the logged-out cookie still acts: %d, want 401", resp.StatusCode)
	}
	if code := read(&http.Cookie{Name: sessionCookie, Value: other}); code != 200 {
		t.Errorf("another session was revoked with this one: %d", code)
	}
}

// TestLoginIsRateLimited: the attempt past the budget of one client address gets 429, right
// token or not; another address keeps its own budget, and a new window restores it.
func TestLoginIsRateLimited(t *testing.T) {
	const token = "s3cret-token"
	s := New(Options{Token: token, LoginAttempts: 5, LoginWindow: 200 * time.Millisecond}, sampleSource())
	for i := range 5 {
		if resp := postLogin(t, s, fmt.Sprintf("guess-%d", i), "198.51.100.7:4000", nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("attempt %d: %d, want 303", i+1, resp.StatusCode)
		}
	}
	resp := postLogin(t, s, token, "198.51.100.7:4001", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || len(resp.Cookies()) != 0 {
		t.Errorf("6th attempt: %d (Retry-After %q, %d cookies), want 429 without a session", resp.StatusCode, resp.Header.Get("Retry-After"), len(resp.Cookies()))
	}
	if resp := postLogin(t, s, token, "203.0.113.9:4000", nil); resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Errorf("another client: %d, want 303 with a session", resp.StatusCode)
	}
	time.Sleep(250 * time.Millisecond)
	if resp := postLogin(t, s, token, "198.51.100.7:4002", nil); resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Errorf("after the window: %d, want 303 with a session", resp.StatusCode)
	}
}

// TestRequestLimits: bodies are capped, and the server bounds every phase of a connection.
func TestRequestLimits(t *testing.T) {
	const token = "s3cret-token"
	s := New(Options{Token: token}, sampleSource())
	big := "token=" + strings.Repeat("a", 1<<20)
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(big))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, _ := do(t, s, r); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MiB login body: %d, want 413", resp.StatusCode)
	}
	// A page action reads its form: the CSRF field past the cap is never seen.
	r = httptest.NewRequest(http.MethodPost, "/jobs/nightly/run", strings.NewReader(big+"&csrf="+newAuth(token).csrf()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	value, _ := newAuth(token).newSession(time.Now())
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
	if resp, _ := do(t, s, r); resp.StatusCode != http.StatusForbidden {
		t.Errorf("1 MiB action form: %d, want 403 (the form is cut at the cap)", resp.StatusCode)
	}
	srv := s.HTTPServer()
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 || srv.Handler != s {
		t.Errorf("http.Server lacks a limit: %+v", srv)
	}

	// Slowloris: a client that never finishes its headers is cut off at ReadHeaderTimeout.
	srv.ReadHeaderTimeout = 200 * time.Millisecond
	ts := httptest.NewUnstartedServer(s)
	ts.Config = srv
	ts.Start()
	defer ts.Close()
	conn, err := (&net.Dialer{}).Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, _ = io.ReadAll(conn)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a half-sent request held its connection for %s", took)
	}
}

// TestProblemsAtTheTop: a failed last run, a source past its schedule, a partial newest snapshot
// and a damaged manifest are each at the top of the page and in the API with their fix; the page
// never says "No problems found" while any holds, and says it when none does.
func TestProblemsAtTheTop(t *testing.T) {
	now := time.Now().UTC()
	healthy := func() jobs.Status {
		return jobs.Status{Now: now, Storage: "file:///repo",
			Jobs:      []jobs.JobStatus{{Name: "nightly", Action: "backup", Schedule: "0 3 * * *", LastRun: &jobs.Run{ID: "r0", Start: now.Add(-time.Hour), Outcome: jobs.OutcomeSucceeded}}},
			Snapshots: []jobs.SnapshotSummary{{ID: "20261127T0300-aa", Time: now.Add(-time.Hour), Status: store.StatusComplete}},
			Freshness: []jobs.Freshness{{Source: "clickhouse", Snapshot: "20261127T0300-aa", AgeSeconds: 3600, IntervalSeconds: 86400, Level: jobs.LevelOK, Reason: "within its schedule"}},
		}
	}
	cases := []struct {
		name   string
		change func(*jobs.Status)
		want   []string
	}{
		{"healthy", func(*jobs.Status) {}, nil},
		{"failed run", func(s *jobs.Status) {
			s.Jobs[0].LastRun = &jobs.Run{ID: "r9", Start: now, Outcome: jobs.OutcomeFailed, Error: "load partition: unexpected EOF […]"}
		}, []string{"job nightly: last run r9 failed", "tracevault backup"}},
		{"stale source", func(s *jobs.Status) {
			s.Freshness[0].AgeSeconds, s.Freshness[0].Level, s.Freshness[0].Reason = 2*86400, jobs.LevelWarn, "a scheduled backup was missed"
		}, []string{"clickhouse: newest complete snapshot", "tracevault backup --only clickhouse"}},
		{"partial newest snapshot", func(s *jobs.Status) {
			s.Snapshots = append([]jobs.SnapshotSummary{{ID: "20261127T0400-bb", Status: store.StatusPartial, Error: "clickhouse: boom"}}, s.Snapshots...)
		}, []string{"newest snapshot 20261127T0400-bb is partial", "--allow-partial"}},
		{"damaged manifest", func(s *jobs.Status) {
			s.DamagedManifests = []store.DamagedManifest{{Name: "snapshots/20261101T0300-cc.json", Error: "invalid character"}}
		}, []string{"damaged manifest snapshots/20261101T0300-cc.json", "tracevault delete --damaged"}},
	}
	for _, tc := range cases {
		st := healthy()
		tc.change(&st)
		st.Problems = jobs.StatusProblems(st)
		src := sampleSource()
		src.st, src.report, src.migs = st, nil, nil
		s := New(Options{}, src)
		_, body := get(t, s, "/")
		top, _, _ := strings.Cut(body, "<h2>Freshness")
		if len(tc.want) == 0 {
			if !strings.Contains(top, "No problems found") {
				t.Errorf("%s: the top lacks \"No problems found\":\n%s", tc.name, top)
			}
		} else if strings.Contains(body, "No problems found") || !strings.Contains(top, `id="problems"`) {
			t.Errorf("%s: the top shows no problem:\n%s", tc.name, top)
		}
		_, api := get(t, s, "/api/v1/problems")
		var ps []jobs.Problem
		decodeStrict(t, api, &ps)
		if len(ps) != len(tc.want)/2 && !(len(tc.want) == 0 && len(ps) == 0) {
			t.Errorf("%s: API lists %d problems %+v", tc.name, len(ps), ps)
		}
		for _, w := range tc.want {
			if !strings.Contains(top, template.HTMLEscapeString(w)) || !strings.Contains(api, w) {
				t.Errorf("%s: %q missing at the top or in the API:\n%s\n%s", tc.name, w, top, api)
			}
		}
	}
}

// TestSecureCookieBehindProxy: the session cookie is Secure over TLS to the daemon, when a
// trusted proxy says X-Forwarded-Proto: https, and always when so configured; the header from an
// address outside the trusted list, or with no list, is ignored.
func TestSecureCookieBehindProxy(t *testing.T) {
	const token = "s3cret-token"
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	https := func(r *http.Request) { r.Header.Set("X-Forwarded-Proto", "https") }
	cases := []struct {
		name   string
		opts   Options
		remote string
		mod    func(*http.Request)
		secure bool
	}{
		{"TLS to the daemon", Options{}, "192.0.2.1:1234", func(r *http.Request) { r.TLS = &tls.ConnectionState{} }, true},
		{"plain HTTP", Options{TrustedProxies: trusted}, "10.1.2.3:1234", nil, false},
		{"trusted proxy says https", Options{TrustedProxies: trusted}, "10.1.2.3:1234", https, true},
		{"trusted IPv6 proxy says https", Options{TrustedProxies: trusted}, "[fd00::7]:1234", https, true},
		{"trusted proxy appended https", Options{TrustedProxies: trusted}, "10.1.2.3:1234",
			func(r *http.Request) { r.Header.Set("X-Forwarded-Proto", "http, https") }, true},
		{"trusted proxy says http", Options{TrustedProxies: trusted}, "10.1.2.3:1234",
			func(r *http.Request) { r.Header.Set("X-Forwarded-Proto", "https, http") }, false},
		{"untrusted address says https", Options{TrustedProxies: trusted}, "192.0.2.1:1234", https, false},
		{"no trusted proxies", Options{}, "10.1.2.3:1234", https, false},
		{"always", Options{AlwaysSecureCookies: true}, "192.0.2.1:1234", nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Token = token
			s := New(c.opts, sampleSource())
			resp := postLogin(t, s, token, c.remote, c.mod)
			if len(resp.Cookies()) != 1 {
				t.Fatalf("login: %d cookies", len(resp.Cookies()))
			}
			if got := resp.Cookies()[0].Secure; got != c.secure {
				t.Errorf("login cookie Secure = %v, want %v", got, c.secure)
			}
			r := httptest.NewRequest(http.MethodPost, "/logout", nil)
			r.RemoteAddr = c.remote
			if c.mod != nil {
				c.mod(r)
			}
			out, _ := do(t, s, r)
			if len(out.Cookies()) != 1 || out.Cookies()[0].Secure != c.secure {
				t.Errorf("logout cookie %+v, want Secure = %v", out.Cookies(), c.secure)
			}
		})
	}
}
