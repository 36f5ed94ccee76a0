package pitr

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// recordSegments writes segment records straight into the repository, as any writer (fenced or
// not) could have left them; planning reads only records.
func recordSegments(t *testing.T, repo *store.Repository, segs ...*Segment) {
	t.Helper()
	for _, s := range segs {
		if err := putRecord(context.Background(), repo, segmentName(s.Chain, s.EndLSN, "json"), s); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPlanBoundaryAtEquality: a target includes what committed at it; a recovery point covers
// what committed before it. A target equal to a segment's Until needs the next segment (it may
// hold a commit at exactly that time); one equal to the newest Until is not covered.
func TestPlanBoundaryAtEquality(t *testing.T) {
	ctx := context.Background()
	repo, c := fenceChain(t)
	S, t0 := c.StartLSN, c.BaseTime
	recordSegments(t, repo, cutSegment(c, S, S+0x100, t0.Add(5*time.Second)), cutSegment(c, S+0x100, S+0x200, t0.Add(10*time.Second)))
	for _, tc := range []struct {
		name   string
		target Target
		segs   int    // segments planned
		refuse string // or the refusal
	}{
		{"time at the base", Target{Time: t0}, 1, ""},
		{"time just before the base", Target{Time: t0.Add(-time.Nanosecond)}, 0, "oldest base"},
		{"time at the first segment's Until", Target{Time: t0.Add(5 * time.Second)}, 2, ""},
		{"time just before it", Target{Time: t0.Add(5*time.Second - time.Nanosecond)}, 1, ""},
		{"time just before the recovery point", Target{Time: t0.Add(10*time.Second - time.Nanosecond)}, 2, ""},
		{"time at the recovery point", Target{Time: t0.Add(10 * time.Second)}, 0, "covers what committed before"},
		{"LSN at the base", Target{LSN: S}, 1, ""},
		{"LSN at the first segment's end", Target{LSN: S + 0x100}, 2, ""},
		{"LSN just before it", Target{LSN: S + 0xFF}, 1, ""},
		{"LSN at the recovery point", Target{LSN: S + 0x200}, 0, "covers what committed before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanRestore(ctx, repo, tc.target)
			switch {
			case tc.refuse != "":
				if err == nil || !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("plan: %v; want a refusal naming %q", err, tc.refuse)
				}
			case err != nil:
				t.Fatal(err)
			case len(plan.Segments) != tc.segs:
				t.Fatalf("planned %d segments, want %d", len(plan.Segments), tc.segs)
			}
		})
	}
}

// TestPlanToleratesLaterBreak: a restore before a missing segment record still works; one after
// it is refused naming the break. Two records from one start (a stalled writer that stored before
// writers were fenced) are followed the longer way, not refused.
func TestPlanToleratesLaterBreak(t *testing.T) {
	ctx := context.Background()
	repo, c := fenceChain(t)
	S, t0 := c.StartLSN, c.BaseTime
	// The stalled writer's [S, S+0x6E8) and the slot's new holder's [S, S+0x7A8), [S+0x7A8, S+0x900).
	recordSegments(t, repo, cutSegment(c, S, S+0x6E8, t0.Add(4*time.Second)), cutSegment(c, S, S+0x7A8, t0.Add(5*time.Second)),
		cutSegment(c, S+0x7A8, S+0x900, t0.Add(10*time.Second)))
	segs, err := Segments(ctx, repo, c.ID)
	if err != nil || len(segs) != 2 || segs[0].EndLSN != S+0x7A8 {
		t.Fatalf("segments with a stalled writer's record: %v, %v; want the two of the slot's holder", segs, err)
	}
	if _, err := PlanRestore(ctx, repo, Target{Time: t0.Add(9 * time.Second)}); err != nil {
		t.Fatalf("plan past the stalled writer's record: %v", err)
	}
	// Now a gap: [S+0xA00, S+0xB00) while [S+0x900, S+0xA00) is missing.
	recordSegments(t, repo, cutSegment(c, S+0xA00, S+0xB00, t0.Add(20*time.Second)))
	if _, err := Segments(ctx, repo, c.ID); err == nil || !strings.Contains(err.Error(), "a segment record is missing") {
		t.Fatalf("segments across a gap: %v; want it named", err)
	}
	if plan, err := PlanRestore(ctx, repo, Target{Time: t0.Add(9 * time.Second)}); err != nil || len(plan.Segments) != 2 {
		t.Fatalf("plan before the gap: %v", err)
	}
	if _, err := PlanRestore(ctx, repo, Target{Time: t0.Add(15 * time.Second)}); err == nil || !strings.Contains(err.Error(), "a segment record is missing") {
		t.Fatalf("plan after the gap: %v; want a refusal naming it", err)
	}
}

