package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
)

// historyLimit is how many runs the shared history keeps.
const historyLimit = 1000

// Daemon runs the configured jobs on their schedules and keeps their history.
type Daemon struct {
	cfg     *config.Config
	jobs    []Job
	log     *slog.Logger
	started time.Time

	repo    *store.Repository
	history *History
	claimer Claimer
	metrics *metrics
	cron    *cron.Cron
	wg      sync.WaitGroup
	ctx     context.Context // cancelled when the grace period after Stop runs out
	cancel  context.CancelFunc

	mu      sync.Mutex
	running map[string]Run // job name -> its running run
	// progress of each running job, for the status page's JSON
	progress map[string]*progress.Tracker

	pitr *pitrRunner // nil unless [postgres] pitr

	// unrecorded are runs this daemon finished but could not record (the repository was full
	// or down): their record still says running, and must be rewritten with the real outcome,
	// not judged a dead daemon's run.
	unrecorded map[string]Run

	stopping chan struct{} // closed by Stop
	stopOnce sync.Once
}

// NewDaemon prepares a daemon for a validated configuration.
func NewDaemon(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	jobs, err := ParseJobs(cfg.Jobs)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, jobs: jobs, log: log, started: time.Now(), running: map[string]Run{}, unrecorded: map[string]Run{}, progress: map[string]*progress.Tracker{}, metrics: newMetrics(),
		stopping: make(chan struct{})}
	d.pitr = newPITR(cfg, d)
	if len(cfg.ClickHouse.Addresses) > 0 {
		d.metrics.reg.MustRegister(newReplicaCollector(d.Replicas, 30*time.Second))
	}
	return d, nil
}

// Start opens the repository, runs missed jobs once (catch_up = "once") and schedules the rest.
func (d *Daemon) Start(ctx context.Context) error {
	repo, err := CreateRepository(ctx, d.cfg.Storage, d.log)
	if err != nil {
		return err
	}
	repo.SetConfigured(ConfiguredSources(d.cfg))
	d.repo, d.history = repo, &History{Repo: repo, Limit: historyLimit}
	d.metrics.drills.mu.Lock()
	d.metrics.drills.read = func(ctx context.Context) ([]Run, error) { return d.history.Recent(ctx, d.history.Limit) }
	d.metrics.drills.mu.Unlock()
	d.claimer = NewClaimer(d.cfg.ZooKeeper, repo, d.log)
	checkAppendOnly(ctx, repo, d.log)
	d.ctx, d.cancel = context.WithCancel(context.WithoutCancel(ctx))
	d.cron = cron.New(cron.WithParser(config.CronParser), cron.WithLocation(time.UTC))
	for _, j := range d.jobs {
		if _, err := d.cron.AddFunc(j.Schedule, func() { d.Trigger(j.Name, TriggerSchedule) }); err != nil {
			return fmt.Errorf("schedule job %s: %w", j.Name, err)
		}
	}
	if err := d.catchUp(ctx); err != nil {
		d.log.Warn("could not read run history for catch-up", "err", err)
	}
	if err := d.metrics.observeRepository(ctx, repo); err != nil {
		d.log.Warn("could not measure the repository", "err", err)
	}
	d.cron.Start()
	if d.pitr != nil {
		d.pitr.started = true
		go d.pitr.run(d.ctx, d)
	}
	return nil
}

// Metrics is the daemon's Prometheus registry, for /metrics.
func (d *Daemon) Metrics() *prometheus.Registry { return d.metrics.reg }

