package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/web"
)

func (a *app) serveCommand() *cobra.Command {
	var grace time.Duration
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: scheduled jobs and the status page",
		Long: `Run tracevault as a daemon: it serves the status page and JSON API on [web] listen
and runs the [[jobs]] of the configuration on their schedules: a job never overlaps itself (the
skipped occurrence is recorded), a job missed while the daemon was down runs once at start
(catch_up = "once"), and every run is kept in the repository's run history.
Several daemons may share one configuration (e.g. two pods): each job occurrence runs on exactly
one of them, claimed through ZooKeeper (or a lease in the repository without ZooKeeper); when the
daemon running a job dies, another takes over the next occurrence and records the dead run as
interrupted. Prometheus metrics are served on /metrics.
SIGTERM or SIGINT stops scheduling and lets running jobs finish within --grace; after that they
are cancelled, recorded as interrupted, and their snapshots recorded as partial.`,
		Example: examples(
			"tracevault serve --config /etc/tracevault.toml --log-format json",
			"curl -s http://127.0.0.1:8480/api/v1/status | jq .",
			`curl -s -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8480/api/v1/jobs/nightly/run`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			d, err := jobs.NewDaemon(cfg, a.log)
			if err != nil {
				return usage(err)
			}
			if err := d.Start(cmd.Context()); err != nil {
				return failed(fmt.Errorf("start daemon: %w", err))
			}
			defer d.Stop(grace)
			ln, err := net.Listen("tcp", cfg.Web.Listen)
			if err != nil {
				return failed(fmt.Errorf("listen on %s ([web] listen): %w", cfg.Web.Listen, err))
			}
			page := web.New(web.Options{
				Version:             version,
				Token:               cfg.Web.Token.Reveal(),
				RequireTokenForRead: cfg.Web.RequireTokenForRead,
				AlwaysSecureCookies: cfg.Web.SecureCookies == "always",
				TrustedProxies:      cfg.Web.TrustedProxyPrefixes(),
				Metrics:             promhttp.HandlerFor(d.Metrics(), promhttp.HandlerOpts{}),
				Log:                 a.log,
			}, d)
			srv := page.HTTPServer()
			fmt.Fprintf(cmd.OutOrStdout(), "tracevault status page: http://%s/\n", ln.Addr())
			a.log.Info("serving", "listen", ln.Addr().String(), "jobs", len(cfg.Jobs), "storage", cfg.Storage.URL)
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				return failed(fmt.Errorf("status page server: %w", err))
			case <-cmd.Context().Done():
			}
			a.log.Info("shutting down")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return failed(fmt.Errorf("shut down status page: %w", err))
			}
			return nil
		},
	}
	c.Flags().DurationVar(&grace, "grace", 5*time.Minute, "on shutdown, how long running jobs may take to finish before they are cancelled")
	return c
}
