package pitr

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// TestChainRecordsAppendOnly: a chain's segments, heads and end are recorded in an append-only
// repository (where a rewrite or a delete is an error) as in a plain one, and read back the
// same: the newest head sets the coverage, the end ends the chain, and a second end leaves the
// first standing.
func TestChainRecordsAppendOnly(t *testing.T) {
	for _, appendOnly := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "append-only"}[appendOnly], func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			repo, err := store.Open(ctx, store.Options{URL: "file://" + dir, AppendOnly: appendOnly, Log: quiet})
			if err != nil {
				t.Fatal(err)
			}
			base := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
			c := Chain{ID: newChainID(base, 0x1D49000), Database: "langfuse", Slot: "tracevault", Base: "20261206T100000Z-1a2b3c",
				StartLSN: 0x1D49000, BaseTime: base, Created: base}
			if err := putRecord(ctx, repo, chainName(c.ID), &c); err != nil {
				t.Fatal(err)
			}
			s := &Streamer{Log: quiet}
			s.defaults()
			seg := cutSegment(c, c.StartLSN, c.StartLSN+0x100, base.Add(5*time.Second))
			if err := s.storeSegment(ctx, repo, &c, seg, segmentBody(t)); err != nil {
				t.Fatalf("store a segment: %v", err)
			}
			segs, err := Segments(ctx, repo, c.ID)
			if err != nil || len(segs) != 1 {
				t.Fatalf("segments %v, %v; want the one stored", segs, err)
			}
			for i, until := range []time.Time{base.Add(10 * time.Second), base.Add(20 * time.Second)} {
				h := Head{Chain: c.ID, After: seg.EndLSN, EndLSN: seg.EndLSN + LSN(0x10*(i+1)), Until: until, Written: base.Add(time.Duration(i+1) * time.Minute)}
				if err := writeHead(ctx, repo, &h); err != nil {
					t.Fatalf("head %d: %v", i, err)
				}
			}
			at, lsn, err := coverage(ctx, repo, c, segs)
			if err != nil || !at.Equal(base.Add(20*time.Second)) || lsn != seg.EndLSN+0x20 {
				t.Fatalf("coverage %v %s, %v; want the newest head's", at, lsn, err)
			}
			for i, why := range []string{"slot lost", "a later reason"} {
				c.Ended, c.EndReason = base.Add(time.Duration(i+1)*time.Hour), why
				if err := recordEnd(ctx, repo, &c); err != nil {
					t.Fatalf("end %d: %v", i, err)
				}
			}
			chains, damaged, err := ReadChains(ctx, repo)
			if err != nil || len(chains) != 1 || len(damaged) != 0 {
				t.Fatalf("chains %+v, damaged %+v, %v", chains, damaged, err)
			}
			want := "slot lost" // append-only: the first end stands
			if !appendOnly {
				want = "a later reason" // the chain record rewritten
			}
			if chains[0].Ended.IsZero() || chains[0].EndReason != want {
				t.Errorf("chain ended %v (%q), want ended with %q", chains[0].Ended, chains[0].EndReason, want)
			}
			if !appendOnly {
				return
			}
			// Prune, as the identity that may delete, keeps the chain (its base is kept) and
			// removes the superseded heads once old, leaving the newest: the coverage stands.
			heads, _ := filepath.Glob(filepath.Join(dir, "pitr", c.ID, "head", "*.json"))
			old := time.Now().Add(-2 * superseded)
			for _, h := range heads {
				_ = os.Chtimes(h, old, old)
			}
			pruner, err := store.Open(ctx, store.Options{URL: "file://" + dir, Log: quiet})
			if err != nil {
				t.Fatal(err)
			}
			if removed, _, err := Prune(ctx, pruner, map[string]string{c.Base: "kept"}, false); err != nil || len(removed) != 0 {
				t.Fatalf("prune: removed chains %v, %v; want the chain kept", removed, err)
			}
			left, _ := filepath.Glob(filepath.Join(dir, "pitr", c.ID, "head", "*.json"))
			if len(heads) != 2 || len(left) != 1 || left[0] != heads[len(heads)-1] {
				t.Errorf("heads %v, after prune %v: want the newest one left", heads, left)
			}
			if at, _, err := coverage(ctx, pruner, c, segs); err != nil || !at.Equal(base.Add(20*time.Second)) {
				t.Errorf("coverage after prune %v, %v; want the newest head's", at, err)
			}
		})
	}
}
