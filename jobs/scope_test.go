package jobs

import (
	"testing"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestFreshnessCountsOnlyWholeSources: a newer set narrowed by backup --tables (or a
// migration's snapshot of one database) does not make ClickHouse fresh, on the page or in the
// recovery-point metric; a --only set holds its source whole and does.
func TestFreshnessCountsOnlyWholeSources(t *testing.T) {
	now := time.Now().UTC()
	set := func(id string, age time.Duration, scope *store.Scope, sources ...string) store.Manifest {
		m := store.Manifest{ID: id, Status: store.StatusComplete, Start: now.Add(-age), End: now.Add(-age), Scope: scope}
		for _, s := range sources {
			m.Components = append(m.Components, store.Component{Source: s, Status: store.StatusComplete})
		}
		return m
	}
	full := set("20261201T0300-aa", 48*time.Hour, nil, "clickhouse", "postgres")
	narrowed := set("20261203T0300-bb", time.Hour, &store.Scope{Sources: []string{"clickhouse"}, Narrowed: []string{"clickhouse"}, Tables: []string{"ux_db.*"}}, "clickhouse")
	only := set("20261203T0200-cc", 2*time.Hour, &store.Scope{Sources: []string{"postgres"}}, "postgres")
	snaps := []store.Manifest{full, only, narrowed}

	cfg := &config.Config{}
	cfg.ClickHouse.Addresses = []string{"ch1:9000"}
	cfg.Postgres.DSN = "postgres://x@h/db"
	d := &Daemon{cfg: cfg}
	got := map[string]string{}
	for _, f := range d.freshness(snaps, now) {
		got[f.Source] = f.Snapshot
	}
	if got["clickhouse"] != full.ID || got["postgres"] != only.ID {
		t.Errorf("freshness from %v; want clickhouse from %s (the narrowed %s does not count), postgres from %s", got, full.ID, narrowed.ID, only.ID)
	}
	points := recoveryPoints(snaps)
	if !points["clickhouse"].Equal(full.Start) || !points["postgres"].Equal(only.Start) {
		t.Errorf("recovery points %v; want clickhouse at %s, postgres at %s", points, full.Start, only.Start)
	}
}