// TestPlanPicksTheConfiguredDatabasesChain is issue 28's `--to` restoring staging's chain: with
// chains of two databases in one repository, the restore takes the configured database's (and
// slot's), --chain chooses, and more than one candidate is refused by name.
func TestPlanPicksTheConfiguredDatabasesChain(t *testing.T) {
	ctx := context.Background()
	repo, langfuse := fenceChain(t)
	staging := langfuse
	staging.ID, staging.Database, staging.Base = newChainID(langfuse.BaseTime.Add(time.Minute), 0x2000000), "staging", "20261127T100100Z-4d5e6f"
	staging.StartLSN, staging.BaseTime, staging.Created = 0x2000000, langfuse.BaseTime.Add(time.Minute), langfuse.Created.Add(time.Minute)
	if err := putRecord(ctx, repo, chainName(staging.ID), &staging); err != nil {
		t.Fatal(err)
	}
	target := langfuse.BaseTime.Add(30 * time.Minute)
	recordSegments(t, repo, cutSegment(langfuse, langfuse.StartLSN, langfuse.StartLSN+0x100, target.Add(time.Minute)),
		cutSegment(staging, staging.StartLSN, staging.StartLSN+0x100, target.Add(time.Minute)))
	for _, tc := range []struct {
		name   string
		target Target
		chain  string
		refuse []string
	}{
		{"configured database", Target{Time: target, Database: "langfuse", Slot: "tracevault"}, langfuse.ID, nil},
		{"the other database", Target{Time: target, Database: "staging"}, staging.ID, nil},
		{"--chain", Target{Time: target, Chain: langfuse.ID}, langfuse.ID, nil},
		{"no database named", Target{Time: target}, "", []string{"more than one database", langfuse.ID, staging.ID, "--chain"}},
		{"no chain of the database", Target{Time: target, Database: "prod"}, "", []string{`database "prod"`, "database langfuse", "database staging"}},
		{"no such --chain", Target{Time: target, Chain: "20261127T000000Z-1"}, "", []string{"no point-in-time chain 20261127T000000Z-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanRestore(ctx, repo, tc.target)
			if tc.refuse != nil {
				if err == nil {
					t.Fatalf("planned chain %s; want a refusal", plan.Chain.ID)
				}
				for _, w := range tc.refuse {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("refusal %q does not name %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.Chain.ID != tc.chain {
				t.Fatalf("planned chain %s, want %s", plan.Chain.ID, tc.chain)
			}
		})
	}
	if _, err := PlanRestore(ctx, repo, Target{Time: target, Database: "prod"}); !errors.Is(err, errNoChain) {
		t.Errorf("no chain of the database: %v, want errNoChain", err)
	}
}

// TestTargetWithin: a restore follows the chains of the configured database and slot; --chain
// overrides them.
func TestTargetWithin(t *testing.T) {
	for _, tc := range []struct {
		dsn, slot, chain string
		db, wantSlot     string
	}{
		{"postgres://tv:secret@db.example:5432/langfuse?sslmode=require", "tracevault", "", "langfuse", "tracevault"},
		{"host=db.example user=staging dbname=staging_1", "tv_staging", "", "staging_1", "tv_staging"},
		{"host=db.example user=bob", "", "", "bob", ""},
		{"postgres://tv@db.example/langfuse", "tracevault", "20261127T100000Z-1D49000", "", ""},
	} {
		got, err := Target{Time: time.Now(), Chain: tc.chain}.Within(tc.dsn, tc.slot)
		if err != nil {
			t.Fatalf("%s: %v", tc.dsn, err)
		}
		if got.Database != tc.db || got.Slot != tc.wantSlot || got.Chain != tc.chain {
			t.Errorf("%s: database %q slot %q chain %q, want %q %q %q", tc.dsn, got.Database, got.Slot, got.Chain, tc.db, tc.wantSlot, tc.chain)
		}
	}
}
