// Package web serves the status page and JSON API. It reads state only through the small
// interfaces below, so the daemon, the catalog and the cluster check stay unaware of HTTP.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/clickhouse/replica"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

//go:embed templates/*.html
var templates embed.FS

// StatusSource is the schedule, the run history, the catalog and freshness.
type StatusSource interface {
	Status(ctx context.Context) (jobs.Status, error)
}

// Catalog gives one snapshot's manifest.
type Catalog interface {
	Snapshot(ctx context.Context, id string) (*store.Manifest, error)
}

// ZooKeeperSource reports the ensemble's health.
type ZooKeeperSource interface {
	ZooKeeper(ctx context.Context) ([]zookeeper.ServerHealth, error)
}

// ReplicaSource runs the replica consistency check (nil report: no ClickHouse configured).
type ReplicaSource interface {
	Replicas(ctx context.Context) (*replica.Report, error)
}

// MigrationSource reports each target's schema_migrations against its files.
type MigrationSource interface {
	Migrations(ctx context.Context) ([]jobs.MigrationState, error)
}

// Actions are what an operator holding the token may do from the page or the API.
type Actions interface {
	Trigger(job, trigger string) (jobs.Run, error)
	VerifySnapshot(ctx context.Context, id string) (store.VerifyReport, error)
}

// Source is everything the server reads and does; jobs.Daemon implements it.
type Source interface {
	StatusSource
	Catalog
	ZooKeeperSource
	ReplicaSource
	MigrationSource
	Actions
}

// Options configure the server.
type Options struct {
	Version string
	// PanelTimeout bounds each backend read so a dead backend never hangs the page.
	PanelTimeout time.Duration
	// Token enables actions; empty leaves the page read-only.
	Token string
	// RequireTokenForRead also protects the page and the read API.
	RequireTokenForRead bool
	// AlwaysSecureCookies marks the session cookie Secure on every response: for a daemon that
	// is reached only through a TLS-terminating proxy (the chart's Ingress with tls).
	AlwaysSecureCookies bool
	// TrustedProxies are the peers whose X-Forwarded-Proto is believed; from any other address
	// the header is ignored, and only a TLS connection to the daemon makes the cookie Secure.
	TrustedProxies []netip.Prefix
	// PanelCacheTTL is how long a panel's result (the catalog, the cluster check, ZooKeeper,
	// migrations) is served to every client before it is read again; default 5 s.
	PanelCacheTTL time.Duration
	// LoginAttempts per client address per LoginWindow; defaults 10 per minute.
	LoginAttempts int
	LoginWindow   time.Duration
	// Metrics serves /metrics when set.
	Metrics http.Handler
	Log     *slog.Logger
}

// Limits of every request the server accepts: the page and the API take no uploads.
const (
	maxBodyBytes   = 64 << 10
	maxHeaderBytes = 64 << 10
)

// Server is the HTTP handler for the page, the API and the health endpoints.
type Server struct {
	opts  Options
	src   Source
	auth  *auth
	login *limiter
	tmpl  *template.Template
	mux   *http.ServeMux

	statusPanel     *panel[jobs.Status]
	zooKeeperPanel  *panel[[]zookeeper.ServerHealth]
	replicasPanel   *panel[*replica.Report]
	migrationsPanel *panel[[]jobs.MigrationState]
	snapshotPanels  *keyedPanel[*store.Manifest]
	trends          *trendsCache // nil: the source has no history to draw
}

