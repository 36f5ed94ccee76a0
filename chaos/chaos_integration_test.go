package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/internal/faultproxy"
	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// fault is one kind of failure the suite injects.
type fault struct {
	name string
	// cause: a failed or interrupted run during the fault must name it with one of these
	// words (case-insensitive) in its error.
	cause []string
	// fs: the fault needs the filesystem repository; the others run against Azurite.
	fs bool
	// full: only in the full suite (TRACEVAULT_CHAOS=full).
	full bool
	// within bounds the random delay between a run's start and the fault (default 1.5 s): the
	// PostgreSQL part of a set is its first second or two.
	within time.Duration
	inject func(ctx context.Context, s *suite) error
}

// TestChaos runs the daemon with a backup every few seconds while `demo load` writes, injects
// each fault at a random moment inside a run, and after each checks that the daemon runs, that
// every snapshot listed complete verifies with --read-data, that the newest complete one
// restores into scratch databases matching its manifest and holding every ledger row written
// before its cut (and its blob container every event file written before its listing, each
// file log row with its file), and that the run history and the status page name the cause of every failed
// run. The reduced form (the default, in CI) injects every fault once with short holds; the full
// form (TRACEVAULT_CHAOS=full, `make chaos`) runs every fault, storage ones included, with longer
// holds, a heavier load and a restore after each. TRACEVAULT_CHAOS_ROUNDS=n repeats the faults n
// times; TRACEVAULT_CHAOS_SEED replays a run's random choices.
func TestChaos(t *testing.T) {
	devstack.Disruptive(t)
	env := devstack.Require(t)
	s := newSuite(t, env)
	defer s.summary()
	s.start()
	// One round injects every fault kind once. A full-suite backup of the whole demo database
	// takes one to two minutes on a loaded machine and a restore after each fault up to eight
	// (its ON CLUSTER DDL), so a round takes half an hour or more there: more rounds are opt-in.
	rounds := 1
	if v := os.Getenv("TRACEVAULT_CHAOS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TRACEVAULT_CHAOS_ROUNDS=%q: want a positive number", v)
		}
		rounds = n
	}
	for round := 1; round <= rounds && !t.Failed(); round++ {
		var chosen []fault
		for _, f := range s.faults() {
			if s.wanted(f) {
				chosen = append(chosen, f)
			}
		}
		for i, f := range chosen {
			if t.Failed() {
				break
			}
			// Every fault is followed by verify --read-data of each new complete snapshot. A
			// restore takes a minute or more on a loaded machine: the full suite restores after
			// every fault, the reduced one after the last fault on each repository.
			restore := s.full || i == len(chosen)-1 || chosen[i+1].fs != f.fs
			s.round(f, restore)
		}
	}
	s.stop()
}

type suite struct {
	t      *testing.T
	env    *devstack.Env
	full   bool
	seed   uint64
	rng    *rand.Rand
	dir    string
	bin    string
	db     string // ClickHouse scratch database
	pgDSN  string // PostgreSQL scratch database
	proxy  *faultproxy.Proxy
	listen string // the daemon's [web] listen
	tmpfs  string // mount point of the filesystem repository, or "" where mounting failed

	fs       bool // the daemon now backs up to the filesystem repository
	cfg      *config.Config
	repo     *store.Repository // the daemon's repository, read directly (not through the proxy)
	daemon   *exec.Cmd
	exited   chan error
	restarts int

	loadStop context.CancelFunc
	loadDone chan struct{}
	ledgerMu sync.Mutex
	ledgers  []string
	blobs    *ingest    // Langfuse's event files, beside the load
	pitr     *pitrChaos // TestChaosPITR's writer, ledger and checks; nil in TestChaos
	// contentChecks makes verify hold each logical object's rows to the rows its snapshots
	// record, as `verify --read-data` does: a reused object that holds other rows is named at
	// once, not first by a drill that refuses to load it.
	contentChecks bool

	// What the suite prints last.
	injected  []string
	verified  map[string]bool
	restored  map[string]bool
	failed    map[string]jobs.Run // run id -> failed or interrupted run
	rowsLost  int64
	rowsKept  int64
	blobsLost int64
	blobsKept int64
	snapshots map[string]string // complete snapshot id -> repository
	runs      map[string]string // run id -> outcome, over both repositories
}

