package jobs

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
	"github.com/tracevault/tracevault/snapshot/store"
)

// pitrRunner keeps the PostgreSQL change stream running for the daemon's life. Daemons sharing a
// repository contend through the slot itself: only one can stream from it, and when it dies the
// server frees the slot and a survivor's next attempt resumes from the last durable segment.
type pitrRunner struct {
	s       *pitr.Streamer
	warnMiB int64
	started bool
	done    chan struct{}
}

// pitrRetry is how long a failed or refused stream waits before trying again (a variable for
// the takeover test).
var pitrRetry = 10 * time.Second

func newPITR(cfg *config.Config, d *Daemon) *pitrRunner {
	pg := cfg.Postgres
	if !pg.PITR || pg.DSN == "" {
		return nil
	}
	r := &pitrRunner{warnMiB: pg.PITRWarnRetainedMiB, done: make(chan struct{})}
	if r.warnMiB <= 0 {
		r.warnMiB = 1024
	}
	r.s = &pitr.Streamer{DSN: pg.DSN.Reveal(), Schemas: pg.Schemas, Slot: pg.PITRSlot, Publication: pg.PITRSlot,
		Interval: time.Duration(pg.PITRSegmentInterval), Bytes: pg.PITRSegmentMiB << 20, ChainEvery: time.Duration(pg.PITRChainInterval),
		Base: postgres.Source{Parallel: pg.Parallel, PGDump: pg.PGDump}, Log: d.log.With("component", "pitr"),
		Event: d.pitrEvent}
	d.metrics.reg.MustRegister(r)
	d.metrics.recovery.live = func() (string, time.Time) { return config.SourcePostgres, r.s.State().RecoveryPoint }
	return r
}

// run streams until ctx ends, retrying after failures.
func (r *pitrRunner) run(ctx context.Context, d *Daemon) {
	defer close(r.done)
	for ctx.Err() == nil {
		err := r.s.Run(ctx, d.repo)
		if ctx.Err() != nil {
			return
		}
		d.log.Error("point-in-time recovery stream stopped; retrying", "err", err, "retry_in", pitrRetry)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pitrRetry):
		}
	}
}

// pitrChainWith starts a new chain after backup set m if [postgres] pitr_chain_with_backup asks
// for one with each set holding a full PostgreSQL snapshot.
func (d *Daemon) pitrChainWith(m *store.Manifest) {
	if d.pitr == nil || !d.cfg.Postgres.PITRChainWithBackup || m == nil || m.Status != store.StatusComplete {
		return
	}
	for _, c := range m.Components {
		if c.Source == config.SourcePostgres && c.Status == store.StatusComplete {
			d.pitr.s.NewChainAfter(m.End, fmt.Sprintf("backup set %s holds a full PostgreSQL snapshot ([postgres] pitr_chain_with_backup)", m.ID))
			return
		}
	}
}

// pitrEvent records what the stream says an operator must know (a new base and why) in the
// shared run history.
func (d *Daemon) pitrEvent(what string) {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	d.record(Run{ID: newRunID(), Job: "postgres-pitr", Action: "pitr", Trigger: "stream", Host: host, Start: now, End: now,
		Outcome: OutcomeSucceeded, Error: what})
}

var (
	pitrRetainedDesc = prometheus.NewDesc("tracevault_pitr_slot_retained_wal_bytes",
		"Bytes of WAL the PostgreSQL server keeps for tracevault's replication slot (current LSN - restart_lsn).", nil, nil)
	pitrWarnDesc = prometheus.NewDesc("tracevault_pitr_slot_retained_wal_warn_bytes",
		"Threshold of retained WAL past which the status page warns ([postgres] pitr_warn_retained_mib).", nil, nil)
	pitrChangesDesc = prometheus.NewDesc("tracevault_pitr_changes_total",
		"Row changes this daemon made durable in the repository.", nil, nil)
	pitrBrokenDesc = prometheus.NewDesc("tracevault_pitr_chain_broken",
		"1 while the chain this daemon streams is not continuous (a segment record is missing): restores reach only tracevault_recovery_point_age_seconds's point, before the break.", nil, nil)
)

