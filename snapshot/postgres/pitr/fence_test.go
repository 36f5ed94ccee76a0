package pitr

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// fenceChain is a chain record in a fresh filesystem repository, with no segment yet.
func fenceChain(t *testing.T) (*store.Repository, Chain) {
	t.Helper()
	ctx := context.Background()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	c := Chain{ID: newChainID(base, 0x1D49000), Database: "langfuse", Slot: "tracevault", Base: "20261127T100000Z-1a2b3c",
		StartLSN: 0x1D49000, BaseTime: base, Created: base}
	if err := putRecord(ctx, repo, chainName(c.ID), &c); err != nil {
		t.Fatal(err)
	}
	return repo, c
}

// cutSegment is a segment a writer cut: [start, end), its commits before until.
func cutSegment(c Chain, start, end LSN, until time.Time) *Segment {
	return &Segment{Chain: c.ID, StartLSN: start, EndLSN: end, Until: until, FirstCommit: until.Add(-time.Second),
		LastCommit: until.Add(-time.Millisecond), LastLSN: end - 1, Transactions: 1, Changes: 1}
}

func segmentBody(t *testing.T) *bytes.Reader {
	return bytes.NewReader(encode(t, sampleRecords()))
}

// TestStalledWriterCannotBreakChain is issue 28's stalled streamer, on the segment-store path:
// writer A received [S, X1) and stalled; B took the slot and stored [S, X2) and [X2, X3); A wakes
// up and stores its buffered segment. A must lose, say so, and leave the chain continuous.
func TestStalledWriterCannotBreakChain(t *testing.T) {
	ctx := context.Background()
	repo, c := fenceChain(t)
	t0 := c.BaseTime
	a := &Streamer{Log: quiet}
	b := &Streamer{Log: quiet}
	a.defaults()
	b.defaults()
	S, X1, X2, X3 := c.StartLSN, c.StartLSN+0x6E8, c.StartLSN+0x7A8, c.StartLSN+0x900
	for _, seg := range []*Segment{cutSegment(c, S, X2, t0.Add(5*time.Second)), cutSegment(c, X2, X3, t0.Add(10*time.Second))} {
		if err := b.storeSegment(ctx, repo, &c, seg, segmentBody(t)); err != nil {
			t.Fatalf("B stores %s..%s: %v", seg.StartLSN, seg.EndLSN, err)
		}
	}
	err := a.storeSegment(ctx, repo, &c, cutSegment(c, S, X1, t0.Add(4*time.Second)), segmentBody(t))
	if !errors.Is(err, errLostChain) || !strings.Contains(err.Error(), S.String()) {
		t.Fatalf("stalled A stores its buffered segment: %v; want errLostChain naming %s", err, S)
	}
	segs, err := Segments(ctx, repo, c.ID)
	if err != nil {
		t.Fatalf("the chain is broken after A woke up: %v", err)
	}
	if len(segs) != 2 || segs[1].EndLSN != X3 {
		t.Fatalf("chain holds %d segments ending %v, want B's two", len(segs), segs)
	}
	if _, err := PlanRestore(ctx, repo, Target{Time: t0.Add(7 * time.Second)}); err != nil {
		t.Fatalf("plan a restore after A woke up: %v", err)
	}
}