func newSuite(t *testing.T, env *devstack.Env) *suite {
	// A run stopped before its cleanup leaves databases whose ZooKeeper state drifts from the
	// replicas' parts; the first replica restart of the next run then refuses to start.
	env.SweepOrphans(t)
	s := &suite{t: t, env: env, full: os.Getenv("TRACEVAULT_CHAOS") == "full",
		verified: map[string]bool{}, restored: map[string]bool{}, failed: map[string]jobs.Run{},
		snapshots: map[string]string{}, runs: map[string]string{}}
	s.seed = uint64(time.Now().UnixNano())
	if v := os.Getenv("TRACEVAULT_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("TRACEVAULT_CHAOS_SEED=%q: %v", v, err)
		}
		s.seed = n
	}
	s.rng = rand.New(rand.NewPCG(s.seed, 16))
	t.Logf("chaos: full=%v seed=%d (TRACEVAULT_CHAOS_SEED=%d replays the choices)", s.full, s.seed, s.seed)
	s.dir = t.TempDir()
	if d := os.Getenv("TRACEVAULT_CHAOS_DIR"); d != "" {
		s.dir = d // logs and ledgers kept for a look after the run
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *suite) faults() []fault {
	replica := 1 + s.rng.IntN(len(s.env.CHNative))
	ch := "ch" + strconv.Itoa(replica)
	hold := s.hold
	zkTimeout := s.cfg.ZooKeeper.SessionTimeout.D()
	storage := []string{"storage", "blob", "azure", s.proxy.Addr()}
	replicaKilled := fault{name: "clickhouse " + ch + " killed -9 and restarted", cause: []string{ch, s.env.CHNative[replica-1], s.env.CHHTTP[replica-1], "replica"},
		inject: func(ctx context.Context, s *suite) error {
			if err := s.env.Kill(ch); err != nil {
				return err
			}
			sleep(ctx, hold(3*time.Second, 10*time.Second))
			return s.startReplica(ctx, replica)
		}}
	zkStopped := fault{name: "zookeeper stopped past the session timeout", cause: []string{"zookeeper", s.env.ZK, "zk", "readonly", "claim"},
		inject: func(ctx context.Context, s *suite) error {
			if err := s.env.Stop(ctx, "zk"); err != nil {
				return err
			}
			sleep(ctx, zkTimeout+hold(2*time.Second, 10*time.Second))
			return s.env.Start(ctx, "zk")
		}}
	pgRestarted := fault{name: "postgresql restarted", cause: []string{"postgres", "pg_dump", "sqlstate", hostPort(s.pgDSN)}, within: 300 * time.Millisecond,
		inject: func(ctx context.Context, s *suite) error {
			if err := s.env.Stop(ctx, "pg"); err != nil {
				return err
			}
			sleep(ctx, hold(time.Second, 5*time.Second))
			return s.env.Start(ctx, "pg")
		}}
	unavailable := fault{name: "storage answers 503", cause: append(slices.Clone(storage), "503", "ServerBusy"), full: true,
		inject: s.storageFault(faultproxy.Mode{Fault: faultproxy.Unavailable}, hold(6*time.Second, 20*time.Second))}
	stalls := fault{name: "storage stalls", cause: append(slices.Clone(storage), "timeout", "deadline", "timed out"), full: true,
		inject: s.storageFault(faultproxy.Mode{Fault: faultproxy.Stall, Stall: hold(20*time.Second, 45*time.Second)}, hold(5*time.Second, 15*time.Second))}
	daemonKilled := fault{name: "daemon killed -9 and restarted", cause: []string{"stopped during this run", "daemon"}, inject: restartDaemon}
	return []fault{
		replicaKilled,
		zkStopped,
		pgRestarted,
		unavailable,
		{name: "storage resets connections", cause: append(slices.Clone(storage), "reset", "EOF", "broken pipe"),
			inject: s.storageFault(faultproxy.Mode{Fault: faultproxy.Reset, After: int64(1<<10 + s.rng.IntN(256<<10))}, hold(6*time.Second, 20*time.Second))},
		stalls,
		{name: "storage sends slow bodies", cause: append(slices.Clone(storage), "timeout", "deadline", "timed out"), full: true,
			inject: s.storageFault(faultproxy.Mode{Fault: faultproxy.Throttle, BytesPerSecond: 32 << 10}, hold(6*time.Second, 20*time.Second))},
		daemonKilled,
		{name: "filesystem repository out of space (tmpfs)", cause: []string{"no space left on device"}, fs: true,
			inject: s.outOfSpace(hold(6*time.Second, 20*time.Second))},
		// Two faults at once (full suite only): a run may then fail naming either.
		combined("clickhouse "+ch+" killed -9 while storage stalls", replicaKilled, stalls),
		combined("zookeeper stopped while postgresql restarts", pgRestarted, zkStopped),
		combined("daemon killed -9 during a storage outage (503)", daemonKilled, unavailable),
	}
}

// combined injects a and b at once: a in the caller's goroutine (it may stop and start the
// daemon, which fails the test from there), b beside it, which must touch neither the daemon nor
// the test. Its name starts with "combined:", which TRACEVAULT_CHAOS_FAULTS can select.
func combined(name string, a, b fault) fault {
	if a.fs != b.fs {
		panic("combined fault " + name + ": both faults must use the same repository")
	}
	within := a.within
	if b.within != 0 && (within == 0 || b.within < within) {
		within = b.within
	}
	return fault{name: "combined: " + name, cause: append(slices.Clone(a.cause), b.cause...), fs: a.fs, full: true, within: within,
		inject: func(ctx context.Context, s *suite) error {
			done := make(chan error, 1)
			go func() { done <- b.inject(ctx, s) }()
			errA := a.inject(ctx, s)
			if errB := <-done; errB != nil {
				return errors.Join(errA, fmt.Errorf("%s: %w", b.name, errB))
			}
			return errA
		}}
}

