package pitr

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

const killChildEnv = "TRACEVAULT_TEST_PITR_CHILD" // dsn|slot|repo URL

// TestPITRStreamChild is the streamer process TestPITRKill9 kills; it does nothing on its own.
func TestPITRStreamChild(t *testing.T) {
	spec := os.Getenv(killChildEnv)
	if spec == "" {
		return // only TestPITRKill9 runs it, as a process to kill
	}
	parts := strings.SplitN(spec, "|", 3)
	repo, err := store.Open(context.Background(), store.Options{URL: parts[2], Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s := &Streamer{DSN: parts[0], Slot: parts[1], Publication: parts[1], Interval: 300 * time.Millisecond, Log: quiet, Base: postgres.Source{Log: quiet}}
	t.Fatal(s.Run(context.Background(), repo))
}

// TestPITRKill9: the streaming process is killed with SIGKILL while a writer commits; a new
// streamer resumes from the last durable segment and the replay across the kill is exact.
func TestPITRKill9(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dsn := env.PGDatabase(t, "it_pitrk")
	slot := testSlot(t, env, "tv_itk")
	url := "file://" + t.TempDir()
	repo, err := store.Open(ctx, store.Options{URL: url, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	conn := workloadConn(ctx, t, dsn)
	w := &writer{t: t, conn: conn, rnd: rand.New(rand.NewPCG(3, 4))}
	child := exec.Command(os.Args[0], "-test.run", "^TestPITRStreamChild$", "-test.count=1")
	childTmp := t.TempDir()
	child.Env = append(os.Environ(), killChildEnv+"="+dsn+"|"+slot+"|"+url, "TMPDIR="+childTmp)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { child.Wait(); close(exited) }()
	defer child.Process.Kill()
	for {
		if _, ok, err := Latest(ctx, repo); err != nil {
			t.Fatal(err)
		} else if ok {
			break
		}
		select {
		case <-exited:
			t.Fatal("the streaming child exited before its base")
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Write until at least one segment is durable, then keep writing and kill mid-stream.
	for {
		w.step(ctx)
		chains, err := Chains(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		segs, err := Segments(ctx, repo, chains[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) > 0 {
			break
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(150 * time.Millisecond)
		child.Process.Signal(syscall.SIGKILL)
	}()
	for range 40 {
		w.step(ctx)
	}
	wg.Wait()
	<-exited
	// A killed streamer runs no clean-up: what it spooled must vanish with it, not fill a
	// pod's TMPDIR over its restarts.
	if left, _ := os.ReadDir(childTmp); len(left) > 0 {
		t.Errorf("the killed streamer left %d file(s) in its TMPDIR, the first %s", len(left), left[0].Name())
	}
	during := w.ledger[len(w.ledger)-20]
	for range 20 {
		w.step(ctx)
	}
	var events []string
	var mu sync.Mutex
	r := start(t, repo, dsn, slot, &events, &mu)
	last := w.ledger[len(w.ledger)-1]
	waitCovered(t, repo, r, last.at)
	r.kill(t)
	chains, err := Chains(ctx, repo)
	if err != nil || len(chains) != 1 {
		t.Fatalf("the survivor must resume the chain, not start another: %d chains, %v", len(chains), err)
	}
	during.note, last.note = "during the kill", "after the survivor resumed"
	for _, p := range []ledgerPoint{during, last} {
		restoreAndCheck(t, env, repo, dsn, Target{Time: p.at}, p)
	}
}