// New builds the handler.
func New(opts Options, src Source) *Server {
	if opts.PanelTimeout == 0 {
		opts.PanelTimeout = 1500 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.PanelCacheTTL == 0 {
		opts.PanelCacheTTL = 5 * time.Second
	}
	if opts.LoginAttempts == 0 {
		opts.LoginAttempts = 10
	}
	if opts.LoginWindow == 0 {
		opts.LoginWindow = time.Minute
	}
	s := &Server{
		opts:  opts,
		src:   src,
		auth:  newAuth(opts.Token),
		login: newLimiter(opts.LoginAttempts, opts.LoginWindow),
		tmpl:  template.Must(template.New("").Funcs(funcs).ParseFS(templates, "templates/*.html")),
		mux:   http.NewServeMux(),

		statusPanel:     newPanel(src.Status, opts.PanelTimeout, opts.PanelCacheTTL),
		zooKeeperPanel:  newPanel(src.ZooKeeper, opts.PanelTimeout, opts.PanelCacheTTL),
		replicasPanel:   newPanel(src.Replicas, opts.PanelTimeout, opts.PanelCacheTTL),
		migrationsPanel: newPanel(src.Migrations, opts.PanelTimeout, opts.PanelCacheTTL),
		snapshotPanels:  newKeyedPanel(src.Snapshot, opts.PanelTimeout, opts.PanelCacheTTL),
		trends:          newTrendsCache(src),
	}
	read := s.requireRead
	s.mux.Handle("GET /{$}", read(s.index))
	s.mux.Handle("GET /snapshots/{id}", read(s.snapshotPage))
	s.mux.HandleFunc("POST /login", s.handleLogin)
	s.mux.HandleFunc("POST /logout", s.logout)
	s.mux.HandleFunc("POST /jobs/{name}/run", s.runJob)
	s.mux.HandleFunc("POST /snapshots/{id}/verify", s.verifySnapshot)

	s.mux.Handle("GET /api/v1/status", read(s.apiStatus))
	s.mux.Handle("GET /api/v1/jobs", read(s.apiStatusPart(func(st jobs.Status) any { return st.Jobs })))
	s.mux.Handle("GET /api/v1/runs", read(s.apiStatusPart(func(st jobs.Status) any { return st.Runs })))
	s.mux.Handle("GET /api/v1/snapshots", read(s.apiStatusPart(func(st jobs.Status) any { return st.Snapshots })))
	s.mux.Handle("GET /api/v1/snapshots/{id}", read(s.apiSnapshot))
	s.mux.Handle("GET /api/v1/problems", read(s.apiProblems))
	s.mux.Handle("GET /api/v1/zookeeper", read(apiPanel(s.zooKeeperPanel)))
	s.mux.Handle("GET /api/v1/migrations", read(apiPanel(s.migrationsPanel)))
	s.mux.Handle("GET /api/v1/replicas", read(apiPanel(s.replicasPanel)))
	s.mux.Handle("GET /api/v1/trends", read(s.apiTrends))
	s.mux.HandleFunc("POST /api/v1/jobs/{name}/run", s.runJob)
	s.mux.HandleFunc("POST /api/v1/snapshots/{id}/verify", s.verifySnapshot)

	if opts.Metrics != nil {
		s.mux.Handle("GET /metrics", read(opts.Metrics.ServeHTTP))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	s.mux.ServeHTTP(w, r)
}

// HTTPServer is the server to run the handler with: every phase of a connection is bounded, so
// slow or idle clients cannot pile up connections. WriteTimeout covers the page and the API (each
// panel is bounded by PanelTimeout); a snapshot verify extends its own deadline.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.opts.Log.Handler(), slog.LevelWarn),
	}
}

func (s *Server) requireRead(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.auth.mayRead(r, s.opts.RequireTokenForRead) {
			h(w, r)
			return
		}
		if r.URL.Path == "/" {
			w.WriteHeader(http.StatusUnauthorized)
			s.render(w, "login.html", s.pageBase(r, "tracevault — log in"))
			return
		}
		writeJSON(w, http.StatusUnauthorized, apiError{"reading needs the [web] token: Authorization: Bearer <token>"})
	})
}

// bounded runs one panel's read with the panel timeout, and returns even if the read ignores its
// context: a hung backend costs its panel, never the page.
func bounded[T any](ctx context.Context, timeout time.Duration, read func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := read(ctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("no answer within %s: %w", timeout, ctx.Err())
	}
}

