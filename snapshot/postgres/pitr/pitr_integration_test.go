package pitr

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/postgres/pgdsn"
	"github.com/tracevault/tracevault/snapshot/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testLog() *slog.Logger {
	if os.Getenv("PITR_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return quiet
}

// ledgerPoint is the published tables' state as the writer recorded it, outside the published
// set, right after one of its commits.
type ledgerPoint struct {
	at   time.Time
	lsn  LSN
	sum  string
	note string
}

const stateSum = `SELECT md5(coalesce(string_agg(x, '|' ORDER BY x), '')) FROM (
	SELECT 'items:' || t::text AS x FROM public.items t
	UNION ALL SELECT 'nopk:' || t::text FROM public.nopk t
	UNION ALL SELECT 'tags:' || t::text FROM public.tags t) s`

type writer struct {
	t      *testing.T
	conn   *pgx.Conn
	rnd    *rand.Rand
	ledger []ledgerPoint
	ids    []int64
}

// record writes the current state's checksum into the ledger (outside the publication) and
// keeps it for the test.
func (w *writer) record(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, note string) ledgerPoint {
	w.t.Helper()
	var p ledgerPoint
	if err := q.QueryRow(ctx, stateSum).Scan(&p.sum); err != nil {
		w.t.Fatalf("checksum: %v", err)
	}
	if err := q.QueryRow(ctx, `INSERT INTO ledger.points (at, lsn, sum, note)
		VALUES (clock_timestamp(), pg_current_wal_lsn(), $1, $2) RETURNING at, lsn::text`, p.sum, note).Scan(&p.at, (*lsnText)(&p.lsn)); err != nil {
		w.t.Fatalf("ledger: %v", err)
	}
	p.note = note
	w.ledger = append(w.ledger, p)
	return p
}

type lsnText LSN

func (l *lsnText) Scan(src any) error {
	v, err := ParseLSN(fmt.Sprint(src))
	*l = lsnText(v)
	return err
}

// step commits one small random transaction and records the state after it.
func (w *writer) step(ctx context.Context) {
	w.t.Helper()
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	for range 1 + w.rnd.IntN(5) {
		var sql string
		var args []any
		switch op := w.rnd.IntN(10); {
		case op < 4 || len(w.ids) < 5:
			var id int64
			if err := tx.QueryRow(ctx, `INSERT INTO public.items (k, v, j) VALUES ($1, $2, $3) RETURNING id`,
				w.rnd.IntN(1000), strings.Repeat("x", w.rnd.IntN(40)), fmt.Sprintf(`{"n": %d}`, w.rnd.IntN(9))).Scan(&id); err != nil {
				w.t.Fatal(err)
			}
			w.ids = append(w.ids, id)
			continue
		case op < 6:
			sql, args = `UPDATE public.items SET k = k + 1, v = NULL WHERE id = $1`, []any{w.ids[w.rnd.IntN(len(w.ids))]}
		case op < 7:
			i := w.rnd.IntN(len(w.ids))
			sql, args = `DELETE FROM public.items WHERE id = $1`, []any{w.ids[i]}
			w.ids = append(w.ids[:i], w.ids[i+1:]...)
		case op < 8:
			sql, args = `INSERT INTO public.nopk (a, b) VALUES ($1, 'dup')`, []any{w.rnd.IntN(3)}
		case op < 9:
			sql, args = `UPDATE public.nopk SET b = b || '+' WHERE ctid = (SELECT ctid FROM public.nopk WHERE a = $1 LIMIT 1)`, []any{w.rnd.IntN(3)}
		default:
			sql, args = `INSERT INTO public.tags (name) VALUES ($1)`, []any{fmt.Sprintf("t%d", w.rnd.IntN(1e6))}
		}
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			w.t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		w.t.Fatal(err)
	}
	w.record(ctx, w.conn, "")
}