// TestRacingWritersOneWins: two writers cutting from the same start at the same moment; exactly
// one stores its segment, and the chain stays continuous.
func TestRacingWritersOneWins(t *testing.T) {
	ctx := context.Background()
	for round := range 20 {
		repo, c := fenceChain(t)
		S := c.StartLSN
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, end := range []LSN{S + 0x100, S + 0x200} {
			w := &Streamer{Log: quiet}
			w.defaults()
			body := segmentBody(t)
			wg.Go(func() {
				errs[i] = w.storeSegment(ctx, repo, &c, cutSegment(c, S, end, c.BaseTime.Add(time.Second)), body)
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, errLostChain):
				t.Fatalf("round %d: %v, want nil or errLostChain", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d writers stored a segment from %s (%v), want 1", round, won, S, errs)
		}
		if segs, err := Segments(ctx, repo, c.ID); err != nil || len(segs) != 1 {
			t.Fatalf("round %d: chain after the race: %d segments, %v", round, len(segs), err)
		}
	}
}

// TestWriterResumesItsOwnClaim: a writer whose store failed after it claimed the successor
// (storage error) stores it on its next attempt; another writer does not.
func TestWriterResumesItsOwnClaim(t *testing.T) {
	ctx := context.Background()
	repo, c := fenceChain(t)
	a := &Streamer{Log: quiet}
	a.defaults()
	S := c.StartLSN
	if err := a.claimSuccessor(ctx, repo, &c, S, S+0x100); err != nil {
		t.Fatal(err)
	}
	if err := a.storeSegment(ctx, repo, &c, cutSegment(c, S, S+0x180, c.BaseTime.Add(time.Second)), segmentBody(t)); err != nil {
		t.Fatalf("retry after the writer's own claim: %v", err)
	}
	b := &Streamer{Log: quiet}
	b.defaults()
	err := b.storeSegment(ctx, repo, &c, cutSegment(c, S, S+0x200, c.BaseTime.Add(time.Second)), segmentBody(t))
	if !errors.Is(err, errLostChain) {
		t.Fatalf("another writer from the same start: %v, want errLostChain", err)
	}
}

// TestStreamerReportsBrokenChain: the streaming daemon follows its chain; one that is not
// continuous ends (a new base follows) and its state says so, with the recovery point at the
// break, not at the newest record.
func TestStreamerReportsBrokenChain(t *testing.T) {
	ctx := context.Background()
	repo, c := fenceChain(t)
	S, t0 := c.StartLSN, c.BaseTime
	s := &Streamer{Log: quiet}
	s.defaults()
	recordSegments(t, repo, cutSegment(c, S, S+0x100, t0.Add(5*time.Second)))
	if err := s.checkChain(ctx, repo, &c); err != nil || s.State().Broken != "" {
		t.Fatalf("continuous chain: %v, state %+v", err, s.State())
	}
	recordSegments(t, repo, cutSegment(c, S+0x200, S+0x300, t0.Add(15*time.Second)))
	var nb errNewBase
	if err := s.checkChain(ctx, repo, &c); !errors.As(err, &nb) || !strings.Contains(err.Error(), "a segment record is missing") {
		t.Fatalf("chain with a gap: %v; want a new base naming the gap", err)
	}
	st := s.State()
	if !strings.Contains(st.Broken, "not continuous") || !st.RecoveryPoint.Equal(t0.Add(5*time.Second)) || st.DurableLSN != S+0x100 {
		t.Fatalf("state after the gap: %+v; want it broken at %s (LSN %s)", st, t0.Add(5*time.Second), S+0x100)
	}
}

// TestVerifyNamesAStalledWritersRecord: a second record from one start (left by a stalled
// streamer before writers were fenced) is named by verify as what to remove; the records the
// chain continues with are not, and no gap is reported.
func TestVerifyNamesAStalledWritersRecord(t *testing.T) {
	ctx := context.Background()
	repo, c := fenceChain(t)
	S, t0 := c.StartLSN, c.BaseTime
	b := &Streamer{Log: quiet}
	b.defaults()
	for _, seg := range []*Segment{cutSegment(c, S, S+0x7A8, t0.Add(5*time.Second)), cutSegment(c, S+0x7A8, S+0x900, t0.Add(10*time.Second))} {
		if err := b.storeSegment(ctx, repo, &c, seg, segmentBody(t)); err != nil {
			t.Fatal(err)
		}
	}
	stray := cutSegment(c, S, S+0x6E8, t0.Add(4*time.Second))
	ref, err := repo.PutNamed(ctx, segmentName(c.ID, stray.EndLSN, "seg"), segmentBody(t))
	if err != nil {
		t.Fatal(err)
	}
	stray.Object = ref
	recordSegments(t, repo, stray)
	rep, err := Verify(ctx, repo, VerifyOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, p := range rep.Problems {
		switch {
		case p.Object == segmentName(c.ID, stray.EndLSN, "json") && strings.Contains(p.Error, "a second segment"):
			named = true
		case strings.Contains(p.Object, "/seg/"):
			t.Errorf("unexpected problem %+v", p)
		}
	}
	if !named || rep.SegmentsRead != 3 {
		t.Fatalf("verify: stray named %v, %d segments read; problems %+v", named, rep.SegmentsRead, rep.Problems)
	}
}

// TestStaleClaimTakenOverBySlotHolder: a writer that claimed the successor of S and died before
// recording it does not block the chain: the slot's holder goes on from S, others may not, and
// should the claimant still store its segment, the chain stays followable.
func TestStaleClaimTakenOverBySlotHolder(t *testing.T) {
	ctx := context.Background()
	repo, c := fenceChain(t)
	S, t0 := c.StartLSN, c.BaseTime
	dead := &Streamer{Log: quiet}
	dead.defaults()
	if err := dead.claimSuccessor(ctx, repo, &c, S, S+0x100); err != nil {
		t.Fatal(err)
	}
	other := &Streamer{Log: quiet}
	other.defaults()
	err := other.storeSegment(ctx, repo, &c, cutSegment(c, S, S+0x200, t0.Add(2*time.Second)), segmentBody(t))
	if !errors.Is(err, errLostChain) || !errors.Is(err, errStaleClaim) {
		t.Fatalf("a writer without the slot: %v, want errStaleClaim", err)
	}
	holder := &Streamer{Log: quiet}
	holder.defaults()
	holder.slotHeld = func(context.Context) bool { return true }
	for _, seg := range []*Segment{cutSegment(c, S, S+0x200, t0.Add(2*time.Second)), cutSegment(c, S+0x200, S+0x300, t0.Add(3*time.Second))} {
		if err := holder.storeSegment(ctx, repo, &c, seg, segmentBody(t)); err != nil {
			t.Fatalf("the slot's holder stores %s..%s: %v", seg.StartLSN, seg.EndLSN, err)
		}
	}
	// The claimant was only stalled: its record lands after all.
	recordSegments(t, repo, cutSegment(c, S, S+0x100, t0.Add(time.Second)))
	segs, err := Segments(ctx, repo, c.ID)
	if err != nil || len(segs) != 2 || segs[1].EndLSN != S+0x300 {
		t.Fatalf("chain after the take-over: %v, %v; want the holder's two segments", segs, err)
	}
}

// TestSameEndDoesNotOverwriteBody: a stalled claimant that wakes up after the slot's holder took
// its claim over and cut at the very same LSN stores its body beside the holder's, never over
// it, and loses on the record: the holder's segment still reads back.
func TestSameEndDoesNotOverwriteBody(t *testing.T) {
	ctx := context.Background()
	repo, c := fenceChain(t)
	S, t0 := c.StartLSN, c.BaseTime
	stalled := &Streamer{Log: quiet}
	stalled.defaults()
	if err := stalled.claimSuccessor(ctx, repo, &c, S, S+0x100); err != nil {
		t.Fatal(err)
	}
	holder := &Streamer{Log: quiet}
	holder.defaults()
	holder.slotHeld = func(context.Context) bool { return true }
	if err := holder.storeSegment(ctx, repo, &c, cutSegment(c, S, S+0x100, t0.Add(time.Second)), segmentBody(t)); err != nil {
		t.Fatal(err)
	}
	recs := sampleRecords()
	recs[2].New[0].Data = []byte("other bytes")
	err := stalled.storeSegment(ctx, repo, &c, cutSegment(c, S, S+0x100, t0.Add(time.Second)), bytes.NewReader(encode(t, recs)))
	if !errors.Is(err, errLostChain) {
		t.Fatalf("the stalled claimant: %v, want errLostChain", err)
	}
	rep, err := Verify(ctx, repo, VerifyOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if strings.Contains(p.Object, "/seg/") {
			t.Errorf("the holder's segment was damaged: %+v", p)
		}
	}
	if rep.SegmentsRead != 1 {
		t.Errorf("verify read %d segments, want 1", rep.SegmentsRead)
	}
}
