package pitr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/internal/faultproxy"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestPITRStalledStreamerLosesTheChain is issue 28's reproduction on a real server: streamer A
// freezes holding a cut segment; the server's walsender for A is terminated (as
// wal_sender_timeout does); B takes the slot and stores the same transactions on. When A wakes
// up it must store nothing, stop and say so, and the chain must stay continuous and restorable.
func TestPITRStalledStreamerLosesTheChain(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := newChainFixture(ctx, t, env, "it_pitrs", "tv_its")
	dsn, slot, repo, conn := f.dsn, f.slot, f.repo, f.conn
	admin, err := pgx.Connect(ctx, env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	now := func() time.Time { return f.now(ctx, t) }

	var events []string
	var mu sync.Mutex
	a := start(t, repo, dsn, slot, &events, &mu)
	waitChain(t, repo, a)
	execSQL(t, conn, "INSERT INTO t SELECT generate_series(1, 10)")
	waitCovered(t, repo, a, now())

	// Freeze A in its next cut, holding rows 11..20.
	held, release := make(chan Segment, 1), make(chan struct{})
	beforeStore = func(s *Streamer, seg *Segment) {
		if s == a.s {
			held <- *seg
			<-release
		}
	}
	defer func() { beforeStore = nil }()
	execSQL(t, conn, "INSERT INTO t SELECT generate_series(11, 20)")
	var segA Segment
	select {
	case segA = <-held:
	case <-ctx.Done():
		t.Fatal("streamer A never cut its segment")
	}
	// The server gives up on A (only this test's slot's walsender is terminated).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var active bool
		if err := admin.QueryRow(ctx, `SELECT coalesce(bool_or(active_pid IS NOT NULL AND pg_terminate_backend(active_pid)), false) OR bool_or(active)
			FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active); err != nil {
			t.Fatal(err)
		}
		if !active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s still active after terminating its walsender", slot)
		}
	}
	execSQL(t, conn, "INSERT INTO t SELECT generate_series(21, 30)")
	after := now()
	b := start(t, repo, dsn, slot, &events, &mu)
	defer b.kill(t)
	waitCovered(t, repo, b, after)

	close(release)
	select {
	case err := <-a.done:
		if !errors.Is(err, errLostChain) {
			t.Fatalf("stalled A woke up and stopped with %v; want errLostChain", err)
		}
	case <-ctx.Done():
		t.Fatal("stalled A did not stop after waking up")
	}
	a.cancel()
	mu.Lock()
	said := strings.Join(events, "\n")
	mu.Unlock()
	if !strings.Contains(said, "another writer continued") {
		t.Errorf("A lost the chain without saying so: %q", said)
	}
	chains, err := Chains(ctx, repo)
	if err != nil || len(chains) != 1 {
		t.Fatalf("chains: %+v, %v", chains, err)
	}
	segs, err := Segments(ctx, repo, chains[0].ID)
	if err != nil {
		t.Fatalf("the chain is broken after A woke up: %v", err)
	}
	names, err := segmentRecords(ctx, repo, chains[0].ID)
	if err != nil || len(names) != len(segs) {
		t.Errorf("%d segment records for %d segments (%v): A's %s..%s was stored beside B's", len(names), len(segs), err, segA.StartLSN, segA.EndLSN)
	}
	if _, err := PlanRestore(ctx, repo, Target{Time: after}); err != nil {
		t.Fatalf("plan a restore after A woke up: %v", err)
	}
	if st := b.s.State(); st.Broken != "" {
		t.Errorf("B reports the chain broken: %s", st.Broken)
	}
}

// TestPITRProbeDeadline: a network that stops forwarding without closing anything (a partition,
// a frozen proxy) ends the stream within the probe's deadline, instead of hanging it while it
// holds received transactions.
func TestPITRProbeDeadline(t *testing.T) {
	env := devstack.Require(t)
	defer func(d time.Duration) { probeTimeout = d }(probeTimeout)
	probeTimeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dsn := env.PGDatabase(t, "it_pitrh")
	slot := testSlot(t, env, "tv_ith")
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf("%s:%d", pc.Host, pc.Port)
	proxy, err := faultproxy.Listen("127.0.0.1:0", server, testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxied := strings.Replace(dsn, server, proxy.Addr(), 1)
	if proxied == dsn {
		t.Fatalf("cannot route %s through the proxy", dsn)
	}
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	var mu sync.Mutex
	r := start(t, repo, proxied, slot, &events, &mu)
	defer r.cancel()
	waitChain(t, repo, r)
	waitCovered(t, repo, r, time.Now())

	proxy.Set(faultproxy.Mode{Fault: faultproxy.Hold})
	held := time.Now()
	select {
	case err := <-r.done:
		if err == nil {
			t.Fatal("the stream ended without an error behind a held network")
		}
		t.Logf("stream ended %s after the network stopped: %v", time.Since(held).Round(time.Millisecond), err)
	case <-time.After(probeTimeout + 20*time.Second):
		t.Fatalf("the stream still runs %s after the network stopped forwarding", time.Since(held).Round(time.Second))
	}
	proxy.Set(faultproxy.Mode{Fault: faultproxy.Pass})
	proxy.Close()
	// The slot is this test's: end its walsender (the proxy's connection) and drop it.
	admin, err := pgx.Connect(ctx, env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var left int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM (SELECT CASE WHEN active_pid IS NOT NULL THEN pg_terminate_backend(active_pid) END,
			CASE WHEN active_pid IS NULL THEN pg_drop_replication_slot(slot_name) END FROM pg_replication_slots WHERE slot_name = $1) s`, slot).Scan(&left); err == nil && left == 0 {
			return
		}
	}
	t.Errorf("replication slot %s still there after the test", slot)
}