// catchUp runs once each job whose last successful run is older than one interval: the daemon
// was down across a scheduled time (or the job never ran). A drill caught up waits for the
// backups caught up with it, so that it proves the set they take (on a first start, the first
// set) rather than the one from before the downtime, or nothing.
func (d *Daemon) catchUp(ctx context.Context) error {
	runs, err := d.history.Recent(ctx, d.history.Limit)
	if err != nil {
		return err
	}
	now := time.Now()
	var backups []<-chan struct{}
	var drills []string
	for _, j := range d.jobs {
		var last time.Time
		for _, r := range runs {
			if r.Job == j.Name && r.Outcome == OutcomeSucceeded {
				last = r.Start
				d.metrics.lastSuccess.WithLabelValues(j.Name).Set(float64(r.End.Unix()))
				d.metrics.observeDrill(r)
				break
			}
		}
		if j.CatchUp != "once" {
			continue
		}
		if last.IsZero() || j.Next(last).Before(now) {
			d.log.Info("catching up a missed run", "job", j.Name, "last_success", last)
			if j.Action == config.ActionDrill {
				drills = append(drills, j.Name)
				continue
			}
			_, done, _ := d.trigger(j.Name, TriggerCatchUp)
			if j.Action == config.ActionBackup {
				backups = append(backups, done)
			}
		}
	}
	if len(drills) > 0 {
		d.wg.Add(1)
		go d.drillAfter(backups, drills)
	}
	return nil
}

// drillAfter triggers the drills once the backups are done, unless the daemon stops first.
func (d *Daemon) drillAfter(backups []<-chan struct{}, drills []string) {
	defer d.wg.Done()
	for _, done := range backups {
		select {
		case <-done:
		case <-d.stopping:
			return
		}
	}
	select {
	case <-d.stopping:
		return
	default:
	}
	for _, name := range drills {
		d.Trigger(name, TriggerCatchUp)
	}
}

// Trigger starts a run of a job in the background. A job still running from its previous
// occurrence is not started twice: the skip is recorded instead.
func (d *Daemon) Trigger(name, trigger string) (Run, error) {
	r, _, err := d.trigger(name, trigger)
	return r, err
}

// trigger is Trigger, with a channel closed once the run is over (at once when it never starts).
func (d *Daemon) trigger(name, trigger string) (Run, <-chan struct{}, error) {
	done := make(chan struct{})
	j, ok := d.job(name)
	if !ok {
		close(done)
		return Run{}, done, fmt.Errorf("no job named %q: %w", name, ErrNoJob)
	}
	host, _ := os.Hostname()
	r := Run{ID: newRunID(), Job: j.Name, Action: j.Action, Trigger: trigger, Host: host, Start: time.Now().UTC(), Outcome: OutcomeRunning}
	if trigger != TriggerManual {
		// Daemons sharing the schedule compute the same occurrence, which lets the one that
		// claims the job second see that the first already ran it.
		r.Occurrence = j.Latest(r.Start)
	}
	d.mu.Lock()
	if prev, busy := d.running[j.Name]; busy {
		d.mu.Unlock()
		r.End, r.Outcome, r.Error = r.Start, OutcomeSkipped, fmt.Sprintf("run %s started %s is still going", prev.ID, prev.Start.Format(time.RFC3339))
		d.log.Warn("skipping overlapping run", "job", j.Name, "running", prev.ID)
		d.record(r)
		close(done)
		return r, done, nil
	}
	d.running[j.Name] = r
	d.mu.Unlock()
	d.wg.Add(1)
	go d.execute(j, r, done)
	return r, done, nil
}

