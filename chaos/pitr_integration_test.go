package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/internal/faultproxy"
	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestChaosPITR runs the daemon with [postgres] pitr while a writer commits transactions one
// after another, each recorded in a ledger with the server's clock and WAL insert position read
// just before its COMMIT and just after it. It injects repository storage faults (503s, resets,
// stalls, a full disk) and stops the daemon with SIGSTOP past the server's wal_sender_timeout,
// then SIGCONT. After each fault it restores with `tracevault restore --to` and `--to-lsn` to
// points before, during and after the fault into scratch databases and checks that every
// transaction the ledger says committed at or before the point is there, whole, and none after
// (docs/pitr.md's boundary rule), that every chain is continuous with one record per segment,
// that /metrics and the status page report the chain as the repository holds it, and that
// `verify --read-data` finds no problem. The reduced form (the default, in CI) injects resets and
// the SIGSTOP with short holds and restores to two points; the full form
// (TRACEVAULT_CHAOS=full, `make chaos`) injects every fault with longer holds and restores to four.
func TestChaosPITR(t *testing.T) {
	devstack.Disruptive(t)
	env := devstack.Require(t)
	s := newSuite(t, env)
	p := &pitrChaos{}
	s.pitr = p
	defer p.summary(s)
	p.start(s)
	for _, f := range p.faults(s) {
		if t.Failed() {
			break
		}
		if s.wanted(f) {
			p.round(s, f)
		}
	}
	p.writer.stop()
	s.stop()
}

// pitrChaos is TestChaosPITR's part of the suite.
type pitrChaos struct {
	slot          string
	senderTimeout time.Duration // the daemon's sessions' wal_sender_timeout
	writer        *pgWriter
	restores      int

	// What the summary prints.
	points    []string
	inside    int64 // ledger transactions a restore had to hold
	outside   int64 // ledger transactions a restore had to leave out
	lost      int64
	extra     int64
	broken    []string
	duplicate []string
	segments  int
}

// config is the daemon's sources: the writer's database with point-in-time recovery, its
// sessions' wal_sender_timeout short so that a stopped daemon loses its walsender within the
// fault. No backup job: the chain's base is the streamer's own.
func (p *pitrChaos) config(s *suite) string {
	u, err := url.Parse(s.pgDSN)
	if err != nil {
		s.t.Fatal(err)
	}
	// The space as %20: PostgreSQL clients read a + in a DSN as a +.
	opt := fmt.Sprintf("-c wal_sender_timeout=%dms", p.senderTimeout.Milliseconds())
	u.RawQuery += "&options=" + strings.ReplaceAll(url.QueryEscape(opt), "+", "%20")
	return fmt.Sprintf("[postgres]\ndsn = %q\npitr = true\npitr_slot = %q\npitr_segment_interval = \"1s\"\n", u.String(), p.slot)
}

// start creates the writer's database and tables, starts the daemon and the writer, and waits
// for the chain to cover a first commit.
func (p *pitrChaos) start(s *suite) {
	t := s.t
	ctx := context.Background()
	s.prepare()
	s.db = devstack.ScratchName("chaos_pitr") // names the Azure repository's prefix
	s.pgDSN = s.env.PGDatabase(t, "chaos_pitr")
	p.slot = fmt.Sprintf("tv_chaos_%d", os.Getpid())
	p.senderTimeout = 4 * time.Second
	t.Cleanup(func() { p.dropSlot(s) }) // after the daemon is gone, before the database goes
	conn, err := pgx.Connect(ctx, s.pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `CREATE TABLE ledger (n bigint PRIMARY KEY, rows int NOT NULL);
		CREATE TABLE items (n bigint NOT NULL, k int NOT NULL, pad text, PRIMARY KEY (n, k));
		CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL);
		INSERT INTO counter VALUES (1, 0)`)
	conn.Close(ctx)
	if err != nil {
		t.Fatalf("create the ledger tables: %v", err)
	}
	s.cfg = s.writeConfig(false)
	s.startDaemon()
	t.Cleanup(func() {
		p.writer.stop()
		s.killDaemon()
	})
	every := 40 * time.Millisecond
	if s.full {
		every = 15 * time.Millisecond
	}
	p.writer = startWriter(s, every)
	p.waitCovered(s, time.Now())
}

func (p *pitrChaos) dropSlot(s *suite) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, s.env.PGDSN); err == nil {
		_, _ = c.Exec(ctx, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL", p.slot)
		time.Sleep(500 * time.Millisecond)
		_, _ = c.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", p.slot)
		c.Close(ctx)
	}
}