// startReplica starts ClickHouse replica i (1-based) after a kill. devstack.sh waits 90 s for it to
// answer, but a replica that was killed loads and checks every part of the chaos database before
// it listens, which on a loaded machine may take longer: as long as its process runs, the
// suite waits for it to answer, up to 10 minutes.
func (s *suite) startReplica(ctx context.Context, i int) error {
	svc := "ch" + strconv.Itoa(i)
	err := s.env.Start(ctx, svc)
	if err == nil {
		return nil
	}
	ping := "http://" + s.env.CHHTTP[i-1] + "/ping"
	for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); sleep(ctx, time.Second) {
		if resp, perr := http.Get(ping); perr == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.t.Logf("chaos: %s answered after devstack.sh gave up waiting for it", svc)
				return nil
			}
		}
		if !s.env.Alive(svc) {
			return err
		}
	}
	return fmt.Errorf("%s did not answer within 10 minutes of its start: %w", svc, err)
}

// wanted says whether f runs: the suite's faults, or those TRACEVAULT_CHAOS_FAULTS names (words
// separated by commas), to try some again without the others, full-suite ones included.
func (s *suite) wanted(f fault) bool {
	if only := os.Getenv("TRACEVAULT_CHAOS_FAULTS"); only != "" {
		return namesCause(f.name, strings.Split(only, ","))
	}
	return !f.full || s.full
}

// hold is how long a fault lasts in the reduced and in the full suite.
func (s *suite) hold(reduced, full time.Duration) time.Duration {
	if s.full {
		return full
	}
	return reduced
}

// restartDaemon kills the daemon with SIGKILL and starts it again.
func restartDaemon(ctx context.Context, s *suite) error {
	s.killDaemon()
	sleep(ctx, time.Second)
	s.startDaemon()
	return nil
}

// outOfSpace fills the tmpfs repository's filesystem for d.
func (s *suite) outOfSpace(d time.Duration) func(context.Context, *suite) error {
	return func(ctx context.Context, s *suite) error {
		filler, err := fill(s.tmpfs)
		if err != nil {
			return err
		}
		sleep(ctx, d)
		return os.Remove(filler)
	}
}

func (s *suite) storageFault(m faultproxy.Mode, hold time.Duration) func(context.Context, *suite) error {
	return func(ctx context.Context, s *suite) error {
		s.proxy.Set(m)
		sleep(ctx, hold)
		s.proxy.Set(faultproxy.Mode{Fault: faultproxy.Pass})
		return nil
	}
}

// start builds the binary, seeds scratch databases, starts the proxy, the load and the daemon,
// and waits for its first complete snapshot.
func (s *suite) start() {
	t := s.t
	ctx := context.Background()
	s.prepare()
	// The reduced suite seeds the current month only: fewer partitions to back up and restore
	// (the load's late events add the three before it).
	seed := demo.Options{ClickHouse: s.env.CHNative, ClickHouseHTTP: s.env.CHHTTP, Cluster: s.env.CHCluster,
		ZooKeeper: []string{s.env.ZK}, Traces: 200, Seed: 11, Months: 1, Start: time.Now().UTC().AddDate(0, 0, 1-time.Now().UTC().Day()).Truncate(24 * time.Hour)}
	if s.full {
		seed.Traces, seed.Months, seed.Start = 3000, 0, time.Time{}
	}
	s.db = s.env.CHDatabase(t, "chaos")
	s.pgDSN = s.env.PGDatabase(t, "chaos")
	t.Cleanup(func() { s.dropDrill() })
	seedCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	seed.Database, seed.PostgresDSN = s.db, s.pgDSN
	if _, err := demo.Seed(seedCtx, seed); err != nil {
		t.Fatalf("seed the chaos databases: %v", err)
	}

	s.startIngest()
	s.cfg = s.writeConfig(false)
	s.startLoad()
	s.startDaemon()
	t.Cleanup(func() {
		s.stopLoad()
		s.stopIngest()
		s.killDaemon()
	})
	if _, ok := s.waitSuccess(time.Now().Add(-time.Hour), 4*time.Minute); !ok {
		t.Fatalf("no backup succeeded before any fault; see %s", s.daemonLog())
	}
}

// prepare builds the binary and sets up what every chaos test puts around its daemon: the fault
// proxy in front of Azurite, the daemon's [web] listen address and the tmpfs repository.
func (s *suite) prepare() {
	t := s.t
	s.bin = buildBinary(t, s.dir)
	s.proxy = storageProxy(t, s.env, s.logFile("proxy.log"))
	s.listen = freeAddr(t)
	s.tmpfs = s.mountTmpfs()
}

