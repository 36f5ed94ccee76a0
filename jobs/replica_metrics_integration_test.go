package jobs

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tracevault/tracevault/internal/devstack"
)

// TestReplicaMetrics: the replica check reaches /metrics without the status page — three
// replicas ok on a replicated table, then, with replica 3 stopped, a verdict other than ok on
// it, which is what the chart's alert fires on.
func TestReplicaMetrics(t *testing.T) {
	devstack.Disruptive(t)
	env := devstack.Require(t)
	ctx := context.Background()
	db := env.CHDatabase(t, "it_replica_metrics")
	create := fmt.Sprintf("CREATE TABLE %s.spans ON CLUSTER %s (id UInt64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/%s/spans', '{replica}') ORDER BY id", db, env.CHCluster, db)
	if err := env.CHExec(0, create); err != nil {
		t.Fatal(err)
	}
	cfg := daemonConfig(t, env, t.TempDir())
	cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses, cfg.ClickHouse.Cluster = env.CHNative, env.CHHTTP, env.CHCluster
	cfg.ClickHouse.Databases = []string{db}
	cfg.Migrate.ClickHouseDatabase = ""
	d, err := NewDaemon(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	scrape := func(reg *prometheus.Registry) string {
		rec := httptest.NewRecorder()
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	if out := scrape(d.Metrics()); !strings.Contains(out, "tracevault_clickhouse_check_up 1") || strings.Count(out, `verdict="ok"} 1`) != 3 {
		t.Fatalf("the daemon's /metrics lacks three replicas ok on %s.spans:\n%s", db, grepLines(out, "tracevault_clickhouse"))
	}

	// A collector without caching sees the stop at once; the daemon's caches for 30 s.
	fresh := prometheus.NewRegistry()
	fresh.MustRegister(newReplicaCollector(d.Replicas, 0))
	if err := env.Stop(ctx, "ch3"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Start(context.Background(), "ch3"); err != nil {
			t.Errorf("start ch3 again: %v", err)
		}
	})
	out := scrape(fresh)
	if strings.Count(out, `verdict="ok"} 1`) != 2 || !strings.Contains(out, `verdict="down"} 1`) {
		t.Errorf("with ch3 stopped, want two replicas ok and one down:\n%s", grepLines(out, "tracevault_clickhouse"))
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