func (p *pitrChaos) faults(s *suite) []fault {
	hold := s.hold
	return []fault{
		{name: "storage answers 503", full: true,
			inject: s.storageFault(faultproxy.Mode{Fault: faultproxy.Unavailable}, hold(6*time.Second, 20*time.Second))},
		{name: "storage resets connections",
			inject: s.storageFault(faultproxy.Mode{Fault: faultproxy.Reset, After: int64(1<<10 + s.rng.IntN(64<<10))}, hold(6*time.Second, 20*time.Second))},
		{name: "storage stalls", full: true,
			inject: s.storageFault(faultproxy.Mode{Fault: faultproxy.Stall, Stall: hold(20*time.Second, 45*time.Second)}, hold(5*time.Second, 15*time.Second))},
		{name: "daemon SIGSTOPped past wal_sender_timeout", inject: p.freeze(hold(3*time.Second, 10*time.Second))},
		{name: "daemon SIGSTOPped past wal_sender_timeout while a second daemon takes the slot", full: true, inject: p.takeover(hold(5*time.Second, 10*time.Second))},
		{name: "daemon killed -9 and restarted", full: true, inject: restartDaemon},
		{name: "filesystem repository out of space (tmpfs)", fs: true, inject: s.outOfSpace(hold(6*time.Second, 20*time.Second))},
	}
}

// freeze stops the daemon with SIGSTOP until the server has dropped its walsender (past
// wal_sender_timeout) and for extra after that, then continues it.
func (p *pitrChaos) freeze(extra time.Duration) func(context.Context, *suite) error {
	return func(ctx context.Context, s *suite) error {
		resume, err := p.stopPastTimeout(ctx, s)
		defer resume()
		if err != nil {
			return err
		}
		sleep(ctx, extra)
		return nil
	}
}

// takeover stops the daemon with SIGSTOP past wal_sender_timeout while a second daemon on the
// same repository and slot takes the slot over and streams on, continues the first one (which
// must store nothing the second went on from), then stops the second: the first takes the slot
// back, as an HA pair's survivor would.
func (p *pitrChaos) takeover(extra time.Duration) func(context.Context, *suite) error {
	return func(ctx context.Context, s *suite) error {
		text, err := os.ReadFile(filepath.Join(s.dir, "tracevault.toml"))
		if err != nil {
			return err
		}
		second := filepath.Join(s.dir, "second.toml")
		listen := freeAddr(s.t)
		if err := os.WriteFile(second, []byte(strings.Replace(string(text), fmt.Sprintf("listen = %q", s.listen), fmt.Sprintf("listen = %q", listen), 1)), 0o600); err != nil {
			return err
		}
		cmd := exec.Command(s.bin, "--config", second, "serve", "--grace", "10s")
		out := s.logFile("daemon-second.log")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start the second daemon: %w", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				<-exited
			}
		}()
		first, _, err := p.slotState(ctx, s)
		if err != nil {
			return err
		}
		resume, err := p.stopPastTimeout(ctx, s)
		defer resume()
		if err != nil {
			return err
		}
		for deadline := time.Now().Add(time.Minute); ; sleep(ctx, 200*time.Millisecond) {
			walsender, active, err := p.slotState(ctx, s)
			if err != nil {
				return err
			}
			if active && walsender != first {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the second daemon did not take slot %s within a minute; see %s", p.slot, filepath.Join(s.dir, "daemon-second.log"))
			}
		}
		s.t.Logf("chaos: the second daemon took slot %s", p.slot)
		sleep(ctx, extra)
		resume() // the first daemon wakes while the second holds the slot
		sleep(ctx, extra)
		return nil
	}
}

// slotState reads the replication slot's walsender and whether it is active.
func (p *pitrChaos) slotState(ctx context.Context, s *suite) (walsender int32, active bool, err error) {
	conn, err := pgx.Connect(ctx, s.env.PGDSN)
	if err != nil {
		return 0, false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var pid *int32
	if err := conn.QueryRow(ctx, "SELECT active_pid, active FROM pg_replication_slots WHERE slot_name = $1", p.slot).Scan(&pid, &active); err != nil {
		return 0, false, fmt.Errorf("read slot %s: %w", p.slot, err)
	}
	if pid != nil {
		walsender = *pid
	}
	return walsender, active, nil
}

// stopPastTimeout stops the daemon with SIGSTOP and waits until the server has dropped its
// walsender (past wal_sender_timeout). The caller always calls resume, which continues the
// daemon, error or not.
func (p *pitrChaos) stopPastTimeout(ctx context.Context, s *suite) (resume func(), err error) {
	pid := s.daemon.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return func() {}, fmt.Errorf("SIGSTOP the daemon (pid %d): %w", pid, err)
	}
	resume = func() { _ = syscall.Kill(pid, syscall.SIGCONT) }
	return resume, p.waitDropped(ctx, s)
}

