package jobs

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
)

func daemonConfig(t *testing.T, env *devstack.Env, repoDir string, jobs ...config.Job) *config.Config {
	cfg := config.Defaults()
	cfg.Storage.URL = "file://" + repoDir
	cfg.ZooKeeper.Servers = []string{env.ZK}
	cfg.ZooKeeper.Roots = []string{"/clickhouse/tables"}
	cfg.Jobs = jobs
	return &cfg
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func runsOf(t *testing.T, d *Daemon) []Run {
	t.Helper()
	runs, err := d.history.Recent(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

func TestScheduledJobsRunWithoutOverlap(t *testing.T) {
	env := devstack.Require(t)
	cfg := daemonConfig(t, env, t.TempDir(), config.Job{Name: "zk", Schedule: "*/2 * * * * *", Action: config.ActionZKRecord,
		Timeout: config.Duration(time.Minute), CatchUp: "none"})
	d, err := NewDaemon(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Two triggers at once: the second finds the first still running and is skipped.
	first, _ := d.Trigger("zk", TriggerManual)
	second, _ := d.Trigger("zk", TriggerManual)
	if first.Outcome != OutcomeRunning || second.Outcome != OutcomeSkipped {
		t.Errorf("back-to-back triggers: %s then %s; want running then skipped", first.Outcome, second.Outcome)
	}
	time.Sleep(5 * time.Second)
	d.Stop(time.Minute)

	succeeded := map[string]bool{}
	for _, r := range runsOf(t, d) {
		if r.Outcome == OutcomeSucceeded {
			succeeded[r.Trigger] = true
			if r.Snapshot == "" {
				t.Errorf("run %s succeeded without a snapshot", r.ID)
			}
		}
	}
	if !succeeded[TriggerSchedule] || !succeeded[TriggerManual] {
		t.Errorf("want scheduled and manual runs to succeed, got %v", runsOf(t, d))
	}
	snaps, err := d.repo.Snapshots(context.Background())
	if err != nil || len(snaps) < 2 {
		t.Fatalf("%d snapshots, %v", len(snaps), err)
	}
	for _, m := range snaps {
		if m.Status != "complete" {
			t.Errorf("snapshot %s is %s: %s", m.ID, m.Status, m.Error)
		}
	}
}

func TestCatchUpRunsOnceAfterDowntime(t *testing.T) {
	env := devstack.Require(t)
	dir := t.TempDir()
	job := config.Job{Name: "hourly-zk", Schedule: "@hourly", Action: config.ActionZKRecord, Timeout: config.Duration(time.Minute), CatchUp: "once"}
	start := func() *Daemon {
		d, err := NewDaemon(daemonConfig(t, env, dir, job), quiet)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := start()
	// The last success was two hours ago: the daemon was down across a scheduled time.
	old := Run{ID: "0000001d", Job: job.Name, Trigger: TriggerSchedule, Start: time.Now().Add(-2 * time.Hour), End: time.Now().Add(-2 * time.Hour), Outcome: OutcomeSucceeded}
	d.Stop(time.Minute)
	for _, r := range runsOf(t, d) { // the never-ran catch-up of the first start
		_ = d.repo.Backend().Delete(context.Background(), runName(r))
		_ = d.repo.Backend().Delete(context.Background(), endName(r)) // its end, a record of its own
	}
	if err := d.history.Record(context.Background(), old); err != nil {
		t.Fatal(err)
	}

	d = start()
	d.Stop(time.Minute)
	d = start() // a restart right after: the catch-up just ran, so nothing to catch up
	d.Stop(time.Minute)
	catchUps := 0
	for _, r := range runsOf(t, d) {
		if r.Trigger == TriggerCatchUp {
			catchUps++
			if r.Outcome != OutcomeSucceeded {
				t.Errorf("catch-up run: %+v", r)
			}
		}
	}
	if catchUps != 1 {
		t.Errorf("%d catch-up runs over two restarts, want exactly 1", catchUps)
	}
}