func (s *Server) status(ctx context.Context) (jobs.Status, error) {
	return s.statusPanel.get(ctx)
}

// staleHeader names, in seconds, how old a status answer is when the page served the newest
// successful read because a fresh one overran (see panel.answer); absent on a fresh answer.
const staleHeader = "X-Tracevault-Stale-Seconds"

// panels reads every panel of the index page at once, and gathers their problems.
func (s *Server) panels(ctx context.Context, p *indexPage) {
	var wg sync.WaitGroup
	wg.Go(func() {
		a := s.statusPanel.answer(ctx)
		p.Status, p.StatusErr, p.StatusStale = a.val, errText(a.err), a.stale
	})
	wg.Go(func() {
		zk, err := s.zooKeeperPanel.get(ctx)
		p.ZooKeeper, p.ZooKeeperErr = zk, errText(err)
	})
	wg.Go(func() {
		rep, err := s.replicasPanel.get(ctx)
		p.Replicas, p.ReplicasErr = rep, errText(err)
	})
	wg.Go(func() {
		ms, err := s.migrationsPanel.get(ctx)
		p.Migrations, p.MigrationsErr = ms, errText(err)
	})
	wg.Wait()
	p.Problems = problems(*p)
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	p := indexPage{base: s.pageBase(r, "tracevault status")}
	// Reload by itself unless someone may be typing the token into the login form.
	if !s.auth.enabled() || p.LoggedIn {
		p.Refresh = 30
	}
	var charts chartsPanel
	var wg sync.WaitGroup
	wg.Go(func() { charts = s.charts(r.Context()) })
	s.panels(r.Context(), &p)
	wg.Wait()
	s.render(w, "index.html", indexWithCharts{p, charts})
}

// apiProblems lists the problems at the top of the page: an empty list means none.
func (s *Server) apiProblems(w http.ResponseWriter, r *http.Request) {
	var p indexPage
	s.panels(r.Context(), &p)
	if p.Problems == nil {
		p.Problems = []jobs.Problem{}
	}
	writeJSON(w, http.StatusOK, p.Problems)
}

func (s *Server) snapshotPage(w http.ResponseWriter, r *http.Request) {
	m, err := s.snapshotPanels.get(r.Context(), r.PathValue("id"))
	p := snapshotPage{base: s.pageBase(r, "tracevault snapshot "+r.PathValue("id")), Err: errText(err)}
	if m != nil {
		p.Manifest, p.Totals, p.Tables, p.Scope = m, m.Totals(), groupObjects(m.Objects), m.ScopeDetail(nil)
	} else {
		w.WriteHeader(http.StatusNotFound)
	}
	s.render(w, "snapshot.html", p)
}

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.tmpl.ExecuteTemplate(w, name, data); err != nil {
		s.opts.Log.Error("render page", "page", name, "err", err)
	}
}

func (s *Server) pageBase(r *http.Request, title string) base {
	return base{Title: title, Version: s.opts.Version, Actions: s.auth.enabled(), LoggedIn: s.auth.session(r), CSRF: s.auth.csrf(), Flash: r.URL.Query().Get("flash")}
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if ok, wait := s.login.allow(r, time.Now()); !ok {
		s.opts.Log.Warn("too many login attempts", "client", r.RemoteAddr)
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		http.Error(w, "too many login attempts from your address: wait a minute", http.StatusTooManyRequests)
		return
	}
	if err := r.ParseForm(); err != nil {
		code := http.StatusBadRequest
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			code = http.StatusRequestEntityTooLarge
		}
		http.Error(w, "bad login form: "+errText(err), code)
		return
	}
	if !s.auth.enabled() || !sameSite(r) || !equal(r.PostFormValue("token"), s.opts.Token) {
		http.Redirect(w, r, "/?flash="+urlQuery("wrong token (or none configured)"), http.StatusSeeOther)
		return
	}
	value, expires := s.auth.newSession(time.Now())
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.secure(r), Expires: expires, MaxAge: int(sessionTTL.Seconds())})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	s.auth.revoke(r)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure(r)})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// isAPI tells the JSON endpoints from the page's form posts, which answer with a redirect.
func isAPI(r *http.Request) bool { return len(r.URL.Path) > 4 && r.URL.Path[:5] == "/api/" }