// waitDropped waits until the server has dropped the stopped daemon's walsender.
func (p *pitrChaos) waitDropped(ctx context.Context, s *suite) error {
	stopped := time.Now()
	for {
		_, active, err := p.slotState(ctx, s)
		if err != nil {
			return err
		}
		if !active {
			s.t.Logf("chaos: the server dropped the stopped daemon's walsender after %s", time.Since(stopped).Round(time.Millisecond))
			return nil
		}
		if time.Since(stopped) > p.senderTimeout+30*time.Second {
			return fmt.Errorf("slot %s still active %s after the daemon was stopped (wal_sender_timeout %s)", p.slot, time.Since(stopped).Round(time.Second), p.senderTimeout)
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

// round injects f at a random moment of the stream, then restores to points before, during and
// after it and checks them and the chains.
func (p *pitrChaos) round(s *suite, f fault) {
	t := s.t
	ctx := context.Background()
	if !s.onRepository(f) {
		return
	}
	injected, healed := s.inject(f, 2*time.Second)
	sleep(ctx, 2*time.Second)
	before, ok1 := p.writer.lastBefore(injected)
	during, ok2 := p.writer.lastBefore(injected.Add(healed.Sub(injected) / 2))
	after, ok3 := p.writer.lastBefore(time.Now())
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("the writer acknowledged no commit before %s", f.name)
	}
	targets := []pitrTarget{{what: "before", c: before}, {what: "after", c: after, lsn: !s.full}}
	if s.full {
		targets = append(targets, pitrTarget{what: "during", c: during}, pitrTarget{what: "during", c: during, lsn: true})
	}
	p.waitCovered(s, after.After)
	t.Logf("chaos: %s healed after %s; the recovery point passed it", f.name, healed.Sub(injected).Round(time.Millisecond))
	for _, tg := range targets {
		p.restoreAndCheck(ctx, s, f, tg)
	}
	p.checkChains(ctx, s, f)
}

// waitCovered waits until the repository's recovery point is after at (a commit at or before
// at is then restorable).
func (p *pitrChaos) waitCovered(s *suite, at time.Time) {
	ctx := context.Background()
	var last error
	for deadline := time.Now().Add(4 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		rp, ok, err := pitr.Latest(ctx, s.repo)
		if err == nil && ok && rp.Time.After(at) {
			return
		}
		last = err
	}
	s.t.Fatalf("the %s repository's recovery point did not pass %s within 4 minutes (%v); see %s", s.repoName(), at.Format(time.RFC3339Nano), last, s.daemonLog())
}

// pitrTarget is a restore point: just after commit c (by its time or its WAL position).
type pitrTarget struct {
	what string // before, during or after the fault
	c    pgCommit
	lsn  bool
}

func (tg pitrTarget) args() []string {
	if tg.lsn {
		return []string{"--to-lsn", tg.c.AfterLSN.String()}
	}
	return []string{"--to", tg.c.After.Format(time.RFC3339Nano)}
}

// restoreAndCheck restores to tg with the binary into a scratch database and checks it against
// the ledger.
func (p *pitrChaos) restoreAndCheck(ctx context.Context, s *suite, f fault, tg pitrTarget) {
	t := s.t
	p.restores++
	u, err := url.Parse(s.pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("%s_r%d", strings.TrimPrefix(u.Path, "/"), p.restores)
	defer dropDatabase(s.env, db)
	args := append([]string{"--config", filepath.Join(s.dir, "tracevault.toml"), "--json", "restore", "--only", "postgres", "--pg-database", db}, tg.args()...)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Stderr = s.logFile("restore.log")
	out, err := cmd.Output()
	point := fmt.Sprintf("%s %s %s", f.name, tg.what, strings.Join(tg.args(), " "))
	if err != nil {
		t.Errorf("restore to %s: %v; see %s", point, err, filepath.Join(s.dir, "restore.log"))
		return
	}
	var reached pitr.Reached
	if err := json.Unmarshal(out, &reached); err != nil {
		t.Errorf("restore to %s printed %q: %v", point, out, err)
		return
	}
	u.Path = "/" + db
	got, err := readRestored(ctx, u.String())
	if err != nil {
		t.Errorf("read the database restored to %s: %v", point, err)
		return
	}
	inside, outside, problems := p.writer.check(got, tg)
	p.inside += inside
	p.outside += outside
	for _, pr := range problems {
		if pr.lost {
			p.lost++
		} else {
			p.extra++
		}
		t.Errorf("restore to %s (reached %s at %s): %s", point, reached.LSN, reached.Time.Format(time.RFC3339Nano), pr.what)
	}
	p.points = append(p.points, fmt.Sprintf("%s: %d transactions (last n=%d), chain %s", point, len(got.rows), got.max, reached.Chain))
}

func dropDatabase(env *devstack.Env, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, env.PGDSN); err == nil {
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
		c.Close(ctx)
	}
}

// restored is what a restored database holds: each ledger transaction's items, and the counter
// the last one set.
type restored struct {
	rows    map[int64]int // n -> its ledger row's item count
	items   map[int64]int // n -> items restored
	max     int64
	counter int64
}

func readRestored(ctx context.Context, dsn string) (restored, error) {
	r := restored{rows: map[int64]int{}, items: map[int64]int{}}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return r, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, _ := conn.Query(ctx, "SELECT n, rows FROM ledger")
	var n int64
	var k int
	if _, err := pgx.ForEachRow(rows, []any{&n, &k}, func() error { r.rows[n] = k; r.max = max(r.max, n); return nil }); err != nil {
		return r, fmt.Errorf("read the restored ledger: %w", err)
	}
	rows, _ = conn.Query(ctx, "SELECT n, count(*)::int FROM items GROUP BY n")
	if _, err := pgx.ForEachRow(rows, []any{&n, &k}, func() error { r.items[n] = k; return nil }); err != nil {
		return r, fmt.Errorf("read the restored items: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT n FROM counter WHERE id = 1").Scan(&r.counter); err != nil {
		return r, fmt.Errorf("read the restored counter: %w", err)
	}
	return r, nil
}

// checkChains checks that every chain of the repository is continuous, with one record per
// segment, that /metrics and the status page say so too, and that verify --read-data finds no
// problem. A chain that is not continuous is an error, and one more if the daemon did not
// report it.
func (p *pitrChaos) checkChains(ctx context.Context, s *suite, f fault) {
	t := s.t
	chains, damaged, err := pitr.ReadChains(ctx, s.repo)
	if err != nil {
		t.Errorf("after %s: read the chains: %v", f.name, err)
		return
	}
	for _, d := range damaged {
		t.Errorf("after %s: damaged chain record %s: %s", f.name, d.Name, d.Error)
	}
	brokenNow := false
	p.segments = 0
	for _, c := range chains {
		// The records are listed before the path is followed: the stream adds segments
		// meanwhile, and each record listed must be on the path.
		var records []string
		if err := s.repo.Backend().List(ctx, "pitr/"+c.ID+"/seg/", func(o store.ObjectInfo) error {
			if strings.HasSuffix(o.Name, ".json") {
				records = append(records, path.Base(o.Name))
			}
			return nil
		}); err != nil {
			t.Errorf("after %s: list chain %s: %v", f.name, c.ID, err)
		}
		segs, err := pitr.Segments(ctx, s.repo, c.ID)
		p.segments += len(segs)
		if err != nil {
			brokenNow = true
			p.broken = append(p.broken, fmt.Sprintf("%s: %v", f.name, err))
			t.Errorf("after %s: chain %s is not continuous: %v", f.name, c.ID, err)
			continue
		}
		onPath := map[string]bool{}
		for _, sg := range segs {
			onPath[fmt.Sprintf("%016X.json", uint64(sg.EndLSN))] = true
		}
		for _, r := range records {
			if !onPath[r] {
				p.duplicate = append(p.duplicate, fmt.Sprintf("%s: chain %s: %s", f.name, c.ID, r))
				t.Errorf("after %s: chain %s: segment record %s is not on the chain's path: a writer stored a segment beside another's", f.name, c.ID, r)
			}
		}
	}
	flag, err := scrapeGauge(s.listen, "tracevault_pitr_chain_broken")
	switch {
	case err != nil:
		t.Errorf("after %s: /metrics: %v", f.name, err)
	case brokenNow && flag != 1 && !p.reported(s):
		t.Errorf("after %s: a chain is not continuous, but tracevault_pitr_chain_broken is %v and no run history event says so", f.name, flag)
	case !brokenNow && flag != 0:
		t.Errorf("after %s: tracevault_pitr_chain_broken is %v while every chain is continuous", f.name, flag)
	}
	if st, err := s.status(); err != nil {
		t.Errorf("after %s: status page: %v", f.name, err)
	} else {
		for _, fr := range st.Freshness {
			if fr.Source == config.SourcePostgres && !brokenNow && (fr.Level == jobs.LevelBad || !strings.Contains(fr.Reason, "point-in-time")) {
				t.Errorf("after %s: the status page's postgres freshness is %s: %s", f.name, fr.Level, fr.Reason)
			}
		}
	}
	rep, err := jobs.Verify(ctx, s.repo, jobs.VerifyRequest{ReadData: true})
	if err != nil {
		t.Errorf("after %s: verify --read-data: %v", f.name, err)
		return
	}
	for _, pr := range rep.Problems {
		t.Errorf("after %s: verify --read-data: %s: %s", f.name, pr.Object, pr.Error)
	}
}

// reported says whether the run history holds the stream's word that a chain is not continuous.
func (p *pitrChaos) reported(s *suite) bool {
	for _, r := range s.history() {
		if r.Action == "pitr" && strings.Contains(r.Error, "not continuous") {
			return true
		}
	}
	return false
}

// scrapeGauge reads one unlabelled gauge from the daemon's /metrics.
func scrapeGauge(listen, name string) (float64, error) {
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s", resp.Status, name)
}

func (p *pitrChaos) summary(s *suite) {
	if s.repo != nil {
		s.countRuns()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos pitr summary (full=%v, seed=%d)\n", s.full, s.seed)
	fmt.Fprintf(&b, "  faults injected:    %d\n", len(s.injected))
	for _, f := range s.injected {
		fmt.Fprintf(&b, "    - %s\n", f)
	}
	if p.writer != nil {
		acked, unknown := p.writer.counts()
		fmt.Fprintf(&b, "  transactions:       %d committed by the writer (%d whose commit went unanswered)\n", acked, unknown)
	}
	fmt.Fprintf(&b, "  restores:           %d points, each into a scratch database\n", len(p.points))
	for _, pt := range p.points {
		fmt.Fprintf(&b, "    - %s\n", pt)
	}
	fmt.Fprintf(&b, "  checked:            %d transactions that had to be restored, %d that had to be left out\n", p.inside, p.outside)
	fmt.Fprintf(&b, "  transactions lost:  %d; restored past the point: %d\n", p.lost, p.extra)
	fmt.Fprintf(&b, "  chains:             %d breaks, %d segment records off the path (%d segments at the last check)\n", len(p.broken), len(p.duplicate), p.segments)
	s.t.Log(b.String())
	fmt.Print(b.String())
}

// ---- the writer

// pgCommit is one acknowledged transaction of the writer: ledger row n with its items, the
// counter set to n. Before and BeforeLSN were read inside it just before its COMMIT, After and
// AfterLSN just after the server acknowledged it, so its commit lies between.
type pgCommit struct {
	N                   int64
	Rows                int
	Before, After       time.Time
	BeforeLSN, AfterLSN pitr.LSN
	Acked               time.Time // local time of the acknowledgement
}

// pgWriter commits one transaction at a time and remembers each.
type pgWriter struct {
	mu      sync.Mutex
	commits []pgCommit     // in commit order
	unknown map[int64]bool // COMMIT sent, answer lost: either way is right
	cancel  context.CancelFunc
	done    chan struct{}
}

func startWriter(s *suite, every time.Duration) *pgWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &pgWriter{unknown: map[int64]bool{}, cancel: cancel, done: make(chan struct{})}
	log := s.logFile("writer.log")
	go func() {
		defer close(w.done)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		for n := int64(1); ctx.Err() == nil; n++ {
			if conn == nil {
				c, err := pgx.Connect(ctx, s.pgDSN)
				if err != nil {
					fmt.Fprintf(log, "connect: %v\n", err)
					sleep(ctx, time.Second)
					n--
					continue
				}
				conn = c
			}
			c, err := commitOne(ctx, conn, n, 1+int(n%7))
			if err != nil {
				if ctx.Err() != nil {
					w.mu.Lock()
					w.unknown[n] = true
					w.mu.Unlock()
					return
				}
				fmt.Fprintf(log, "transaction %d: %v\n", n, err)
				w.mu.Lock()
				w.unknown[n] = true
				w.mu.Unlock()
				conn.Close(context.Background())
				conn = nil
				continue
			}
			w.mu.Lock()
			w.commits = append(w.commits, c)
			w.mu.Unlock()
			sleep(ctx, every)
		}
	}()
	return w
}

func commitOne(ctx context.Context, conn *pgx.Conn, n int64, rows int) (pgCommit, error) {
	c := pgCommit{N: n, Rows: rows}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return c, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "INSERT INTO ledger (n, rows) VALUES ($1, $2)", n, rows); err != nil {
		return c, err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO items (n, k, pad) SELECT $1, k, repeat('x', 200) FROM generate_series(1, $2) k", n, rows); err != nil {
		return c, err
	}
	if _, err := tx.Exec(ctx, "UPDATE counter SET n = $1 WHERE id = 1", n); err != nil {
		return c, err
	}
	var lsn string
	if err := tx.QueryRow(ctx, "SELECT clock_timestamp(), pg_current_wal_insert_lsn()::text").Scan(&c.Before, &lsn); err != nil {
		return c, err
	}
	if c.BeforeLSN, err = pitr.ParseLSN(lsn); err != nil {
		return c, err
	}
	if err := tx.Commit(ctx); err != nil {
		return c, err
	}
	c.Acked = time.Now()
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp(), pg_current_wal_insert_lsn()::text").Scan(&c.After, &lsn); err != nil {
		return c, err
	}
	c.AfterLSN, err = pitr.ParseLSN(lsn)
	return c, err
}

func (w *pgWriter) stop() {
	if w != nil && w.cancel != nil {
		w.cancel()
		<-w.done
	}
}

func (w *pgWriter) counts() (acked, unknown int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.commits), len(w.unknown)
}

