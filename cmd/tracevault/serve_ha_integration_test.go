package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// TestMain lets a test run this binary as tracevault itself: with TRACEVAULT_TEST_MAIN=1 the
// test binary executes its command line instead of the tests, so daemons can be real processes
// that a test kills.
func TestMain(m *testing.M) {
	if os.Getenv("TRACEVAULT_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// TestKilledDaemonIsTakenOver runs two `tracevault serve` processes on one schedule, freezes the
// one running a job mid-run and kills it with SIGKILL. The survivor takes over once the dead
// one's ZooKeeper session expires: the killed run is recorded as interrupted, later occurrences
// run on the survivor, every occurrence ran exactly once, and verify --all passes.
func TestKilledDaemonIsTakenOver(t *testing.T) {
	env := devstack.Require(t)
	dir := t.TempDir()
	repoURL := "file://" + filepath.Join(dir, "repo")
	// The jitter holds each run in the "running" state long enough to catch it there.
	configFor := func(i int) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		p := filepath.Join(dir, fmt.Sprintf("daemon%d.toml", i))
		writeFile(t, p, fmt.Sprintf(`[storage]
url = %q

[zookeeper]
servers = [%q]
roots = ["/clickhouse/tables"]
session_timeout = "4s"

[[jobs]]
name = "ha-kill"
schedule = "*/2 * * * * *"
action = "zk-record"
jitter = "1500ms"
timeout = "1m"
catch_up = "none"

[web]
listen = "127.0.0.1:%d"
`, repoURL, env.ZK, port))
		return p
	}
	cfg := configFor(0)
	daemons := map[int]*exec.Cmd{}
	for i := 0; i < 2; i++ {
		c := cfg
		if i > 0 {
			c = configFor(i)
		}
		cmd := exec.Command(os.Args[0], "--config", c, "--log-format", "json", "serve", "--grace", "30s")
		cmd.Env = append(os.Environ(), "TRACEVAULT_TEST_MAIN=1")
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("daemon%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		daemons[cmd.Process.Pid] = cmd
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	}

	ctx := context.Background()
	quietLog := slog.New(slog.NewTextHandler(io.Discard, nil))
	var repo *store.Repository
	deadline := time.Now().Add(20 * time.Second)
	for repo == nil {
		if r, err := store.Open(ctx, store.Options{URL: repoURL, Log: quietLog}); err == nil && r.ID() != "" {
			repo = r
		} else if time.Now().After(deadline) {
			t.Fatalf("the daemons never created the repository: %v", err)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	history := &jobs.History{Repo: repo, Limit: 1000}
	conn, err := zookeeper.Connect(ctx, []string{env.ZK}, 10*time.Second, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	claim := path.Join("/tracevault/jobs", repo.ID(), "ha-kill")

	// Catch a run in the running state, freeze its daemon (SIGSTOP: it can neither finish nor
	// release), make sure the frozen daemon is the claim's holder and the run still running, and
	// only then kill it.
	var killed jobs.Run
	var victim int
	// A run is in that state for its jitter (0-1.5 s) and its work; on a loaded machine the
	// polls below may miss several runs in a row, so they go on for a while.
	for killed.ID == "" {
		if time.Now().After(deadline.Add(90 * time.Second)) {
			t.Fatal("never caught a run in progress")
		}
		time.Sleep(50 * time.Millisecond)
		running := runningRun(t, history)
		if running == nil {
			continue
		}
		data, _, err := conn.Get(claim)
		if err != nil {
			continue
		}
		var h store.Holder
		if json.Unmarshal(data, &h) != nil || daemons[h.PID] == nil {
			continue
		}
		_ = syscall.Kill(h.PID, syscall.SIGSTOP)
		data, _, err = conn.Get(claim)
		var again store.Holder
		if still := runningRun(t, history); err == nil && json.Unmarshal(data, &again) == nil && again.PID == h.PID && still != nil && still.ID == running.ID {
			_ = syscall.Kill(h.PID, syscall.SIGKILL)
			killed, victim = *still, h.PID
			break
		}
		_ = syscall.Kill(h.PID, syscall.SIGCONT)
	}
	_ = daemons[victim].Wait()
	killedAt := time.Now()
	delete(daemons, victim)

	// The dead daemon's session expires within its 4 s timeout; then occurrences resume. Wait
	// for two to succeed after the kill (12 s on a quiet machine; a loaded one is given two
	// minutes, which a fixed sleep failed at a load average of 55).
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if succeededSince(t, history, killedAt) >= 2 {
			break
		}
	}
	for _, d := range daemons {
		_ = d.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- d.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("survivor exited with %v after SIGTERM, want 0", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("survivor did not exit within its grace period after SIGTERM")
		}
	}

	runs, err := history.Recent(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	perOccurrence := map[time.Time]int{}
	for _, r := range runs {
		if r.ID == killed.ID && r.Outcome != jobs.OutcomeInterrupted {
			t.Errorf("the killed daemon's run %s is %s (%s), want interrupted", r.ID, r.Outcome, r.Error)
		}
		if r.Outcome != jobs.OutcomeSkipped {
			perOccurrence[r.Occurrence]++
		}
	}
	for occ, n := range perOccurrence {
		if n != 1 {
			t.Errorf("occurrence %s ran %d times, want once", occ.Format(time.RFC3339), n)
		}
	}
	if after := succeededSince(t, history, killedAt); after < 2 {
		t.Errorf("%d occurrences succeeded on the survivor after the kill, want at least 2", after)
	}
	if code, out, errOut := runCLI("--config", cfg, "verify", "--all"); code != 0 {
		t.Errorf("verify --all after the kill: exit %d\n%s%s", code, out, errOut)
	}
}

func runningRun(t *testing.T, h *jobs.History) *jobs.Run {
	runs, err := h.Recent(context.Background(), 5)
	if err != nil {
		return nil
	}
	for _, r := range runs {
		if r.Outcome == jobs.OutcomeRunning {
			return &r
		}
	}
	return nil
}

func writeFile(t *testing.T, p, s string) {
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// succeededSince counts the runs that succeeded and started after from.
func succeededSince(t *testing.T, history *jobs.History, from time.Time) int {
	t.Helper()
	runs, err := history.Recent(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range runs {
		if r.Outcome == jobs.OutcomeSucceeded && r.Start.After(from) {
			n++
		}
	}
	return n
}
