package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
)

// TestPITRStatusReportsBrokenChain: a chain that is not continuous is a problem on the page and
// in /metrics, and postgres' freshness is the break's point, not the last segment's.
func TestPITRStatusReportsBrokenChain(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r := &pitrRunner{s: &pitr.Streamer{Slot: "tracevault"}, warnMiB: 1024}
	for _, tc := range []struct {
		name    string
		st      pitr.State
		level   string
		problem string
	}{
		{"continuous", pitr.State{Chain: "c1", RecoveryPoint: now.Add(-5 * time.Second)}, LevelOK, ""},
		{"broken", pitr.State{Chain: "c1", RecoveryPoint: now.Add(-time.Hour), Broken: "point-in-time recovery: chain c1 is not continuous (a segment record is missing)"}, LevelBad, "not continuous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Status{Now: now, Freshness: []Freshness{{Source: "postgres", Level: LevelBad, Reason: "no complete snapshot holds postgres"}}}
			problems := r.status(tc.st, s)
			f := s.Freshness[0]
			if f.Level != tc.level || !f.Time.Equal(tc.st.RecoveryPoint) {
				t.Errorf("postgres freshness %s at %s (%s), want %s at %s", f.Level, f.Time, f.Reason, tc.level, tc.st.RecoveryPoint)
			}
			var named bool
			for _, p := range problems {
				named = named || (tc.problem != "" && strings.Contains(p.What, tc.problem))
			}
			if named != (tc.problem != "") {
				t.Errorf("problems %v; want one naming %q: %v", problems, tc.problem, named)
			}
		})
	}
}
