package jobs

import (
	"context"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
)

// metrics are the daemon's Prometheus series. They live in the daemon's own registry so that
// tests and several daemons in one process never share global state.
type metrics struct {
	reg          *prometheus.Registry
	lastSuccess  *prometheus.GaugeVec
	lastDuration *prometheus.GaugeVec
	lastBytes    *prometheus.GaugeVec
	runs         *prometheus.CounterVec
	component    *prometheus.GaugeVec
	repoBytes    prometheus.Gauge
	repoSnaps    prometheus.Gauge
	drillSuccess prometheus.Gauge
	drillRestore *prometheus.GaugeVec
	// drills refreshes the two drill series from the shared run history before a scrape.
	drills   *drillProof
	recovery *recoveryAge
	// storedBytes is the last repository measurement, for the status page's storage panel.
	storedBytes atomic.Int64
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tracevault_job_last_success_timestamp_seconds",
			Help: "Unix time the job last finished successfully; alert on time() minus this."}, []string{"job"}),
		lastDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tracevault_job_last_duration_seconds",
			Help: "Duration of the job's last finished run."}, []string{"job"}),
		lastBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tracevault_job_last_bytes",
			Help: "Bytes the job's last finished run uploaded (new bytes of its snapshot)."}, []string{"job"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tracevault_job_runs_total",
			Help: "Runs this daemon finished, by outcome (succeeded, failed, skipped, interrupted)."}, []string{"job", "outcome"}),
		component: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tracevault_snapshot_component_duration_seconds",
			Help: "Duration of each source (postgres, clickhouse, zookeeper) in the last snapshot that ran it."}, []string{"source", "status"}),
		repoBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tracevault_repository_bytes",
			Help: "Stored bytes of all objects in the repository, measured after each run."}),
		repoSnaps: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tracevault_repository_snapshots",
			Help: "Snapshots in the repository, measured after each run."}),
		drillSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tracevault_drill_last_success_timestamp_seconds",
			Help: "Unix time a restore drill last proved a snapshot set restorable; alert on time() minus this."}),
		drillRestore: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tracevault_drill_restore_seconds",
			Help: "Seconds the last successful restore drill took to restore each source (its measured RTO)."}, []string{"source"}),
		recovery: &recoveryAge{desc: prometheus.NewDesc("tracevault_recovery_point_age_seconds",
			"Age of the newest complete snapshot holding each source: what a restore now would lose (RPO).", []string{"source"}, nil)},
	}
	m.drills = &drillProof{m: m}
	m.reg.MustRegister(m.drills, m.recovery)
	m.reg.MustRegister(m.lastSuccess, m.lastDuration, m.lastBytes, m.runs, m.component, m.repoBytes, m.repoSnaps,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeRun records a finished run; a skip says nothing about duration or bytes.
func (m *metrics) observeRun(r Run) {
	m.runs.WithLabelValues(r.Job, r.Outcome).Inc()
	if r.Outcome == OutcomeSkipped {
		return
	}
	m.lastDuration.WithLabelValues(r.Job).Set(r.End.Sub(r.Start).Seconds())
	m.lastBytes.WithLabelValues(r.Job).Set(float64(r.Bytes))
	if r.Outcome == OutcomeSucceeded {
		m.lastSuccess.WithLabelValues(r.Job).Set(float64(r.End.Unix()))
		m.observeDrill(r)
	}
}

// observeDrill records a successful drill run's proof and restore times, unless a newer proof
// is already recorded (runs arrive from this daemon and from the history, in any order).
func (m *metrics) observeDrill(r Run) {
	if r.Action != config.ActionDrill || r.Outcome != OutcomeSucceeded {
		return
	}
	m.drills.mu.Lock()
	defer m.drills.mu.Unlock()
	if !r.End.After(m.drills.proven) {
		return
	}
	m.drills.proven = r.End
	m.drillSuccess.Set(float64(r.End.Unix()))
	m.drillRestore.Reset()
	for src, sec := range r.RestoreSeconds {
		m.drillRestore.WithLabelValues(src).Set(sec)
	}
}

// drillProofRefresh is how stale the drill series may be at a scrape before the run history is
// read again: a read lists and fetches records from the repository.
const drillProofRefresh = 30 * time.Second

// drillProof exports the drill series from the run history, the record the status page's
// "last proven restore" reads: a drill run with `tracevault drill` or by another daemon is
// recorded only there, and the metric's alert must clear when the page says a drill succeeded.
type drillProof struct {
	m      *metrics
	mu     sync.Mutex
	proven time.Time // End of the newest successful drill exported
	// read returns the run history, newest first; nil (no repository) exports runs seen only.
	read   func(ctx context.Context) ([]Run, error)
	readAt time.Time
}

func (p *drillProof) Describe(ch chan<- *prometheus.Desc) {
	p.m.drillSuccess.Describe(ch)
	p.m.drillRestore.Describe(ch)
}

func (p *drillProof) Collect(ch chan<- prometheus.Metric) {
	p.refresh(context.Background())
	p.m.drillSuccess.Collect(ch)
	p.m.drillRestore.Collect(ch)
}

// refresh reads the history when the last read is older than drillProofRefresh; a failed read
// keeps what is exported (the page shows the history's error).
func (p *drillProof) refresh(ctx context.Context) {
	p.mu.Lock()
	read := p.read
	due := read != nil && time.Since(p.readAt) >= drillProofRefresh
	if due {
		p.readAt = time.Now()
	}
	p.mu.Unlock()
	if !due {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	runs, err := read(ctx)
	if err != nil {
		return
	}
	if r := LastProvenDrill(runs); r != nil {
		p.m.observeDrill(*r)
	}
}

// recoveryAge exports now minus each source's recovery point at every scrape, so the age grows
// between runs; the points are refreshed from the catalog whenever the repository is measured.
type recoveryAge struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	points map[string]time.Time
	// live, when set, is a source whose recovery point moves continuously (PostgreSQL's
	// point-in-time stream): the later of it and the snapshots' point counts.
	live func() (string, time.Time)
}

func (a *recoveryAge) set(points map[string]time.Time) {
	a.mu.Lock()
	a.points = points
	a.mu.Unlock()
}

func (a *recoveryAge) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

func (a *recoveryAge) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	points := a.points
	if a.live != nil {
		if src, t := a.live(); !t.IsZero() && t.After(points[src]) {
			points = maps.Clone(points)
			if points == nil {
				points = map[string]time.Time{}
			}
			points[src] = t
		}
	}
	for src, t := range points {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, now.Sub(t).Seconds(), src)
	}
}