func (d *Daemon) execute(j Job, r Run, done chan<- struct{}) {
	defer d.wg.Done()
	defer close(done)
	defer func() {
		d.mu.Lock()
		delete(d.running, j.Name)
		d.mu.Unlock()
	}()
	log := d.log.With("job", j.Name, "run", r.ID, "trigger", r.Trigger)
	claim := d.claim(j, &r, log)
	if claim == nil {
		return
	}
	defer claim.Release(context.Background())
	d.record(r)
	if j.Jitter > 0 {
		select {
		case <-time.After(time.Duration(mrand.Int64N(int64(j.Jitter)))):
		case <-d.ctx.Done():
		}
	}
	tracker := progress.NewTracker()
	d.mu.Lock()
	d.progress[j.Name] = tracker
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.progress, j.Name)
		d.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(progress.With(d.ctx, tracker), j.Timeout.D())
	defer cancel()
	// A claim lost mid-run (ZooKeeper session expired) means another daemon may start the job:
	// stop at once rather than run twice.
	ctx, lose := store.WhileHeld(ctx, claim, errors.New("lost the job's claim (zookeeper session or lease expired)"))
	defer lose(nil)
	log.Info("job started", "action", j.Action)
	err := d.safeRun(ctx, j, &r)
	r.End = time.Now().UTC()
	r.Outcome, r.Error = runOutcome(ctx, d.ctx.Err() != nil, j.Timeout.D(), err)
	r.Error = store.ErrorText(r.Error)
	log.Info("job finished", "outcome", r.Outcome, "seconds", r.End.Sub(r.Start).Seconds(), "snapshot", r.Snapshot, "err", r.Error)
	d.record(r)
}

// runOutcome names how a run ended from its error and its context: the history and the status
// page show this text, so a run cut short says by what (the job's timeout, a lost claim, the
// daemon stopping) and a failure inside it keeps its own words.
func runOutcome(ctx context.Context, daemonStopped bool, timeout time.Duration, err error) (outcome, text string) {
	cause := context.Cause(ctx)
	switch {
	case err == nil:
		return OutcomeSucceeded, ""
	case cause != nil && !errors.Is(cause, context.DeadlineExceeded) && !daemonStopped:
		return OutcomeInterrupted, cause.Error()
	case daemonStopped:
		return OutcomeInterrupted, "daemon stopped: " + err.Error()
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The job's own deadline; a storage request's deadline inside the run (a lease renewal
		// that could not finish in time) is the run's error as it is, not a timeout of the job.
		return OutcomeFailed, fmt.Sprintf("timed out after %s: %v", timeout, err)
	default:
		return OutcomeFailed, err.Error()
	}
}

// safeRun turns a panic in a job into its failure: the daemon keeps going.
func (d *Daemon) safeRun(ctx context.Context, j Job, r *Run) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	switch j.Action {
	case config.ActionBackup, config.ActionZKRecord:
		req := BackupRequest{Only: j.Only, Tags: []string{j.Name}}
		if j.Action == config.ActionZKRecord {
			req.Only = []string{config.SourceZooKeeper}
		}
		m, err := Backup(ctx, d.cfg, d.repo, req, d.log.With("job", j.Name))
		if m != nil {
			r.Snapshot, r.Bytes = m.ID, m.Totals().NewBytes
			if m.Cut != nil {
				r.Cut, r.CutSkewSeconds = m.Cut.Time, m.Cut.SkewSeconds
			}
			d.metrics.observeSnapshot(m)
		}
		if err == nil {
			d.pitrChainWith(m)
		}
		return err
	case config.ActionPrune:
		rep, err := Prune(ctx, d.repo, RetentionPolicy(d.cfg.Retention), false, 10*time.Minute)
		if err == nil && rep.SweepSkipped != "" {
			// Not done until the damaged manifests are dealt with: a failed run says so.
			err = fmt.Errorf("prune forgot %d snapshots, but %s", len(rep.Forgotten), rep.SweepSkipped)
		}
		return err
	case config.ActionDrill:
		res, err := Drill(ctx, d.cfg, d.repo, DrillRequest{}, d.log.With("job", j.Name))
		DrillRun(r, res)
		return err
	case config.ActionVerify:
		req, err := verifyRequest(d.cfg.Verify)
		if err != nil {
			return err
		}
		rep, err := Verify(ctx, d.repo, req)
		if err == nil && len(rep.Problems) > 0 {
			err = fmt.Errorf("%d problems, first: %s (%s)", len(rep.Problems), rep.Problems[0].Object, rep.Problems[0].Error)
		}
		return err
	}
	return fmt.Errorf("unknown action %q", j.Action)
}

