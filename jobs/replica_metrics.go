package jobs

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tracevault/tracevault/snapshot/clickhouse/replica"
)

// replicaCollector exports the replica consistency check as metrics, so that an isolated,
// read-only or lagging replica alerts without anyone opening the status page. The check runs
// when Prometheus scrapes, at most once per minTTL: several scrapers (or a scrape and the page)
// never multiply the connections it opens.
type replicaCollector struct {
	check  func(context.Context) (*replica.Report, error)
	minTTL time.Duration

	mu     sync.Mutex
	taken  time.Time
	report *replica.Report
	err    error

	cells *prometheus.Desc
	up    *prometheus.Desc
	when  *prometheus.Desc
}

func newReplicaCollector(check func(context.Context) (*replica.Report, error), minTTL time.Duration) *replicaCollector {
	return &replicaCollector{
		check: check, minTTL: minTTL,
		cells: prometheus.NewDesc("tracevault_clickhouse_replica_tables",
			"Tables per replica and verdict of the replica consistency check (ok, isolated, readonly, lagging, missing, down, ...); alert on any verdict but ok.",
			[]string{"replica", "verdict"}, nil),
		up: prometheus.NewDesc("tracevault_clickhouse_check_up",
			"1 when the last replica consistency check ran, 0 when it could not (its error is on the status page).", nil, nil),
		when: prometheus.NewDesc("tracevault_clickhouse_check_timestamp_seconds",
			"Unix time of the replica consistency check these series come from.", nil, nil),
	}
}

func (c *replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.cells
	ch <- c.up
	ch <- c.when
}

func (c *replicaCollector) Collect(ch chan<- prometheus.Metric) {
	rep, err, taken := c.latest()
	if err != nil || rep == nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.when, prometheus.GaugeValue, float64(taken.Unix()))
	for key, n := range verdictCounts(rep) {
		ch <- prometheus.MustNewConstMetric(c.cells, prometheus.GaugeValue, float64(n), key.replica, key.verdict)
	}
}

// latest returns the newest report, checking again once it is older than minTTL. A scrape
// waits at most 20 s for it; a slow cluster shows as check_up 0, not as a hung scrape.
func (c *replicaCollector) latest() (*replica.Report, error, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taken.IsZero() || time.Since(c.taken) >= c.minTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c.report, c.err = c.check(ctx)
		cancel()
		c.taken = time.Now()
	}
	return c.report, c.err, c.taken
}

type replicaVerdict struct{ replica, verdict string }

// verdictCounts counts the matrix's cells per replica and verdict; every replica gets its ok
// series even at zero, so an alert on "ok below the table count" has something to compare.
func verdictCounts(rep *replica.Report) map[replicaVerdict]int {
	out := map[replicaVerdict]int{}
	for _, r := range rep.Replicas {
		out[replicaVerdict{r.Name, replica.VerdictOK}] += 0
	}
	for _, t := range rep.Tables {
		for _, cell := range t.Cells {
			out[replicaVerdict{cell.Replica, cell.Verdict}]++
		}
	}
	return out
}
