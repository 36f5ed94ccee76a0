package pitr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/internal/faultproxy"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

// faultRetry is a short retry policy, so that a fault of a few seconds outlasts it and the
// stream meets the failure (the default one rides out about a minute and a half of faults).
var faultRetry = policy.RetryOptions{MaxRetries: 1, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: 500 * time.Millisecond, TryTimeout: 1500 * time.Millisecond}

// storageFaults are the proxy's fault kinds, each held long enough to outlast faultRetry.
var storageFaults = []struct {
	name string
	mode faultproxy.Mode
}{
	{"503", faultproxy.Mode{Fault: faultproxy.Unavailable}},
	{"reset", faultproxy.Mode{Fault: faultproxy.Reset, After: 1 << 10}},
	{"stall", faultproxy.Mode{Fault: faultproxy.Stall, Stall: 5 * time.Second}},
	{"slow bodies", faultproxy.Mode{Fault: faultproxy.Throttle, BytesPerSecond: 256}},
}

// azuriteRepo makes a repository in a new Azurite container, reached through proxied (the
// connection string through a chaos proxy) with faultRetry, and the same repository reached
// directly, for the test's own reads.
func azuriteRepo(t *testing.T, env *devstack.Env, proxied string) (faulty, direct *store.Repository, container string) {
	t.Helper()
	ctx := context.Background()
	container = fmt.Sprintf("pitrfault-%d", time.Now().UnixNano()%1e12)
	d, err := store.NewAzure(ctx, store.AzureOptions{ConnectionString: env.AzureConnectionString, Container: container})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = d.Container().Delete(context.Background(), nil) })
	if direct, err = store.OpenBackend(ctx, d, store.Options{Log: quiet}); err != nil {
		t.Fatal(err)
	}
	f, err := store.NewAzure(ctx, store.AzureOptions{ConnectionString: proxied, Container: container, Retry: faultRetry})
	if err != nil {
		t.Fatal(err)
	}
	if faulty, err = store.OpenBackend(ctx, f, store.Options{Log: quiet}); err != nil {
		t.Fatal(err)
	}
	return faulty, direct, container
}

// supervised runs a streamer as the daemon does (jobs.pitrRunner): restarted after each
// failure, whose causes it keeps.
type supervised struct {
	s      *Streamer
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	errs   []string
}