// observeSnapshot records each source's duration in a snapshot set.
func (m *metrics) observeSnapshot(man *store.Manifest) {
	for _, c := range man.Components {
		m.component.DeletePartialMatch(prometheus.Labels{"source": c.Source})
		m.component.WithLabelValues(c.Source, c.Status).Set(c.End.Sub(c.Start).Seconds())
	}
}

// observeRepository measures the repository by listing its objects: cheap next to any backup.
func (m *metrics) observeRepository(ctx context.Context, repo *store.Repository) error {
	var bytes, snaps int64
	err := repo.Backend().List(ctx, "", func(o store.ObjectInfo) error {
		bytes += o.Size
		if strings.HasPrefix(o.Name, "snapshots/") {
			snaps++
		}
		return nil
	})
	if err != nil {
		return err
	}
	cat, err := repo.Catalog(ctx)
	if err != nil {
		return err
	}
	m.recovery.set(recoveryPoints(cat.Snapshots))
	m.storedBytes.Store(bytes)
	m.repoBytes.Set(float64(bytes))
	m.repoSnaps.Set(float64(snaps))
	return nil
}

// recoveryPoints are, per source, the start of the newest complete snapshot holding it: the
// age a restore now would lose, which /metrics computes at each scrape.
func recoveryPoints(snaps []store.Manifest) map[string]time.Time {
	out := map[string]time.Time{}
	for _, m := range snaps {
		if m.Status != store.StatusComplete {
			continue
		}
		for _, c := range m.Components {
			if m.HoldsWhole(c.Source) && m.Start.After(out[c.Source]) {
				out[c.Source] = m.Start
			}
		}
	}
	return out
}
