package jobs

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
)

// TestPITRDaemonTakeover: two daemons share a repository with [postgres] pitr; the first streams,
// dies, and the second resumes the same chain from its last durable segment (no new base, no
// gap). The recovery point shows in /metrics and on the status page.
func TestPITRDaemonTakeover(t *testing.T) {
	env := devstack.Require(t)
	pitrRetry = time.Second
	defer func() { pitrRetry = 10 * time.Second }()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dsn := env.PGDatabase(t, "it_pitrd")
	slot := fmt.Sprintf("tv_itd_%d", os.Getpid())
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), env.PGDSN); err == nil {
			c.Exec(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
			c.Close(context.Background())
		}
	})
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id serial PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	newDaemon := func() *Daemon {
		cfg := daemonConfig(t, env, dir)
		cfg.ZooKeeper.Servers = nil
		cfg.Postgres.DSN = config.Secret(dsn)
		cfg.Postgres.PITR, cfg.Postgres.PITRSlot = true, slot
		cfg.Postgres.PITRSegmentInterval = config.Duration(time.Second)
		d, err := NewDaemon(cfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return d
	}
	write := func(n int) time.Time {
		for range n {
			if _, err := conn.Exec(ctx, "INSERT INTO t (v) VALUES (repeat('v', 10))"); err != nil {
				t.Fatal(err)
			}
		}
		var at time.Time
		if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	waitFor := func(d *Daemon, at time.Time) {
		t.Helper()
		for !d.pitr.s.State().RecoveryPoint.After(at) {
			if ctx.Err() != nil {
				t.Fatalf("daemon's recovery point never passed %s: %+v", at, d.pitr.s.State())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	first := newDaemon()
	waitFor(first, write(50))
	second := newDaemon() // refused by the active slot; retries
	first.Stop(time.Second)
	at := write(50)
	waitFor(second, at)
	defer second.Stop(time.Second)

	chains, err := pitr.Chains(ctx, second.repo)
	if err != nil || len(chains) != 1 {
		t.Fatalf("want the survivor to resume the one chain, got %d chains: %v", len(chains), err)
	}
	if _, err := pitr.Segments(ctx, second.repo, chains[0].ID); err != nil {
		t.Fatalf("segments after the takeover: %v", err)
	}
	if n, err := testutil.GatherAndCount(second.Metrics(), "tracevault_recovery_point_age_seconds", "tracevault_pitr_slot_retained_wal_bytes"); err != nil || n != 2 {
		t.Fatalf("metrics: %d series, %v", n, err)
	}
	mfs, err := second.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tracevault_recovery_point_age_seconds" {
			if age := mf.GetMetric()[0].GetGauge().GetValue(); age > 60 {
				t.Errorf("postgres recovery point age %.0fs while streaming", age)
			}
		}
	}
	s, err := second.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range s.Freshness {
		if f.Source == config.SourcePostgres && (f.Level != LevelOK || !strings.Contains(f.Reason, "point-in-time")) {
			t.Errorf("postgres freshness: %+v", f)
		}
	}
	reached, err := pitr.Restore(ctx, second.repo, pitr.RestoreOptions{DSN: dsn, Database: devstack.ScratchName("it_pitrd_r"), Log: quiet}, pitr.Target{Time: at})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), env.PGDSN); err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{reached.Database}.Sanitize()+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	rdsn := strings.Replace(dsn, "/"+strings.Split(strings.TrimPrefix(dsn[strings.LastIndex(dsn, "/"):], "/"), "?")[0]+"?", "/"+reached.Database+"?", 1)
	rc, err := pgx.Connect(ctx, rdsn)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(context.Background())
	var rows int
	if err := rc.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&rows); err != nil || rows != 100 {
		t.Errorf("restored across the takeover: %d rows (%d transactions replayed after the base), want 100: %v", rows, reached.Transactions, err)
	}
}
