package jobs

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// TestHistorySkipsForeignAndDamagedRuns: a run whose id is not the daemon's form, or is not the
// file it is stored as, or does not decode, is skipped; the others are still read.
func TestHistorySkipsForeignAndDamagedRuns(t *testing.T) {
	ctx := context.Background()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := &History{Repo: repo, Limit: 100}
	start := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	good := []Run{
		{ID: "0a0b0c0d", Job: "nightly", Start: start, Outcome: OutcomeSucceeded},
		{ID: "1a2b3c4d", Job: "nightly", Start: start.Add(time.Hour), Outcome: OutcomeFailed},
	}
	for _, r := range good {
		if err := h.Record(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	foreign := Run{ID: "../../x", Job: "nightly", Start: start.Add(2 * time.Hour), Outcome: OutcomeSucceeded}
	if err := repo.PutJSON(ctx, "runs/20261127T050000.000000000Z-deadbeef.json", foreign); err != nil {
		t.Fatal(err)
	}
	moved := good[0] // a real run under another run's name
	if err := repo.PutJSON(ctx, "runs/20261127T060000.000000000Z-0a0b0c0d.json", moved); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Backend().Put(ctx, "runs/20261127T070000.000000000Z-feedf00d.json", bytes.NewReader([]byte("random \x00 bytes"))); err != nil {
		t.Fatal(err)
	}
	runs, err := h.Recent(ctx, 10)
	if err != nil {
		t.Fatalf("recent: %v", err)
	}
	if len(runs) != 2 || runs[0].ID != good[1].ID || runs[1].ID != good[0].ID {
		t.Errorf("recent: %+v; want the two real runs, newest first", runs)
	}
}

// TestHistoryAppendOnly: in an append-only repository a run's end is a second record beside its
// start (no rewrite), which readers prefer; recording an end again is not an error, the first
// end stands, and trimming is left to the identity that may delete.
func TestHistoryAppendOnly(t *testing.T) {
	ctx := context.Background()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), AppendOnly: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := &History{Repo: repo, Limit: 1}
	start := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	steps := []struct {
		run  Run
		want string // the run's outcome as read back after this step
	}{
		{Run{ID: "0a0b0c0d", Job: "nightly", Start: start, Outcome: OutcomeRunning}, OutcomeRunning},
		{Run{ID: "0a0b0c0d", Job: "nightly", Start: start, Outcome: OutcomeSucceeded}, OutcomeSucceeded},
		{Run{ID: "0a0b0c0d", Job: "nightly", Start: start, Outcome: OutcomeInterrupted}, OutcomeSucceeded},
		{Run{ID: "1a2b3c4d", Job: "nightly", Start: start.Add(time.Hour), Outcome: OutcomeFailed}, OutcomeSucceeded},
	}
	for i, st := range steps {
		if err := h.Record(ctx, st.run); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		runs, err := h.Recent(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for _, r := range runs {
			if r.ID == "0a0b0c0d" {
				got = r.Outcome
			}
		}
		if got != st.want {
			t.Errorf("step %d: run 0a0b0c0d reads as %q, want %q (runs %+v)", i, got, st.want, runs)
		}
	}
}