func supervise(repo *store.Repository, s *Streamer) *supervised {
	ctx, cancel := context.WithCancel(context.Background())
	sv := &supervised{s: s, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sv.done)
		for ctx.Err() == nil {
			err := s.Run(ctx, repo)
			if ctx.Err() != nil {
				return
			}
			sv.mu.Lock()
			sv.errs = append(sv.errs, fmt.Sprint(err))
			sv.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	return sv
}

func (sv *supervised) stop() { sv.cancel(); <-sv.done }

func (sv *supervised) failures() []string {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return append([]string(nil), sv.errs...)
}

// storedEnd is how far the open chain of slot reaches in the repository; ok is false while no
// chain is open (before the first base, between a chain's end and the next one's record).
func storedEnd(ctx context.Context, repo *store.Repository, slot string) (LSN, bool, error) {
	chains, err := Chains(ctx, repo)
	if err != nil {
		return 0, false, err
	}
	for i := len(chains) - 1; i >= 0; i-- {
		c := chains[i]
		if c.Slot != slot {
			continue
		}
		if !c.Ended.IsZero() {
			return 0, false, nil
		}
		segs, err := lastSegment(ctx, repo, c.ID)
		if err != nil {
			return 0, false, err
		}
		_, end, err := coverage(ctx, repo, c, segs)
		return end, err == nil, err
	}
	return 0, false, nil
}

// checkConfirmed fails the test if the server was told an LSN is safe to discard that the
// repository does not hold: the slot's confirmed_flush_lsn past the open chain's stored end.
// The confirmed position is read first: the stored end only grows, so a confirmation sent after
// its segment was stored can never overtake it here.
func checkConfirmed(t *testing.T, admin *pgx.Conn, direct *store.Repository, slot string) {
	t.Helper()
	ctx := context.Background()
	var confirmed LSN
	err := admin.QueryRow(ctx, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", slot).Scan((*lsnText)(&confirmed))
	if errors.Is(err, pgx.ErrNoRows) {
		return
	}
	if err != nil {
		t.Fatalf("read slot %s: %v", slot, err)
	}
	end, ok, err := storedEnd(ctx, direct, slot)
	if err != nil {
		t.Fatalf("read the stored chain: %v", err)
	}
	if ok && confirmed > end {
		t.Errorf("slot %s confirmed %s to the server, but the repository's chain ends at %s", slot, confirmed, end)
	}
}

// readBack reads every recorded segment of every chain in full, and checks that its records
// agree with what its record says it holds, and that the chains are whole.
func readBack(t *testing.T, repo *store.Repository) []Chain {
	t.Helper()
	ctx := context.Background()
	chains, err := Chains(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chains {
		segs, err := Segments(ctx, repo, c.ID) // refuses a gap between records
		if err != nil {
			t.Fatalf("chain %s: %v", c.ID, err)
		}
		for _, seg := range segs {
			if err := readBackSegment(ctx, repo, seg); err != nil {
				t.Errorf("chain %s: segment ending at %s is recorded but does not read back: %v", c.ID, seg.EndLSN, err)
			}
		}
	}
	return chains
}

func readBackSegment(ctx context.Context, repo *store.Repository, seg Segment) error {
	rc, err := repo.OpenNamed(ctx, seg.bodyName(), seg.Object)
	if err != nil {
		return err
	}
	defer rc.Close()
	rd, err := NewSegmentReader(rc)
	if err != nil {
		return err
	}
	var commits, changes int64
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch rec.Op {
		case OpCommit:
			commits++
		case OpInsert, OpUpdate, OpDelete, OpTruncate:
			changes++
		}
	}
	if commits != seg.Transactions || changes != seg.Changes {
		return fmt.Errorf("holds %d transactions and %d changes, its record says %d and %d", commits, changes, seg.Transactions, seg.Changes)
	}
	return nil
}

// TestPITRStorageFaults: the streamer writes to an Azure repository through a fault-injecting
// proxy while a writer commits. Each fault kind is held for a while, then cleared. The server is
// never told an LSN is durable before the repository holds it, every recorded segment reads
// back, the chain goes on (or ends, saying why, and a new base follows), every failure names the
// repository, and a restore to a moment during and after the fault equals the ledger.
func TestPITRStorageFaults(t *testing.T) {
	env := devstack.Require(t)
	proxy, proxied, err := faultproxy.ListenAzure(env.AzureConnectionString, testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	admin, err := pgx.Connect(context.Background(), env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	for i, tc := range storageFaults {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			proxy.Set(faultproxy.Mode{Fault: faultproxy.Pass})
			dsn := env.PGDatabase(t, "it_pitrf")
			slot := testSlot(t, env, "tv_itf")
			faulty, direct, container := azuriteRepo(t, env, proxied)
			conn := workloadConn(ctx, t, dsn)
			w := &writer{t: t, conn: conn, rnd: rand.New(rand.NewPCG(7, uint64(i)))}
			sv := supervise(faulty, &Streamer{DSN: dsn, Slot: slot, Publication: slot, Interval: 300 * time.Millisecond,
				Log: testLog(), Base: postgres.Source{Log: quiet}})
			defer sv.stop()
			waitChain(t, direct, &running{done: make(chan error)})

			// Writes for d, checking the confirmed position against the repository as they go.
			write := func(d time.Duration) {
				last := time.Time{}
				for end := time.Now().Add(d); time.Now().Before(end); {
					w.step(ctx)
					if time.Since(last) > 200*time.Millisecond {
						checkConfirmed(t, admin, direct, slot)
						last = time.Now()
					}
				}
			}
			write(time.Second)
			before := len(sv.failures())
			proxy.Set(tc.mode)
			write(2500 * time.Millisecond)
			during := w.ledger[len(w.ledger)-1]
			write(2500 * time.Millisecond)
			proxy.Set(faultproxy.Mode{Fault: faultproxy.Pass})
			write(time.Second)
			last := w.ledger[len(w.ledger)-1]
			for rp, ok, err := Latest(ctx, direct); !ok || rp.Time.Before(last.at); rp, ok, err = Latest(ctx, direct) {
				if err != nil {
					t.Fatal(err)
				}
				checkConfirmed(t, admin, direct, slot)
				if ctx.Err() != nil {
					t.Fatalf("the recovery point never passed the writer's last commit after the fault was cleared; failures: %q", sv.failures())
				}
				time.Sleep(200 * time.Millisecond)
			}
			sv.stop()
			checkConfirmed(t, admin, direct, slot)

			failed := sv.failures()[before:]
			t.Logf("%s: %d streams failed during the fault and were restarted", tc.name, len(failed))
			if len(failed) == 0 {
				t.Errorf("5 s of %s did not stop the stream once: the test proved nothing (is the short retry policy in force?)", tc.name)
			}
			for _, e := range failed {
				if !strings.Contains(e, "azblob://"+container) {
					t.Errorf("a failure does not name the repository azblob://%s: %s", container, e)
				}
			}
			chains := readBack(t, direct)
			for _, c := range chains[:len(chains)-1] {
				if c.EndReason == "" {
					t.Errorf("chain %s was followed by another without a recorded end", c.ID)
				}
			}
			if n := len(chains); n > 1 {
				t.Logf("%s: the fault ended %d chains: %q", tc.name, n-1, chains[0].EndReason)
			}
			during.note, last.note = "during the fault", "after the fault"
			for _, p := range []ledgerPoint{during, last} {
				if _, err := PlanRestore(ctx, direct, Target{Time: p.at}); err != nil && len(chains) > 1 {
					t.Logf("%s: %v (between chains)", p.note, err)
					continue
				}
				restoreAndCheck(t, env, direct, dsn, Target{Time: p.at}, p)
			}
		})
	}
}
