package pitr

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/postgres"
)

// TestPITRChainRotation: a chain ends and a new one starts with a new base, so prune can remove
// the old chain with its base while the newest chain's window stays restorable; both chains
// restore up to their ends before the prune. A chain ends once it is older than ChainEvery, or
// when NewChainAfter asks (the daemon does with each backup set holding a full PostgreSQL
// snapshot, [postgres] pitr_chain_with_backup), and a chain started since then is left alone.
func TestPITRChainRotation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		chainEvery time.Duration
		ask        string // NewChainAfter's reason once the first chain covers a commit
		why        string // in the first chain's end reason and the event
	}{
		{name: "interval", chainEvery: 4 * time.Second, why: "pitr_chain_interval"},
		{name: "backup set", chainEvery: 24 * time.Hour, ask: "backup set 20261206T120000Z-abcdef holds a full PostgreSQL snapshot", why: "backup set 20261206T120000Z-abcdef"},
	} {
		t.Run(tc.name, func(t *testing.T) { testChainRotation(t, tc.chainEvery, tc.ask, tc.why) })
	}
}

func testChainRotation(t *testing.T, chainEvery time.Duration, ask, why string) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := newChainFixture(ctx, t, env, "it_pitrrot", "tv_itrot")
	dsn, slot, repo, conn := f.dsn, f.slot, f.repo, f.conn
	now := func() time.Time { return f.now(ctx, t) }
	var events []string
	var mu sync.Mutex
	s := &Streamer{DSN: dsn, Slot: slot, Publication: slot, Interval: 500 * time.Millisecond, ChainEvery: chainEvery,
		Log: testLog(), Base: postgres.Source{Log: quiet}, Event: func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(sctx, repo) }()
	var inFirst time.Time
	var asked bool
	var chains []Chain
	var err error
	for i := 0; ; i++ {
		if _, err := conn.Exec(ctx, "INSERT INTO t VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
		if chains, err = Chains(ctx, repo); err != nil {
			t.Fatal(err)
		}
		if len(chains) == 1 && inFirst.IsZero() {
			inFirst = now()
		}
		if ask != "" && !asked && !inFirst.IsZero() && s.State().RecoveryPoint.After(inFirst) {
			s.NewChainAfter(time.Now(), ask)
			asked = true
		}
		if len(chains) >= 2 && s.State().Chain == chains[len(chains)-1].ID && s.State().RecoveryPoint.After(chains[len(chains)-1].BaseTime) {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("streamer stopped: %v", err)
		case <-ctx.Done():
			t.Fatalf("no second chain: %+v", chains)
		case <-time.After(300 * time.Millisecond):
		}
	}
	if ask != "" {
		// Asked again for a moment before the second chain: it goes on.
		s.NewChainAfter(chains[1].Created.Add(-time.Second), ask)
		time.Sleep(2 * time.Second)
		if again, err := Chains(ctx, repo); err != nil || len(again) != 2 {
			t.Fatalf("a request from before the second chain started another: %d chains, %v", len(again), err)
		}
	}
	stop()
	<-done
	first, newest := chains[0], chains[len(chains)-1]
	if first.Ended.IsZero() || !strings.Contains(first.EndReason, why) {
		t.Fatalf("first chain: ended %s, %q", first.Ended, first.EndReason)
	}
	mu.Lock()
	said := strings.Join(events, "\n")
	mu.Unlock()
	if !strings.Contains(said, why) {
		t.Errorf("the rotation was not said: %q", said)
	}
	if plan, err := PlanRestore(ctx, repo, Target{Time: inFirst}); err != nil || plan.Chain.ID != first.ID {
		t.Fatalf("restore into the first chain: %+v, %v", plan, err)
	}
	// Retention forgot the first base: prune removes its chain; the newest chain stays whole.
	removed, _, err := Prune(ctx, repo, map[string]string{}, false)
	if err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{}
	for _, r := range removed {
		gone[r.Chain] = true
	}
	if !gone[first.ID] || gone[newest.ID] {
		t.Fatalf("prune removed %+v; want the first chain %s gone and the newest %s kept", removed, first.ID, newest.ID)
	}
	if _, err := PlanRestore(ctx, repo, Target{Time: newest.BaseTime}); err != nil {
		t.Fatalf("restore into the newest chain after prune: %v", err)
	}
	if _, err := PlanRestore(ctx, repo, Target{Time: inFirst}); err == nil {
		t.Fatal("a time of the pruned chain still plans")
	}
}
