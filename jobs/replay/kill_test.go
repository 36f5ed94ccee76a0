package replay

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

const replayChildEnv = "TRACEVAULT_TEST_REPLAY_CHILD"

var killT0 = time.Date(2026, 12, 6, 11, 45, 0, 0, time.UTC)

// TestReplayChildProcess is the replay a kill test runs in a child process (this test binary
// run again) and kills; it does nothing in a normal run.
func TestReplayChildProcess(t *testing.T) {
	if os.Getenv(replayChildEnv) == "" {
		t.Skip("run by TestReplayResumesAfterKill9AgainstFakeLangfuseRoute")
	}
	state := os.Getenv("REPLAY_STATE")
	rate, _ := strconv.ParseFloat(os.Getenv("REPLAY_RATE"), 64)
	ev := events(500, killT0)
	ck, err := Start(state, "c", killT0.Add(-time.Minute), ev[len(ev)-1].Modified, false, quiet())
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Client: testClient(os.Getenv("REPLAY_URL"), testKey), Batch: 100, KeysPerSecond: rate, StatePath: state, Log: quiet()}
	if _, err := Send(context.Background(), o, selectionOf(ev), ck); err != nil {
		t.Fatal(err)
	}
}

func replayChild(t *testing.T, url, state string, rate float64) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplayChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), replayChildEnv+"=1", "REPLAY_URL="+url, "REPLAY_STATE="+state,
		"REPLAY_RATE="+strconv.FormatFloat(rate, 'f', -1, 64))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestReplayResumesAfterKill9AgainstFakeLangfuseRoute kills a replay (SIGKILL, no chance to
// clean up) mid-way and resumes it from its checkpoint: every key is acknowledged exactly once,
// and only a batch whose answer the killed run never saw is sent again.
func TestReplayResumesAfterKill9AgainstFakeLangfuseRoute(t *testing.T) {
	cases := []struct {
		name string
		// rate paces the killed run (keys a second), leaving time to kill it between batches.
		rate float64
		// awaiting holds the third request unanswered and kills the child then; otherwise the
		// child is killed once its checkpoint says two batches were acknowledged.
		awaiting bool
		resent   int // keys received twice
	}{
		{name: "killed awaiting an answer", awaiting: true, resent: 100},
		{name: "killed after an acknowledged batch", rate: 40, resent: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFakeRoute(t, testKey)
			held := make(chan struct{})
			if tc.awaiting {
				f.failWith(func(n int, _ http.ResponseWriter, r *http.Request) bool {
					if n != 2 {
						return false
					}
					close(held)
					<-r.Context().Done() // the killed client's connection closes
					return true
				})
			}
			state := filepath.Join(t.TempDir(), "replay.json")
			child := replayChild(t, srv.URL, state, tc.rate)
			waitFor(t, func() bool {
				if tc.awaiting {
					select {
					case <-held:
						return true
					default:
						return false
					}
				}
				ck, _ := LoadCheckpoint(state)
				return ck != nil && ck.Sent >= 200
			})
			if err := child.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = child.Wait()
			if ck, err := LoadCheckpoint(state); err != nil || ck == nil || ck.Sent != 200 || ck.Done {
				t.Fatalf("checkpoint after the kill: %+v, %v; want 200 sent", ck, err)
			}

			if err := replayChild(t, srv.URL, state, 0).Wait(); err != nil {
				t.Fatalf("resumed replay: %v", err)
			}
			received, acked := f.counts()
			twice := 0
			for _, e := range events(500, killT0) {
				if acked[e.Key] != 1 {
					t.Fatalf("%s acknowledged %d times", e.Key, acked[e.Key])
				}
				switch received[e.Key] {
				case 1:
				case 2:
					twice++
				default:
					t.Fatalf("%s received %d times", e.Key, received[e.Key])
				}
			}
			if twice != tc.resent {
				t.Fatalf("%d keys sent twice, want %d", twice, tc.resent)
			}
			if ck, _ := LoadCheckpoint(state); ck == nil || !ck.Done || ck.Sent != 500 {
				t.Fatalf("final checkpoint %+v", ck)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the child replay")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
