package jobs

import (
	"testing"
	"time"

	"github.com/tracevault/tracevault/jobs/replay"
)

func TestRecoveryPointSaysWhereClickHouseStands(t *testing.T) {
	cut := time.Date(2026, 11, 30, 11, 45, 0, 0, time.UTC)
	last := time.Date(2026, 11, 30, 11, 58, 31, 0, time.UTC)
	sel := &replay.Selection{Count: 4812, Last: last, Window: replay.Window{Since: cut.Add(-2 * time.Minute)}}
	cases := []struct {
		name string
		res  ReplayEventsResult
		req  ReplayRequest
		want string
	}{
		{name: "after a restore", req: ReplayRequest{Restored: true},
			res:  ReplayEventsResult{Snapshot: "20261130T1145", Cut: cut, Selection: sel, Replay: &replay.Result{Sent: 4812, Reached: last, Done: true}},
			want: "ClickHouse restored to the snapshot 20261130T1145 at 2026-11-30 11:45:00Z, then 4,812 events written until 2026-11-30 11:58:31Z replayed"},
		{name: "interrupted",
			res:  ReplayEventsResult{Snapshot: "s", Cut: cut, Selection: sel, Replay: &replay.Result{Sent: 2000, Reached: cut}},
			want: "ClickHouse at the snapshot s (cut 2026-11-30 11:45:00Z), then 2,000 of 4,812 events replayed, written until 2026-11-30 11:45:00Z (incomplete)"},
		{name: "dry run", res: ReplayEventsResult{Selection: sel, DryRun: true},
			want: "ClickHouse, then 4,812 events written until 2026-11-30 11:58:31Z would be replayed"},
		{name: "since a time", res: ReplayEventsResult{From: cut, Selection: sel, Replay: &replay.Result{Sent: 4812, Reached: last, Done: true}},
			want: "ClickHouse from 2026-11-30 11:45:00Z, then 4,812 events written until 2026-11-30 11:58:31Z replayed"},
		{name: "nothing to replay", res: ReplayEventsResult{Selection: &replay.Selection{Window: sel.Window}, Replay: &replay.Result{Done: true}},
			want: "ClickHouse: no events written since 2026-11-30 11:43:00Z to replay"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := recoveryPoint(&tc.res, tc.req); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestGrouped(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 4812: "4,812", 1234567: "1,234,567"} {
		if got := grouped(n); got != want {
			t.Errorf("grouped(%d) = %q, want %q", n, got, want)
		}
	}
}
