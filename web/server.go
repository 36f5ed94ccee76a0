// Package web serves the status page and JSON API. It reads state only through the small
// interfaces below, so the daemon, the catalog and the cluster check stay unaware of HTTP.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

//go:embed templates/*.html
var templates embed.FS

// StatusSource is what the page shows; jobs.Daemon implements it.
type StatusSource interface {
	Status(ctx context.Context) (jobs.Status, error)
}

// Options configure the server.
type Options struct {
	Version string
	// PanelTimeout bounds each backend read so a dead backend never hangs the page.
	PanelTimeout time.Duration
	Log          *slog.Logger
}

// Server is the HTTP handler for the page, the API and the health endpoints.
type Server struct {
	opts Options
	src  StatusSource
	page *template.Template
	mux  *http.ServeMux
}

// New builds the handler.
func New(opts Options, src StatusSource) *Server {
	if opts.PanelTimeout == 0 {
		opts.PanelTimeout = 1500 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &Server{
		opts: opts,
		src:  src,
		page: template.Must(template.New("").Funcs(funcs).ParseFS(templates, "templates/*.html")),
		mux:  http.NewServeMux(),
	}
	s.mux.HandleFunc("GET /{$}", s.index)
	s.mux.HandleFunc("GET /api/v1/status", s.apiStatus)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
	s.mux.ServeHTTP(w, r)
}

type pageData struct {
	Version string
	Status  jobs.Status
	Err     string
}

func (s *Server) status(ctx context.Context) (jobs.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.PanelTimeout)
	defer cancel()
	return s.src.Status(ctx)
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	st, err := s.status(r.Context())
	data := pageData{Version: s.opts.Version, Status: st}
	if err != nil {
		data.Err = err.Error()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.page.ExecuteTemplate(w, "index.html", data); err != nil {
		s.opts.Log.Error("render status page", "err", err)
	}
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.status(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if _, err := s.status(r.Context()); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

var funcs = template.FuncMap{
	"utc": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"rel": relative,
	"duration": func(start, end time.Time) string {
		if end.IsZero() {
			return "…"
		}
		return end.Sub(start).Round(100 * time.Millisecond).String()
	},
	"bytes": store.HumanBytes,
	"outcomeClass": func(o string) string {
		switch o {
		case jobs.OutcomeSucceeded:
			return "ok"
		case jobs.OutcomeRunning, jobs.OutcomeSkipped:
			return "warn"
		}
		return "bad"
	},
}

// relative renders a time as "in 3 h" or "3 h ago" next to its UTC value.
func relative(t time.Time) string {
	d := time.Until(t)
	suffix := ""
	if d < 0 {
		d, suffix = -d, " ago"
	}
	var s string
	switch {
	case d < time.Minute:
		s = d.Round(time.Second).String()
	case d < time.Hour:
		s = d.Round(time.Minute).String()
	case d < 48*time.Hour:
		s = fmt.Sprintf("%d h", int(d.Round(time.Hour)/time.Hour))
	default:
		s = fmt.Sprintf("%d d", int(d/(24*time.Hour)))
	}
	if suffix == "" {
		return "in " + s
	}
	return s + suffix
}