func (s *Server) act(w http.ResponseWriter, r *http.Request, do func() (any, string, error)) {
	if code, why := s.auth.mayAct(r); code != 0 {
		s.opts.Log.Warn("refused an action", "path", r.URL.Path, "status", code, "reason", why)
		writeJSON(w, code, apiError{why})
		return
	}
	v, flash, err := do()
	if err != nil {
		flash = errText(err)
	}
	s.statusPanel.forget() // show the started run or the verify's outcome on the next load
	if !isAPI(r) {
		http.Redirect(w, r, "/?flash="+urlQuery(flash), http.StatusSeeOther)
		return
	}
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, jobs.ErrNoJob) || errors.Is(err, store.ErrNotFound) {
			// What the path names does not exist: a client must not retry it as a bad request.
			code = http.StatusNotFound
		}
		writeJSON(w, code, apiError{errText(err)})
		return
	}
	writeJSON(w, http.StatusAccepted, v)
}

func (s *Server) runJob(w http.ResponseWriter, r *http.Request) {
	s.act(w, r, func() (any, string, error) {
		run, err := s.src.Trigger(r.PathValue("name"), jobs.TriggerManual)
		if err != nil {
			return nil, "", err
		}
		s.opts.Log.Info("job started from the status page", "job", run.Job, "run", run.ID)
		return run, fmt.Sprintf("started run %s of job %s", run.ID, run.Job), nil
	})
}

func (s *Server) verifySnapshot(w http.ResponseWriter, r *http.Request) {
	s.act(w, r, func() (any, string, error) {
		const verifyTimeout = 5 * time.Minute
		// Past the server's WriteTimeout: a large snapshot's verify answers when it is done.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(verifyTimeout + 30*time.Second))
		ctx, cancel := context.WithTimeout(r.Context(), verifyTimeout)
		defer cancel()
		rep, err := s.src.VerifySnapshot(ctx, r.PathValue("id"))
		if err != nil {
			return nil, "", err
		}
		flash := fmt.Sprintf("snapshot %s: %d objects present with their recorded sizes", r.PathValue("id"), rep.Objects)
		if len(rep.Problems) > 0 {
			flash = fmt.Sprintf("snapshot %s: %d bad objects, first %s: %s", r.PathValue("id"), len(rep.Problems), rep.Problems[0].Object, rep.Problems[0].Error)
		}
		return rep, flash, nil
	})
}

type apiError struct {
	Error string `json:"error"`
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	s.apiStatusPart(func(st jobs.Status) any { return st })(w, r)
}

func (s *Server) apiStatusPart(part func(jobs.Status) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := s.statusPanel.answer(r.Context())
		if a.err != nil {
			writeJSON(w, http.StatusServiceUnavailable, apiError{errText(a.err)})
			return
		}
		if a.stale > 0 {
			w.Header().Set(staleHeader, strconv.Itoa(int(a.stale.Seconds())))
		}
		writeJSON(w, http.StatusOK, part(a.val))
	}
}

func (s *Server) apiSnapshot(w http.ResponseWriter, r *http.Request) {
	m, err := s.snapshotPanels.get(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrNoSuchScope):
		writeJSON(w, http.StatusNotFound, apiError{errText(err)})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, apiError{errText(err)})
	default:
		writeJSON(w, http.StatusOK, m)
	}
}

// apiPanel serves one panel's data as JSON.
func apiPanel[T any](p *panel[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := p.get(r.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, apiError{errText(err)})
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if _, err := s.status(r.Context()); err != nil {
		http.Error(w, "not ready: "+errText(err), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// errText is a panel's error as the page shows it: safe text, whatever the backend quoted.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return store.ErrorText(err.Error())
}
