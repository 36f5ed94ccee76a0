package jobs

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
)

// fullBackend fails every write of a run record while full is set, as a full disk does.
type fullBackend struct {
	store.Backend
	full atomic.Bool
}

func (b *fullBackend) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if b.full.Load() && strings.HasPrefix(name, "runs/") {
		return 0, fmt.Errorf("write %s: %w", name, syscall.ENOSPC)
	}
	return b.Backend.Put(ctx, name, r)
}

// Create fails as Put does: a run's end is created, never put (history.go).
func (b *fullBackend) Create(ctx context.Context, name string, r io.Reader) (int64, error) {
	if b.full.Load() && strings.HasPrefix(name, "runs/") {
		return 0, fmt.Errorf("write %s: %w", name, syscall.ENOSPC)
	}
	return b.Backend.Create(ctx, name, r)
}

// TestUnrecordedRunKeepsItsOutcome: a run that failed while the repository was full could not
// record its outcome, so its record still said running; the job's next claim took it for a dead
// daemon's run and recorded "the daemon stopped during this run", hiding the real cause (found by
// the chaos suite's out-of-space fault). The daemon that finished it now records its outcome
// then; a run no daemon here finished is still recorded as interrupted.
func TestUnrecordedRunKeepsItsOutcome(t *testing.T) {
	for _, tc := range []struct {
		name        string
		finished    bool // this daemon finished the run but could not record it
		wantOutcome string
		wantError   string
	}{
		{"finished here, unrecorded", true, OutcomeFailed, "no space left on device"},
		{"another daemon died", false, OutcomeInterrupted, "stopped during this run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			fs, err := store.NewFS(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			b := &fullBackend{Backend: fs}
			repo, err := store.OpenBackend(ctx, b, store.Options{Log: quiet})
			if err != nil {
				t.Fatal(err)
			}
			cfg := config.Defaults()
			cfg.Jobs = []config.Job{{Name: "backup", Schedule: "@hourly", Action: config.ActionBackup, Timeout: config.Duration(time.Minute)}}
			d, err := NewDaemon(&cfg, quiet)
			if err != nil {
				t.Fatal(err)
			}
			d.repo, d.history, d.claimer = repo, &History{Repo: repo, Limit: 100}, NewClaimer(cfg.ZooKeeper, repo, quiet)
			d.ctx, d.cancel = context.WithCancel(ctx)
			defer d.cancel()
			j := d.jobs[0]

			run := Run{ID: "0000000a", Job: j.Name, Action: j.Action, Trigger: TriggerSchedule, Host: "here", Start: time.Now().UTC().Add(-time.Minute), Outcome: OutcomeRunning}
			d.record(run)
			if tc.finished {
				b.full.Store(true)
				run.End, run.Outcome, run.Error = time.Now().UTC(), OutcomeFailed, "commit snapshot: write snapshots/x.json: no space left on device"
				d.record(run) // cannot land: the record still says running
				b.full.Store(false)
			}
			next := Run{ID: "0000000b", Job: j.Name, Trigger: TriggerManual, Host: "here", Start: time.Now().UTC()}
			lock := d.claim(j, &next, quiet)
			if lock == nil {
				t.Fatal("the next run could not claim the job")
			}
			_ = lock.Release(ctx)
			for _, r := range runsOf(t, d) {
				if r.ID != run.ID {
					continue
				}
				if r.Outcome != tc.wantOutcome || !strings.Contains(r.Error, tc.wantError) {
					t.Errorf("run %s recorded %s: %q; want %s naming %q", r.ID, r.Outcome, r.Error, tc.wantOutcome, tc.wantError)
				}
				return
			}
			t.Fatalf("run %s is not in the history", run.ID)
		})
	}
}