func (d *Daemon) record(r Run) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := d.history.Record(ctx, r)
	if err != nil {
		d.log.Error("could not record run", "job", r.Job, "run", r.ID, "err", err)
	}
	if r.Outcome == OutcomeRunning {
		return
	}
	d.mu.Lock()
	if err != nil {
		d.unrecorded[r.ID] = r // retried by the job's next claim
	} else {
		delete(d.unrecorded, r.ID)
	}
	d.mu.Unlock()
	d.metrics.observeRun(r)
	if err := d.metrics.observeRepository(ctx, d.repo); err != nil {
		d.log.Warn("could not measure the repository", "err", err)
	}
}

// claim takes the job's claim for run r, so that of several daemons sharing the schedule exactly
// one runs each occurrence. It returns nil when r must not go ahead: another daemon holds the
// job, or already ran this occurrence. Runs of the job still marked running are then known to
// be dead (their daemon lost the claim) and are recorded as interrupted.
func (d *Daemon) claim(j Job, r *Run, log *slog.Logger) store.Lock {
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	lock, err := d.claimer.Claim(ctx, j.Name)
	if err != nil {
		r.End = time.Now().UTC()
		if !errors.Is(err, store.ErrLocked) {
			r.Outcome, r.Error = OutcomeFailed, "could not claim the job: "+err.Error()
			d.record(*r)
			return nil
		}
		if r.Trigger == TriggerManual {
			r.Outcome, r.Error = OutcomeSkipped, "another daemon is running this job: "+err.Error()
			d.record(*r)
		}
		log.Debug("another daemon holds the job", "err", err)
		return nil
	}
	runs, err := d.history.Recent(ctx, 200)
	if err != nil {
		// Without the history a duplicate is possible but a missed backup is worse.
		log.Warn("could not read run history to check the occurrence; running it", "err", err)
		return lock
	}
	for _, prev := range runs {
		if prev.Job != j.Name {
			continue
		}
		if !r.Occurrence.IsZero() && prev.Occurrence.Equal(r.Occurrence) {
			log.Debug("occurrence already ran", "occurrence", r.Occurrence, "run", prev.ID, "host", prev.Host)
			_ = lock.Release(context.Background())
			return nil
		}
		if prev.Outcome != OutcomeRunning {
			continue
		}
		d.mu.Lock()
		finished, ours := d.unrecorded[prev.ID]
		d.mu.Unlock()
		if ours {
			log.Info("recording a run this daemon finished but could not record then", "run", prev.ID, "outcome", finished.Outcome)
			d.record(finished)
			continue
		}
		prev.End, prev.Outcome = time.Now().UTC(), OutcomeInterrupted
		prev.Error = fmt.Sprintf("the daemon on %s stopped during this run (its claim lapsed); objects it stored are left for prune", prev.Host)
		log.Warn("recording a dead daemon's run as interrupted", "run", prev.ID, "host", prev.Host)
		d.record(prev)
	}
	return lock
}

// Stop stops scheduling and waits for running jobs up to grace, then cancels them; their runs
// are recorded as interrupted and their snapshots as partial.
func (d *Daemon) Stop(grace time.Duration) {
	if d.cron == nil {
		return
	}
	d.stopOnce.Do(func() { close(d.stopping) })
	d.cron.Stop()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		d.log.Warn("grace period over; cancelling running jobs", "grace", grace)
		d.cancel()
		<-done
	}
	d.cancel()
	if d.pitr != nil && d.pitr.started {
		<-d.pitr.done
	}
	d.claimer.Close()
}

func (d *Daemon) job(name string) (Job, bool) {
	for _, j := range d.jobs {
		if j.Name == name {
			return j, true
		}
	}
	return Job{}, false
}

// newRunID makes 8 lowercase hex digits, the form store.ValidRunID checks on reading.
func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