func (r *pitrRunner) Describe(ch chan<- *prometheus.Desc) {
	ch <- pitrRetainedDesc
	ch <- pitrWarnDesc
	ch <- pitrChangesDesc
	ch <- pitrBrokenDesc
}

func (r *pitrRunner) Collect(ch chan<- prometheus.Metric) {
	st := r.s.State()
	ch <- prometheus.MustNewConstMetric(pitrRetainedDesc, prometheus.GaugeValue, float64(st.RetainedBytes))
	ch <- prometheus.MustNewConstMetric(pitrWarnDesc, prometheus.GaugeValue, float64(r.warnMiB<<20))
	ch <- prometheus.MustNewConstMetric(pitrChangesDesc, prometheus.CounterValue, float64(st.Changes))
	broken := 0.0
	if st.Broken != "" {
		broken = 1
	}
	ch <- prometheus.MustNewConstMetric(pitrBrokenDesc, prometheus.GaugeValue, broken)
}

// pitrStatus puts the stream's recovery point into postgres' freshness and says what needs an
// operator: a stalled stream, a slot holding back too much WAL.
func (d *Daemon) pitrStatus(s *Status) []Problem {
	r := d.pitr
	if r == nil {
		return nil
	}
	return r.status(r.s.State(), s)
}

func (r *pitrRunner) status(st pitr.State, s *Status) []Problem {
	var out []Problem
	if st.Broken != "" {
		// The recovery point is then the break's, not the last segment's: the page must not
		// look fresh while nothing after the break restores.
		out = append(out, Problem{What: st.Broken, Fix: "the daemon takes a new base; until it is done, restores reach only the point named. 'tracevault verify --all' names the records around the break"})
	}
	if st.RecoveryPoint.IsZero() {
		if st.LastError != "" {
			out = append(out, Problem{What: "point-in-time recovery stream not running: " + st.LastError, Fix: pitrFix})
		}
		return out
	}
	age := s.Now.Sub(st.RecoveryPoint).Seconds()
	for i := range s.Freshness {
		f := &s.Freshness[i]
		if f.Source != config.SourcePostgres || (!f.Time.IsZero() && f.Time.After(st.RecoveryPoint)) {
			continue
		}
		f.Time, f.AgeSeconds = st.RecoveryPoint, age
		f.Level, f.Reason = LevelOK, fmt.Sprintf("point-in-time recovery: changes streamed up to %s (LSN %s); the slot retains %d MiB of WAL", st.RecoveryPoint.Format(time.RFC3339), st.DurableLSN, st.RetainedBytes>>20)
		switch {
		case st.Broken != "":
			f.Level, f.Reason = LevelBad, "point-in-time recovery: "+st.Broken
		case st.WALStatus == "lost" || st.WALStatus == "unreserved":
			f.Level = LevelBad
		case age > 60 || st.RetainedBytes > r.warnMiB<<20:
			f.Level = LevelWarn
		}
	}
	if st.RetainedBytes > r.warnMiB<<20 {
		out = append(out, Problem{
			What: fmt.Sprintf("replication slot %s holds back %d MiB of WAL on the PostgreSQL server (warning at %d MiB): the stream is not keeping up or is stopped (%s)", r.s.Slot, st.RetainedBytes>>20, r.warnMiB, st.LastError),
			Fix:  "fix the stream (the daemon's log); if it cannot be fixed, stop the daemon and drop the slot: SELECT pg_drop_replication_slot('" + r.s.Slot + "') (the next start takes a new base; restores before it still work up to the last segment)"})
	}
	if st.LastError != "" && age > 60 {
		out = append(out, Problem{What: "point-in-time recovery stream stalled: " + st.LastError, Fix: pitrFix})
	}
	return out
}

const pitrFix = "check [postgres] dsn (a role with REPLICATION, wal_level = logical on the server) and the daemon's log; the stream retries every 10 s"