// storageProxy puts the fault proxy in front of Azurite's blob endpoint, logging to log, and
// closes it when the test ends.
func storageProxy(t *testing.T, env *devstack.Env, log io.Writer) *faultproxy.Proxy {
	blob, err := blobEndpoint(env.AzureConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.Listen("127.0.0.1:0", blob.Host, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	return proxy
}

// round injects one fault at a random moment inside a running backup and checks the aftermath.
func (s *suite) round(f fault, restore bool) {
	if !s.onRepository(f) {
		return
	}
	if s.injectAndHeal(f) && restore {
		s.checkNewest()
	}
}

// injectAndHeal injects f at a random moment inside a running backup, waits for a backup to
// succeed after it was healed, checks the runs that failed meanwhile and verifies every new
// complete snapshot; false when no backup succeeded, which it reports.
func (s *suite) injectAndHeal(f fault) bool {
	t := s.t
	if err := s.waitRunning(2 * time.Minute); err != nil {
		t.Errorf("before %s: %v", f.name, err)
		return false
	}
	within := f.within
	if within == 0 {
		within = 1500 * time.Millisecond
	}
	injected, healed := s.inject(f, within)
	// A run started after the heal must succeed: the full suite's backups of the whole demo
	// database take two to three minutes on a loaded machine, and one may be under way.
	wait := s.hold(4*time.Minute, 10*time.Minute)
	success, ok := s.waitSuccess(healed, wait)
	if !ok {
		t.Errorf("no backup succeeded within %s after %s was healed; see %s", wait, f.name, s.daemonLog())
		return false
	}
	t.Logf("chaos: %s healed after %s; run %s succeeded (snapshot %s)", f.name, healed.Sub(injected).Round(time.Millisecond), success.ID, success.Snapshot)
	s.checkRuns(f, injected, success.Start)
	s.verifyComplete()
	return true
}

// onRepository points the daemon at the repository f needs, and says whether f can run.
func (s *suite) onRepository(f fault) bool {
	if f.fs != s.fs {
		if f.fs && s.tmpfs == "" {
			s.t.Logf("chaos: %s skipped: no tmpfs could be mounted here (needs root)", f.name)
			return false
		}
		s.switchRepository(f.fs)
	}
	return true
}

// inject injects f after a random delay below within, and returns when it began and ended. A
// daemon that exited meanwhile is an error, and is started again.
func (s *suite) inject(f fault, within time.Duration) (injected, healed time.Time) {
	t := s.t
	ctx := context.Background()
	sleep(ctx, time.Duration(s.rng.Int64N(int64(within))))
	injected = time.Now()
	t.Logf("chaos: injecting %s", f.name)
	s.injected = append(s.injected, f.name)
	if err := f.inject(ctx, s); err != nil {
		t.Fatalf("inject %s: %v", f.name, err)
	}
	healed = time.Now()
	select {
	case err := <-s.exited:
		t.Errorf("the daemon exited during %s: %v; see %s", f.name, err, s.daemonLog())
		s.startDaemon()
	default:
	}
	return injected, healed
}

// checkRuns records the runs that failed while the fault lasted and checks that their error, in
// the run history and on the status page, names the cause.
func (s *suite) checkRuns(f fault, from, until time.Time) {
	t := s.t
	runs := s.history()
	st, err := s.status()
	if err != nil {
		t.Errorf("status page after %s: %v", f.name, err)
	}
	onPage := map[string]jobs.Run{}
	for _, r := range st.Runs {
		onPage[r.ID] = r
	}
	for _, r := range runs {
		if r.Outcome != jobs.OutcomeFailed && r.Outcome != jobs.OutcomeInterrupted {
			continue
		}
		if r.End.Before(from) || !r.Start.Before(until) || s.failed[r.ID].ID != "" {
			continue
		}
		s.failed[r.ID] = r
		t.Logf("chaos: run %s %s during %s: %s", r.ID, r.Outcome, f.name, r.Error)
		if !namesCause(r.Error, f.cause) {
			t.Errorf("run %s %s during %s with %q, which names none of %q", r.ID, r.Outcome, f.name, r.Error, f.cause)
		}
		p, ok := onPage[r.ID]
		// Under load the page may serve an older answer while a slow read goes on (it says so
		// with X-Tracevault-Stale-Seconds), in which the run is still running: wait for one
		// that has its end.
		for deadline := time.Now().Add(time.Minute); ok && p.Outcome == jobs.OutcomeRunning && time.Now().Before(deadline); {
			time.Sleep(2 * time.Second)
			if st, err := s.status(); err == nil {
				p, ok = jobs.Run{}, false
				for _, x := range st.Runs {
					if x.ID == r.ID {
						p, ok = x, true
					}
				}
			}
		}
		if ok && (p.Outcome != r.Outcome || p.Error != r.Error) {
			t.Errorf("run %s: the status page says %s %q, the history %s %q", r.ID, p.Outcome, p.Error, r.Outcome, r.Error)
		}
		if r.Snapshot == "" {
			continue
		}
		m, err := s.repo.Snapshot(context.Background(), r.Snapshot)
		if err != nil {
			continue // the run stored no manifest: nothing is listed
		}
		if m.Status == store.StatusComplete {
			t.Errorf("run %s %s (%s), but its snapshot %s is listed complete", r.ID, r.Outcome, r.Error, m.ID)
		}
		if m.Error == "" {
			t.Errorf("snapshot %s of failed run %s is %s without an error", m.ID, r.ID, m.Status)
		}
	}
}

func namesCause(err string, words []string) bool {
	low := strings.ToLower(err)
	for _, w := range words {
		if w != "" && strings.Contains(low, strings.ToLower(w)) {
			return true
		}
	}
	return false
}

// verifyComplete reads every object of every snapshot listed complete that was not verified yet.
func (s *suite) verifyComplete() {
	t := s.t
	snaps, err := s.repo.Snapshots(context.Background())
	if err != nil {
		t.Errorf("list snapshots: %v", err)
		return
	}
	var ids []string
	for _, m := range snaps {
		if m.Status == store.StatusComplete && !s.verified[m.ID] {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	opts := store.VerifyOptions{ReadData: true}
	if s.contentChecks {
		opts.Content = jobs.ContentChecks
	}
	rep, err := s.repo.VerifyWith(context.Background(), ids, opts)
	if err != nil {
		t.Errorf("verify --read-data %v: %v", ids, err)
		return
	}
	for _, p := range rep.Problems {
		t.Errorf("a snapshot listed complete fails verify --read-data: %s: %s", p.Object, p.Error)
	}
	for _, id := range ids {
		s.verified[id] = true
		s.snapshots[id] = s.repoName()
	}
}

// checkNewest restores the newest complete snapshot into scratch databases with the drill
// (which checks object hashes and rows against the manifest) and checks the restored rows
// against the ledger. The full suite's whole database takes minutes to restore on a loaded
// machine, and a replica whose DDL queue is behind makes each CREATE … ON CLUSTER wait (up to
// ten more minutes, see the restore's execCreate): 25 minutes bound it there.
func (s *suite) checkNewest() {
	t := s.t
	ctx, cancel := context.WithTimeout(context.Background(), s.hold(10*time.Minute, 25*time.Minute))
	defer cancel()
	defer s.dropDrill()
	m := s.drillNewest(ctx, s.dropDrill)
	if m == nil {
		return
	}
	// Each source's recorded cut: every row acknowledged before it must be restored.
	if m.Cut == nil {
		t.Errorf("complete snapshot %s records no cut", m.ID)
		return
	}
	cuts := map[string]time.Time{}
	for _, c := range m.Cut.Sources {
		cuts[c.Source] = c.Time
	}
	s.checkClickHouse(ctx, m, cuts[config.SourceClickHouse])
	s.checkPostgres(ctx, m, cuts[config.SourcePostgres])
	s.checkBlobs(ctx, m)
}

// drillNewest drills the newest complete snapshot, unless it was already, into scratch databases
// that it keeps for the caller's checks (drop removes them first); the drill checks object hashes
// and rows against the manifest. Nil when there is nothing new to check or the drill failed,
// which it reports.
func (s *suite) drillNewest(ctx context.Context, drop func()) *store.Manifest {
	t := s.t
	m, err := s.repo.Snapshot(ctx, "latest")
	if err != nil {
		t.Errorf("find the newest complete snapshot: %v", err)
		return nil
	}
	if s.restored[m.ID] {
		return nil
	}
	s.restored[m.ID] = true
	drop()
	res, err := jobs.Drill(ctx, s.cfg, s.repo, jobs.DrillRequest{Snapshot: m.ID, Keep: true}, quietLog())
	if err != nil {
		t.Errorf("restore of the newest complete snapshot %s: %v", m.ID, err)
		return nil
	}
	t.Logf("chaos: snapshot %s restored in %.1fs, matching its manifest", m.ID, res.RTOSeconds)
	return m
}

var loadTables = []string{"traces", "observations", "scores"}

// ledger returns, per table, each id acknowledged before cut and its newest version then.
func (s *suite) ledger(prefix string, cut time.Time) map[string]map[string]int64 {
	s.ledgerMu.Lock()
	paths := slices.Clone(s.ledgers)
	s.ledgerMu.Unlock()
	want := map[string]map[string]int64{}
	for _, p := range paths {
		err := demo.Ledger{Path: p}.Each(cut, func(r demo.LedgerRecord) error {
			table, ok := strings.CutPrefix(r.Table, prefix)
			if !ok || r.Op == demo.OpUpdate {
				return nil
			}
			if want[table] == nil {
				want[table] = map[string]int64{}
			}
			for _, id := range r.IDs {
				want[table][id] = max(want[table][id], r.Version)
			}
			return nil
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			s.t.Errorf("read ledger %s: %v", p, err)
		}
	}
	return want
}

func (s *suite) checkClickHouse(ctx context.Context, m *store.Manifest, cut time.Time) {
	t := s.t
	if cut.IsZero() {
		t.Errorf("snapshot %s has no clickhouse component", m.ID)
		return
	}
	want := s.ledger("clickhouse:", cut)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.env.CHNative[0]}, Auth: clickhouse.Auth{Username: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	copyDB := s.db + jobs.DrillSuffix
	for _, table := range loadTables {
		if err := conn.Exec(ctx, fmt.Sprintf("SYSTEM SYNC REPLICA %s.%s", copyDB, table)); err != nil {
			t.Errorf("sync the restored %s.%s: %v", copyDB, table, err)
			continue
		}
		got, err := demo.Versions(ctx, conn, copyDB, table, "ld-%")
		if err != nil {
			t.Errorf("restored: %v", err)
			continue
		}
		var lost []string
		for id, v := range want[table] {
			if g, ok := got[id]; !ok || g < v {
				lost = append(lost, fmt.Sprintf("%s (restored version %d, acknowledged %d)", id, g, v))
			}
		}
		s.rowsKept += int64(len(want[table]) - len(lost))
		s.rowsLost += int64(len(lost))
		if len(lost) > 0 {
			slices.Sort(lost)
			t.Errorf("snapshot %s: %d of the %d %s rows acknowledged before its clickhouse cut %s are not restored, e.g. %v",
				m.ID, len(lost), len(want[table]), table, cut.Format(time.RFC3339Nano), lost[:min(5, len(lost))])
		}
	}
}

func (s *suite) checkPostgres(ctx context.Context, m *store.Manifest, cut time.Time) {
	t := s.t
	if cut.IsZero() {
		t.Errorf("snapshot %s has no postgres component", m.ID)
		return
	}
	want := s.ledger("postgres:", cut)
	u, err := url.Parse(s.pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Path += jobs.DrillSuffix
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Errorf("connect to the restored postgres: %v", err)
		return
	}
	defer conn.Close(context.Background())
	for table, ids := range want {
		keys := make([]string, 0, len(ids))
		for id := range ids {
			keys = append(keys, id)
		}
		var n int64
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE id::text = ANY($1)", pgx.Identifier{table}.Sanitize()), keys).Scan(&n); err != nil {
			t.Errorf("count the restored postgres %s: %v", table, err)
			continue
		}
		s.rowsKept += n
		s.rowsLost += int64(len(keys)) - n
		if n != int64(len(keys)) {
			t.Errorf("snapshot %s: %d of the %d postgres %s rows inserted before its postgres cut %s are not restored",
				m.ID, int64(len(keys))-n, len(keys), table, cut.Format(time.RFC3339Nano))
		}
	}
}

// dropDrill removes the drill's scratch databases, kept for the ledger check.
func (s *suite) dropDrill() {
	if s.db == "" {
		return
	}
	for i := range s.env.CHHTTP {
		_ = s.env.CHExec(i, "DROP DATABASE IF EXISTS "+s.db+jobs.DrillSuffix)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, s.env.PGDSN); err == nil {
		u, _ := url.Parse(s.pgDSN)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{strings.TrimPrefix(u.Path, "/") + jobs.DrillSuffix}.Sanitize()+" WITH (FORCE)")
		c.Close(ctx)
	}
}

// summary prints, last, what the suite did and found.
func (s *suite) summary() {
	if s.repo != nil {
		s.countRuns()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos summary (full=%v, seed=%d)\n", s.full, s.seed)
	s.summaryRuns(&b)
	fmt.Fprintf(&b, "  rows lost:          %d (of %d acknowledged before a restored snapshot's cut)\n", s.rowsLost, s.rowsKept+s.rowsLost)
	fmt.Fprintf(&b, "  blob files lost:    %d (of %d written before a restored snapshot's listing)\n", s.blobsLost, s.blobsKept+s.blobsLost)
	s.t.Log(b.String())
	fmt.Print(b.String())
	if s.rowsLost != 0 || s.blobsLost != 0 {
		s.t.Errorf("%d rows and %d blob files lost", s.rowsLost, s.blobsLost)
	}
}

// summaryRuns writes the summary's lines on faults, runs, snapshots and failed runs.
func (s *suite) summaryRuns(b *strings.Builder) {
	outcomes := map[string]int{}
	for _, o := range s.runs {
		outcomes[o]++
	}
	attempted := len(s.runs) - outcomes[jobs.OutcomeSkipped]
	fmt.Fprintf(b, "  faults injected:    %d\n", len(s.injected))
	for _, f := range s.injected {
		fmt.Fprintf(b, "    - %s\n", f)
	}
	fmt.Fprintf(b, "  runs attempted:     %d (%d succeeded, %d failed, %d interrupted; %d overlapping occurrences skipped)\n",
		attempted, outcomes[jobs.OutcomeSucceeded], outcomes[jobs.OutcomeFailed], outcomes[jobs.OutcomeInterrupted], outcomes[jobs.OutcomeSkipped])
	fmt.Fprintf(b, "  complete snapshots: %d (all verified with --read-data; %d restored and checked against the ledger)\n", len(s.snapshots), len(s.restored))
	fmt.Fprintf(b, "  failed runs:        %d\n", len(s.failed))
	ids := make([]string, 0, len(s.failed))
	for id := range s.failed {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return s.failed[a].Start.Compare(s.failed[b].Start) })
	for _, id := range ids {
		r := s.failed[id]
		fmt.Fprintf(b, "    - %s %s: %s\n", r.ID, r.Outcome, r.Error)
	}
}

// countRuns adds the current repository's run history to the summary's count.
func (s *suite) countRuns() {
	for _, r := range s.history() {
		s.runs[r.ID] = r.Outcome
	}
}

// stop ends the load and stops the daemon as an operator would (SIGTERM).
func (s *suite) stop() {
	s.stopLoad()
	s.stopIngest()
	if s.daemon != nil && s.daemon.Process != nil {
		_ = s.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-s.exited:
			if err != nil {
				s.t.Errorf("the daemon exited with %v on SIGTERM; see %s", err, s.daemonLog())
			}
		case <-time.After(2 * time.Minute):
			s.t.Errorf("the daemon did not stop within 2 minutes of SIGTERM")
		}
		s.daemon = nil
	}
}

// ---- the daemon

// writeConfig writes the daemon's configuration for one repository and returns the one the
// test reads the repository with: the same, but straight to Azurite rather than through the
// proxy.
func (s *suite) writeConfig(fs bool) *config.Config {
	storage, proxied := s.storageConfig(fs)
	var sources string
	if s.pitr != nil {
		sources = s.pitr.config(s)
	} else {
		sources = s.sourcesConfig(proxied)
	}
	return s.loadConfig(fmt.Sprintf("[storage]\n%s\n[web]\nlisten = %q\n\n%s", storage, s.listen, sources), fs)
}

// storageConfig is the daemon's [storage] section for one repository, named after the scratch
// database: Azurite through the fault proxy (proxied is that connection string) or the tmpfs.
func (s *suite) storageConfig(fs bool) (storage, proxied string) {
	proxied = strings.Replace(s.env.AzureConnectionString, mustBlob(s.t, s.env.AzureConnectionString).Host, s.proxy.Addr(), 1)
	if fs {
		return fmt.Sprintf("url = %q\n", "file://"+s.tmpfs+"/repo"), proxied
	}
	return fmt.Sprintf("url = %q\nconnection_string = %q\n", "azblob://"+s.env.AzureContainer+"/"+filepath.Base(s.db), proxied), proxied
}

// loadConfig writes the daemon's configuration text and returns the one the test reads the
// repository with: the same, but straight to Azurite rather than through the proxy.
func (s *suite) loadConfig(text string, fs bool) *config.Config {
	t := s.t
	path := filepath.Join(s.dir, "tracevault.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("the chaos configuration: %v", err)
	}
	direct := *cfg
	if !fs {
		direct.Storage.ConnectionString = config.Secret(s.env.AzureConnectionString)
	}
	if s.repo, err = jobs.CreateRepository(context.Background(), direct.Storage, quietLog()); err != nil {
		t.Fatal(err)
	}
	s.fs = fs
	return &direct
}

// jobTimeout bounds a backup run that hangs. The full suite backs up the whole demo database,
// which took up to three minutes on a loaded machine (two cores, load average 40): a bound of
// three failed every run there, after every fault, and the suite then reported the load, not a
// fault. A run that hangs on a fault is still caught, by the wait for a success after the heal.
func (s *suite) jobTimeout() string {
	return s.hold(3*time.Minute, 8*time.Minute).String()
}

// sourcesConfig is TestChaos's sources and backup job: the demo databases, ZooKeeper and
// Langfuse's blob container (proxied: its storage endpoint, which the suite's faults hit).
func (s *suite) sourcesConfig(proxied string) string {
	return fmt.Sprintf(`[postgres]
dsn = %q

%s%s
%ssession_timeout = "4s"

[[jobs]]
name = "chaos-backup"
schedule = "*/5 * * * * *"
action = "backup"
timeout = %q
catch_up = "none"

%s`, s.pgDSN, s.env.ClickHouseTOML(s.db), s.include(), s.env.ZooKeeperTOML(), s.jobTimeout(), s.blobsConfig(proxied))
}

// include narrows the reduced suite's backups to the tables the load and the blob ingestion write, which keeps each
// run and restore short; the full suite backs up the whole demo database.
func (s *suite) include() string {
	if s.full {
		return ""
	}
	var q []string
	for _, t := range append(slices.Clone(loadTables), "blob_storage_file_log") {
		q = append(q, s.db+"."+t)
	}
	return "include_tables = " + devstack.TOMLList(q) + "\n"
}

func (s *suite) repoName() string {
	if s.fs {
		return "file"
	}
	return "azure"
}

// switchRepository stops the daemon, points it at the other repository and waits for its first
// complete snapshot there.
func (s *suite) switchRepository(fs bool) {
	s.countRuns()
	s.stopDaemon()
	s.cfg = s.writeConfig(fs)
	s.startDaemon()
	if s.pitr != nil {
		s.pitr.waitCovered(s, time.Now())
		return
	}
	if _, ok := s.waitSuccess(time.Now(), 4*time.Minute); !ok {
		s.t.Fatalf("no backup succeeded to the %s repository; see %s", s.repoName(), s.daemonLog())
	}
}

func (s *suite) daemonLog() string { return filepath.Join(s.dir, "daemon.log") }

func (s *suite) logFile(name string) io.Writer {
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { f.Close() })
	return f
}

func (s *suite) startDaemon() {
	t := s.t
	cmd := exec.Command(s.bin, "--config", filepath.Join(s.dir, "tracevault.toml"), "serve", "--grace", "30s")
	out := s.logFile("daemon.log")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the daemon: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.daemon, s.exited = cmd, exited
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + s.listen + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("the daemon exited at start: %v; see %s", err, s.daemonLog())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's status page did not answer within a minute: %v", err)
		}
	}
}

