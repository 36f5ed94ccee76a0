package jobs

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestPlanPITRFollowsTheConfiguredDatabase is issue 28's `--to` restoring staging's chain: a
// repository holds chains of langfuse and staging; a restore follows [postgres] dsn's database
// and pitr_slot, or the chain --chain names.
func TestPlanPITRFollowsTheConfiguredDatabase(t *testing.T) {
	ctx := context.Background()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	ids := map[string]string{}
	for i, db := range []string{"langfuse", "staging"} {
		start := pitr.LSN(0x1000000 * (i + 1))
		at := base.Add(time.Duration(i) * time.Minute)
		id := fmt.Sprintf("%s-%X", at.Format("20060102T150405Z"), uint64(start))
		ids[db] = id
		c := pitr.Chain{ID: id, Database: db, Slot: "tracevault", Base: at.Format("20060102T150405Z") + "-1a2b3c", StartLSN: start, BaseTime: at, Created: at}
		if err := repo.PutJSON(ctx, "pitr/"+id+"/chain.json", c); err != nil {
			t.Fatal(err)
		}
		seg := pitr.Segment{Chain: id, StartLSN: start, EndLSN: start + 0x100, Until: base.Add(time.Hour), Transactions: 1}
		if err := repo.PutJSON(ctx, fmt.Sprintf("pitr/%s/seg/%016X.json", id, uint64(seg.EndLSN)), seg); err != nil {
			t.Fatal(err)
		}
	}
	target := pitr.Target{Time: base.Add(30 * time.Minute)}
	for _, tc := range []struct {
		name, dsn, slot, chain string
		want                   string // chain id, or a refusal's words
	}{
		{"configured database", "postgres://tv@db.example/langfuse", "", "", ids["langfuse"]},
		{"the other database configured", "postgres://tv@db.example/staging", "", "", ids["staging"]},
		{"--chain", "postgres://tv@db.example/langfuse", "", ids["staging"], ids["staging"]},
		{"a database without chains", "postgres://tv@db.example/prod", "", "", `database "prod"`},
		{"another slot configured", "postgres://tv@db.example/langfuse", "tv_other", "", `slot "tv_other"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{}
			cfg.Postgres.DSN, cfg.Postgres.PITRSlot = config.Secret(tc.dsn), tc.slot
			plan, err := PlanPITR(ctx, cfg, repo, PITRRequest{Target: target, Chain: tc.chain})
			switch {
			case strings.Contains(tc.want, " "):
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("plan: %v; want a refusal naming %s", err, tc.want)
				}
			case err != nil:
				t.Fatal(err)
			case plan.Chain.ID != tc.want:
				t.Fatalf("planned chain %s (database %s), want %s", plan.Chain.ID, plan.Chain.Database, tc.want)
			}
		})
	}
}