// lastBefore is the last commit acknowledged before at.
func (w *pgWriter) lastBefore(at time.Time) (pgCommit, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.commits) - 1; i >= 0; i-- {
		if w.commits[i].Acked.Before(at) {
			return w.commits[i], true
		}
	}
	return pgCommit{}, false
}

type ledgerProblem struct {
	lost bool // a transaction that had to be restored is not (else one past the point is)
	what string
}

// check compares a database restored to tg with the ledger: every transaction that committed
// at or before the point restored whole, none after it, the counter the last one's. A commit
// whose time (or WAL position) brackets the point may be either side of it.
func (w *pgWriter) check(got restored, tg pitrTarget) (inside, outside int64, problems []ledgerProblem) {
	w.mu.Lock()
	commits := w.commits
	unknown := w.unknown
	w.mu.Unlock()
	const most = 5 // problems named one by one
	add := func(lost bool, format string, args ...any) {
		if len(problems) < most {
			problems = append(problems, ledgerProblem{lost: lost, what: fmt.Sprintf(format, args...)})
		} else {
			problems = append(problems, ledgerProblem{lost: lost, what: "…"})
		}
	}
	known := map[int64]bool{}
	for _, c := range commits {
		known[c.N] = true
		in, out := !c.After.After(tg.c.After), c.Before.After(tg.c.After)
		if tg.lsn {
			in, out = c.AfterLSN <= tg.c.AfterLSN, c.BeforeLSN >= tg.c.AfterLSN
		}
		rows, ok := got.rows[c.N]
		switch {
		case in && !ok:
			inside++
			add(true, "transaction %d committed before the point (acknowledged, then the server read %s, %s) is not restored", c.N, c.After.Format(time.RFC3339Nano), c.AfterLSN)
		case in:
			inside++
		case out && ok:
			outside++
			add(false, "transaction %d committed after the point (the server read %s, %s before its COMMIT) is restored", c.N, c.Before.Format(time.RFC3339Nano), c.BeforeLSN)
		case out:
			outside++
		}
		if ok && (rows != c.Rows || got.items[c.N] != c.Rows) {
			add(true, "transaction %d restored in part: %d of its %d items", c.N, got.items[c.N], c.Rows)
		}
	}
	for n := range got.rows {
		if !known[n] && !unknown[n] {
			add(false, "ledger row %d restored, which the writer never committed", n)
		}
	}
	if got.counter != got.max {
		add(true, "the counter reads %d but the newest restored transaction is %d: an update was not replayed in order", got.counter, got.max)
	}
	return inside, outside, problems
}
