package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// TestTwoDaemonsRunEachOccurrenceOnce runs two daemons on one schedule and one repository, with
// claims through ZooKeeper and, without ZooKeeper, through the repository's lease.
func TestTwoDaemonsRunEachOccurrenceOnce(t *testing.T) {
	env := devstack.Require(t)
	for _, tc := range []struct {
		name      string
		zookeeper bool
	}{{"zookeeper claims", true}, {"repository lease claims", false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// A prune job needs no database, so occurrences are quick and the schedule dense.
			job := config.Job{Name: "ha-prune", Schedule: "*/2 * * * * *", Action: config.ActionPrune, Timeout: config.Duration(time.Minute), CatchUp: "none"}
			var daemons []*Daemon
			for i := 0; i < 2; i++ {
				cfg := daemonConfig(t, env, dir, job)
				if !tc.zookeeper {
					cfg.ZooKeeper.Servers = nil
				}
				d, err := NewDaemon(cfg, quiet)
				if err != nil {
					t.Fatal(err)
				}
				if err := d.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				daemons = append(daemons, d)
			}
			time.Sleep(7 * time.Second)
			for _, d := range daemons {
				d.Stop(time.Minute)
			}

			perOccurrence := map[time.Time]int{}
			for _, r := range runsOf(t, daemons[0]) {
				if r.Trigger == TriggerSchedule && r.Outcome != OutcomeSkipped {
					perOccurrence[r.Occurrence]++
					if r.Outcome != OutcomeSucceeded {
						t.Errorf("run %s at %s: %s %s", r.ID, r.Occurrence, r.Outcome, r.Error)
					}
				}
			}
			if len(perOccurrence) < 2 {
				t.Fatalf("only %d occurrences ran in 7 s of a 2 s schedule", len(perOccurrence))
			}
			for occ, n := range perOccurrence {
				if n != 1 {
					t.Errorf("occurrence %s ran %d times, want exactly once", occ.Format(time.RFC3339), n)
				}
			}
			var total float64
			for _, d := range daemons {
				total += testutil.ToFloat64(d.metrics.runs.WithLabelValues(job.Name, OutcomeSucceeded))
			}
			if int(total) != len(perOccurrence) {
				t.Errorf("tracevault_job_runs_total{outcome=succeeded} sums to %v over both daemons, want %d", total, len(perOccurrence))
			}
		})
	}
}

// TestSurvivorTakesOverFromDeadDaemon stands in for a daemon killed mid-run: its run is recorded
// as running and it holds the job's ephemeral claim; then its ZooKeeper session ends, as it does
// when a process dies. The survivor's next occurrence records the dead run as interrupted and
// runs the job itself.
func TestSurvivorTakesOverFromDeadDaemon(t *testing.T) {
	env := devstack.Require(t)
	dir := t.TempDir()
	job := config.Job{Name: "ha-takeover", Schedule: "*/2 * * * * *", Action: config.ActionZKRecord, Timeout: config.Duration(time.Minute), CatchUp: "none"}
	cfg := daemonConfig(t, env, dir, job)
	survivor, err := NewDaemon(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	// Open the repository (and its id) the survivor will use, before it starts scheduling.
	repo, err := CreateRepository(context.Background(), cfg.Storage, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dead, err := zookeeper.Connect(ctx, []string{env.ZK}, 4*time.Second, quiet)
	if err != nil {
		t.Fatal(err)
	}
	claimPath := path.Join(claimRoot, repo.ID(), job.Name)
	if err := ensureParents(dead, claimPath); err != nil {
		t.Fatal(err)
	}
	holder, _ := json.Marshal(store.Holder{Host: "dead-host", PID: 1})
	if _, err := dead.Create(claimPath, holder, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	h := &History{Repo: repo, Limit: 100}
	orphan := Run{ID: "deadbeef", Job: job.Name, Action: job.Action, Trigger: TriggerSchedule, Host: "dead-host", Start: time.Now().UTC().Add(-time.Minute), Outcome: OutcomeRunning}
	if err := h.Record(ctx, orphan); err != nil {
		t.Fatal(err)
	}

	if err := survivor.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // occurrences pass while the dead daemon still holds the claim
	if ran := countOutcome(runsOf(t, survivor), job.Name, OutcomeSucceeded); ran != 0 {
		t.Errorf("survivor ran the job %d times while another daemon held its claim", ran)
	}
	dead.Close() // the process is gone: its session ends and the ephemeral claim with it
	time.Sleep(5 * time.Second)
	survivor.Stop(time.Minute)

	runs := runsOf(t, survivor)
	if n := countOutcome(runs, job.Name, OutcomeSucceeded); n == 0 {
		t.Errorf("survivor never took over: %+v", runs)
	}
	for _, r := range runs {
		if r.ID == orphan.ID {
			if r.Outcome != OutcomeInterrupted || !strings.Contains(r.Error, "dead-host") {
				t.Errorf("dead daemon's run: %s %q, want interrupted naming its host", r.Outcome, r.Error)
			}
		}
	}
	if err := verifyAll(ctx, survivor); err != nil {
		t.Error(err)
	}
}

func countOutcome(runs []Run, job, outcome string) int {
	n := 0
	for _, r := range runs {
		if r.Job == job && r.Outcome == outcome {
			n++
		}
	}
	return n
}

func verifyAll(ctx context.Context, d *Daemon) error {
	rep, err := d.repo.Verify(ctx, nil, true)
	if err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("verify --all --read-data: %s: %s", rep.Problems[0].Object, rep.Problems[0].Error)
	}
	return nil
}

// TestMetricsAfterRuns scrapes /metrics as Prometheus would after one run.
func TestMetricsAfterRuns(t *testing.T) {
	env := devstack.Require(t)
	job := config.Job{Name: "metrics-zk", Schedule: "@daily", Action: config.ActionZKRecord, Timeout: config.Duration(time.Minute), CatchUp: "none"}
	d, err := NewDaemon(daemonConfig(t, env, t.TempDir(), job), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if _, err := d.Trigger(job.Name, TriggerManual); err != nil {
		t.Fatal(err)
	}
	d.Stop(time.Minute) // waits for the run

	rec := httptest.NewRecorder()
	promhttp.HandlerFor(d.Metrics(), promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	values := map[string]float64{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if name, v, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			f, _ := strconv.ParseFloat(v, 64)
			values[name] = f
		}
	}
	checks := []struct {
		series string
		ok     func(float64) bool
	}{
		{`tracevault_job_runs_total{job="metrics-zk",outcome="succeeded"}`, func(v float64) bool { return v == 1 }},
		{`tracevault_job_last_success_timestamp_seconds{job="metrics-zk"}`, func(v float64) bool { return v >= float64(before.Unix()) && v <= float64(time.Now().Unix()) }},
		{`tracevault_job_last_duration_seconds{job="metrics-zk"}`, func(v float64) bool { return v > 0 && v < 60 }},
		{`tracevault_job_last_bytes{job="metrics-zk"}`, func(v float64) bool { return v > 0 }},
		{`tracevault_snapshot_component_duration_seconds{source="zookeeper",status="complete"}`, func(v float64) bool { return v > 0 }},
		{`tracevault_repository_snapshots`, func(v float64) bool { return v == 1 }},
		{`tracevault_repository_bytes`, func(v float64) bool { return v > 0 }},
	}
	for _, c := range checks {
		v, ok := values[c.series]
		if !ok || !c.ok(v) {
			t.Errorf("%s = %v (present: %v)", c.series, v, ok)
		}
	}
}