// workloadSchema is the writer's tables (published) and its ledger (not published).
var workloadSchema = []string{
	`CREATE TABLE public.items (id bigserial PRIMARY KEY, k int NOT NULL, v text, j jsonb)`,
	`CREATE TABLE public.nopk (a int, b text)`,
	`CREATE TABLE public.tags (id bigserial PRIMARY KEY, name text NOT NULL)`,
	`CREATE SCHEMA ledger`,
	`CREATE TABLE ledger.points (at timestamptz, lsn pg_lsn, sum text, note text)`,
}

// workloadConn connects to dsn, closed when the test ends, and creates the workload's tables,
// then runs the extra statements (seed rows).
func workloadConn(ctx context.Context, t *testing.T, dsn string, extra ...string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	for _, sql := range append(append([]string(nil), workloadSchema...), extra...) {
		execSQL(t, conn, sql)
	}
	return conn
}

// testSlot names a slot for one test and drops it when the test ends.
func testSlot(t testing.TB, env *devstack.Env, prefix string, also ...string) string {
	slot := fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e6)
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), env.PGDSN); err == nil {
			c.Exec(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ANY($1)", append([]string{slot}, also...))
			c.Close(context.Background())
		}
	})
	return slot
}

// restoreAndCheck restores to p's time into a new database (dropped after the test) and
// checks the published tables' state against the ledger's.
func restoreAndCheck(t *testing.T, env *devstack.Env, repo *store.Repository, dsn string, tg Target, want ledgerPoint) *Reached {
	t.Helper()
	ctx := context.Background()
	db := devstack.ScratchName("it_pitr_r")
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), env.PGDSN); err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	reached, err := Restore(ctx, repo, RestoreOptions{DSN: dsn, Database: db, Log: quiet}, tg)
	if err != nil {
		t.Fatalf("restore to %s: %v", tg, err)
	}
	rdsn, err := pgdsn.WithDatabase(dsn, db)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := pgx.Connect(ctx, rdsn)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(context.Background())
	var got string
	if err := rc.QueryRow(ctx, stateSum).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != want.sum {
		t.Errorf("restore to %s (%s) reached commit %s at %s after %d transactions: state %s, the ledger says %s", tg, want.note, reached.LSN, reached.Time.Format(time.RFC3339Nano), reached.Transactions, got, want.sum)
	}
	return reached
}

// chainFixture is what the chain tests (rotation, a lost slot, a stalled streamer) start from:
// a scratch database holding table t, a slot of the test's own, a directory repository and a
// connection to the database.
type chainFixture struct {
	dsn, slot string
	repo      *store.Repository
	conn      *pgx.Conn
}

func newChainFixture(ctx context.Context, t *testing.T, env *devstack.Env, db, slotPrefix string) *chainFixture {
	t.Helper()
	f := &chainFixture{dsn: env.PGDatabase(t, db), slot: testSlot(t, env, slotPrefix)}
	var err error
	if f.repo, err = store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: quiet}); err != nil {
		t.Fatal(err)
	}
	if f.conn, err = pgx.Connect(ctx, f.dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.conn.Close(context.Background()) })
	execSQL(t, f.conn, "CREATE TABLE t (id int PRIMARY KEY)")
	return f
}

// now is the server's clock: the times a chain records are the server's.
func (f *chainFixture) now(ctx context.Context, t *testing.T) time.Time {
	t.Helper()
	var at time.Time
	if err := f.conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

func execSQL(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// running is a streamer in a goroutine that the test can kill.
type running struct {
	s      *Streamer
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, repo *store.Repository, dsn, slot string, events *[]string, mu *sync.Mutex) *running {
	s := &Streamer{DSN: dsn, Slot: slot, Publication: slot, Interval: time.Second, Log: testLog(),
		Base: postgres.Source{Log: quiet}, Event: func(e string) { mu.Lock(); *events = append(*events, e); mu.Unlock() }}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx, repo) }()
	return r
}

// kill stops the streamer abruptly: whatever it had not made durable is lost with it.
func (r *running) kill(t *testing.T) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil && err != context.Canceled && !strings.Contains(err.Error(), "context canceled") {
			t.Fatalf("streamer failed: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("streamer did not stop")
	}
}