func (s *suite) killDaemon() {
	if s.daemon == nil || s.daemon.Process == nil {
		return
	}
	_ = s.daemon.Process.Kill()
	<-s.exited
	s.daemon = nil
	s.restarts++
}

func (s *suite) stopDaemon() {
	_ = s.daemon.Process.Signal(syscall.SIGTERM)
	if err := <-s.exited; err != nil {
		s.t.Errorf("the daemon exited with %v on SIGTERM; see %s", err, s.daemonLog())
	}
	s.daemon = nil
}

// status reads the status page's JSON. The page bounds each read of the repository (1.5 s) and
// keeps an error for its cache's 5 s, so on a loaded machine a read may time out: it is asked
// again for up to a minute (reads timed out for over 20 s at a load average of 70) before that
// counts as a failure.
func (s *suite) status() (jobs.Status, error) {
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		var st jobs.Status
		if st, err = s.statusOnce(); err == nil {
			return st, nil
		}
	}
	return jobs.Status{}, err
}

func (s *suite) statusOnce() (jobs.Status, error) {
	var st jobs.Status
	resp, err := http.Get("http://" + s.listen + "/api/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return st, fmt.Errorf("GET /api/v1/status: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func (s *suite) history() []jobs.Run {
	h := jobs.History{Repo: s.repo, Limit: 1000}
	runs, err := h.Recent(context.Background(), 1000)
	if err != nil {
		s.t.Errorf("read the run history: %v", err)
	}
	return runs
}

// waitRunning waits until a backup run is in progress, as the status page says. A run shorter
// than one poll of the page may never be seen running (a fast machine backs up the few rows
// changed since the last run in a moment), so the job's next scheduled start, which the page
// also gives, counts too: waiting until then puts the caller's fault at the start of a run.
func (s *suite) waitRunning(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		st, err := s.statusOnce()
		if err != nil {
			last = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for _, j := range st.Jobs {
			if j.Running {
				return nil
			}
		}
		for _, j := range st.Jobs {
			if wait := time.Until(j.NextRun); wait > 0 && wait < time.Until(deadline) {
				time.Sleep(wait + 20*time.Millisecond)
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no backup run started within %s (status page: %v); see %s", timeout, last, s.daemonLog())
}

// waitSuccess waits for a backup run started after from to succeed.
func (s *suite) waitSuccess(from time.Time, timeout time.Duration) (jobs.Run, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, r := range s.history() {
			if r.Outcome == jobs.OutcomeSucceeded && !r.Start.Before(from) {
				return r, true
			}
		}
		time.Sleep(time.Second)
	}
	return jobs.Run{}, false
}

// ---- the load

// startLoad runs `demo load` until stopLoad, starting it again (with a new ledger) whenever a
// fault ends it: an insert that fails ends a load run, as a Langfuse worker's batch would be
// retried by its queue.
func (s *suite) startLoad() {
	rate := 500
	if s.full {
		rate = 2000
	}
	s.runLoads(demo.LoadOptions{ClickHouse: s.env.CHNative, Database: s.db, PostgresDSN: s.pgDSN, Rate: rate}, nil)
}

// runLoads runs demo.Load with o, each run with a ledger of its own, until stopLoad; ended, if
// not nil, is called after each run with its ledger, result and error.
func (s *suite) runLoads(o demo.LoadOptions, ended func(ledger string, res demo.LoadResult, err error)) {
	ctx, cancel := context.WithCancel(context.Background())
	s.loadStop, s.loadDone = cancel, make(chan struct{})
	o.Log = slog.New(slog.NewTextHandler(s.logFile("load.log"), nil))
	go func() {
		defer close(s.loadDone)
		for n := 1; ctx.Err() == nil; n++ {
			ledger := filepath.Join(s.dir, fmt.Sprintf("ledger-%03d.jsonl", n))
			s.ledgerMu.Lock()
			s.ledgers = append(s.ledgers, ledger)
			s.ledgerMu.Unlock()
			o.Ledger, o.Seed = ledger, s.seed+uint64(n)
			res, err := demo.Load(ctx, o)
			if ended != nil {
				ended(ledger, res, err)
			}
			if err != nil {
				o.Log.Warn("load run ended by a fault; starting another", "err", err)
				sleep(ctx, time.Second)
			}
		}
	}()
}

func (s *suite) stopLoad() {
	if s.loadStop != nil {
		s.loadStop()
		<-s.loadDone
		s.loadStop = nil
	}
}

// ---- faults' means

// mountTmpfs mounts a small tmpfs for the filesystem repository, or returns "" where the
// machine does not allow it (not root).
func (s *suite) mountTmpfs() string {
	dir := filepath.Join(s.t.TempDir(), "tmpfs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", dir).CombinedOutput()
	if err != nil {
		s.t.Logf("chaos: cannot mount a tmpfs (%v: %s): the out-of-space fault is skipped", err, strings.TrimSpace(string(out)))
		return ""
	}
	s.t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			s.t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file into dir until the filesystem is full and returns its path.
func fill(dir string) (string, error) {
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path, nil
			}
			return path, fmt.Errorf("fill %s: %w", dir, err)
		}
	}
}

// ---- small helpers

func buildBinary(t *testing.T, dir string) string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..")
	bin := filepath.Join(dir, "tracevault")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tracevault")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build tracevault: %v\n%s", err, out)
	}
	return bin
}

func blobEndpoint(conn string) (*url.URL, error) {
	for _, part := range strings.Split(conn, ";") {
		if v, ok := strings.CutPrefix(part, "BlobEndpoint="); ok {
			return url.Parse(v)
		}
	}
	return nil, fmt.Errorf("the stack's Azure connection string has no BlobEndpoint")
}

func mustBlob(t *testing.T, conn string) *url.URL {
	u, err := blobEndpoint(conn)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func hostPort(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return ""
	}
	return u.Host
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