// waitChain waits for the first chain: its base is taken.
func waitChain(t *testing.T, repo *store.Repository, r *running) {
	t.Helper()
	for {
		if _, ok, err := Latest(context.Background(), repo); err != nil {
			t.Fatal(err)
		} else if ok {
			return
		}
		select {
		case err := <-r.done:
			t.Fatalf("streamer stopped: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitCovered waits until the repository's recovery point is past p.
func waitCovered(t *testing.T, repo *store.Repository, r *running, at time.Time) time.Duration {
	t.Helper()
	start := time.Now()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		select {
		case err := <-r.done:
			t.Fatalf("streamer stopped: %v", err)
		default:
		}
		rp, ok, err := Latest(context.Background(), repo)
		if err != nil {
			t.Fatal(err)
		}
		if ok && !rp.Time.Before(at) {
			return time.Since(start)
		}
	}
	t.Fatalf("recovery point never reached %s", at)
	return 0
}

func TestPITRAcceptance(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dsn := env.PGDatabase(t, "it_pitr")
	slot := testSlot(t, env, "tv_it")
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	conn := workloadConn(ctx, t, dsn,
		`INSERT INTO public.items (k, v) SELECT g, 'seed' FROM generate_series(1, 200) g`,
		`INSERT INTO public.nopk VALUES (1, 'a'), (1, 'a'), (2, NULL)`)
	w := &writer{t: t, conn: conn, rnd: rand.New(rand.NewPCG(1, 2))}
	if err := conn.QueryRow(ctx, "SELECT array_agg(id) FROM public.items").Scan(&w.ids); err != nil {
		t.Fatal(err)
	}
	var events []string
	var mu sync.Mutex
	r := start(t, repo, dsn, slot, &events, &mu)
	waitChain(t, repo, r)

	var targets []ledgerPoint
	var worstLag time.Duration
	for i := range 60 {
		w.step(ctx)
		if i == 20 {
			targets = append(targets, w.ledger[len(w.ledger)-1])
		}
	}
	// A truncate, then rows again.
	execSQL(t, conn, "TRUNCATE public.tags RESTART IDENTITY")
	w.record(ctx, conn, "after truncate")
	w.step(ctx)

	// Killed mid-stream: what it had not made durable is streamed again by the next one.
	r.kill(t)
	for range 20 {
		w.step(ctx)
	}
	r = start(t, repo, dsn, slot, &events, &mu)
	for range 20 {
		w.step(ctx)
	}
	targets = append(targets, w.ledger[len(w.ledger)-1])

	// A large transaction: the ledger point inside its span, taken by another session, must
	// restore to the state before it.
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO public.items (k, v) SELECT g, repeat('L', 100) FROM generate_series(1, 10000) g`); err != nil {
		t.Fatal(err)
	}
	inside := w.record(ctx, other, "inside the large transaction")
	if _, err := tx.Exec(ctx, `UPDATE public.items SET k = -k WHERE v = 'seed'`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	targets = append(targets, inside)
	w.record(ctx, conn, "after the large transaction")
	for range 10 {
		w.step(ctx)
	}
	worstLag = max(worstLag, waitCovered(t, repo, r, w.ledger[len(w.ledger)-1].at))
	t.Logf("recovery point passed the writer's last commit %s after it (large transaction, kill and resume before)", worstLag)
	lsnTarget := w.ledger[len(w.ledger)-1]

	// A schema change ends the chain; the next base continues.
	execSQL(t, conn, "ALTER TABLE public.items ADD COLUMN extra int DEFAULT 7")
	for range 10 {
		w.step(ctx)
	}
	afterDDL := w.ledger[len(w.ledger)-1]
	t.Logf("recovery point passed the first commit after the schema change %s after it (a new base in between)", waitCovered(t, repo, r, afterDDL.at))
	for range 5 {
		w.step(ctx)
	}
	worstLag = waitCovered(t, repo, r, w.ledger[len(w.ledger)-1].at)
	targets = append(targets, w.ledger[len(w.ledger)-1])
	r.kill(t)
	t.Logf("recovery point passed the writer's last commit %s after it", worstLag)

	mu.Lock()
	if !strings.Contains(strings.Join(events, "\n"), "schema change") {
		t.Errorf("no schema change was reported; events: %q", events)
	}
	mu.Unlock()
	chains, err := Chains(ctx, repo)
	if err != nil || len(chains) != 2 || chains[0].Ended.IsZero() {
		t.Fatalf("want 2 chains, the first ended by the schema change: %+v, %v", chains, err)
	}

	for _, p := range targets {
		reached := restoreAndCheck(t, env, repo, dsn, Target{Time: p.at}, p)
		t.Logf("restored to %s: commit %s at %s after %d transactions", p.at.Format(time.RFC3339Nano), reached.LSN, reached.Time.Format(time.RFC3339Nano), reached.Transactions)
	}
	lsnTarget.note = "LSN target"
	restoreAndCheck(t, env, repo, dsn, Target{LSN: lsnTarget.lsn}, lsnTarget)

	// No exact recovery point: between the first chain's end and the second base, past the
	// latest segment, before the first base.
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{chains[1].BaseTime.Add(-time.Microsecond), "schema change"},
		{time.Now().Add(time.Hour), "latest durable segment"},
		{chains[0].BaseTime.Add(-time.Second), "oldest base"},
	} {
		if _, err := PlanRestore(ctx, repo, Target{Time: tc.at}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("restore to %s: want a refusal naming %q, got %v", tc.at, tc.want, err)
		}
	}
}

// TestPITRSlotLost: a slot dropped (or invalidated by max_slot_wal_keep_size) while no streamer
// ran ends its chain, says so, and a new chain with a new base starts; the old chain still
// restores up to its last durable segment.
func TestPITRSlotLost(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := newChainFixture(ctx, t, env, "it_pitrl", "tv_itl")
	dsn, slot, repo, conn := f.dsn, f.slot, f.repo, f.conn
	admin, err := pgx.Connect(ctx, env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	// The stopped streamer's walsender may hold the slot a moment longer, and an active slot
	// cannot be dropped: end it, and wait until the slot is really gone, or the new streamer
	// would find the old slot and resume instead of starting a new chain.
	dropSlot := func() {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			var left int
			err := admin.QueryRow(ctx, `SELECT count(*) FROM (SELECT CASE WHEN active_pid IS NOT NULL THEN pg_terminate_backend(active_pid) END,
				CASE WHEN active_pid IS NULL THEN pg_drop_replication_slot(slot_name) END FROM pg_replication_slots WHERE slot_name = $1) s`, slot).Scan(&left)
			if err == nil && left == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("drop replication slot %s: still there after 30s (%v)", slot, err)
			}
		}
	}
	var events []string
	var mu sync.Mutex
	r := start(t, repo, dsn, slot, &events, &mu)
	waitChain(t, repo, r)
	execSQL(t, conn, "INSERT INTO t SELECT generate_series(1, 10)")
	at := f.now(ctx, t)
	waitCovered(t, repo, r, at)
	r.kill(t)
	dropSlot()
	execSQL(t, conn, "INSERT INTO t SELECT generate_series(11, 20)") // lost with the slot
	r = start(t, repo, dsn, slot, &events, &mu)
	defer r.kill(t)
	for {
		chains, err := Chains(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		if len(chains) == 2 {
			if chains[0].Ended.IsZero() || !strings.Contains(chains[0].EndReason, "gone or invalidated") {
				t.Fatalf("first chain: ended %s, %q", chains[0].Ended, chains[0].EndReason)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no new chain after the slot was lost: %+v", chains)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	said := strings.Join(events, "\n")
	mu.Unlock()
	if !strings.Contains(said, "slot "+slot+" is gone") {
		t.Errorf("the lost slot was not reported: %q", said)
	}
	plan, err := PlanRestore(ctx, repo, Target{Time: at})
	if err != nil || plan.Chain.Ended.IsZero() {
		t.Fatalf("restore to a time of the ended chain: %+v, %v", plan, err)
	}
}
