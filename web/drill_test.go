package web

import (
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/jobs"
)

func TestLastProvenRestorePanel(t *testing.T) {
	now := time.Now().UTC()
	ok := &jobs.Run{ID: "d1", Job: "drill", Action: "drill", Start: now.Add(-2 * time.Hour), End: now.Add(-2*time.Hour + time.Minute), Outcome: jobs.OutcomeSucceeded,
		Snapshot: "20261125T0300-ab", RTOSeconds: 42, RPOSeconds: 3 * 3600, RestoreSeconds: map[string]float64{"clickhouse": 30, "postgres": 12}}
	bad := &jobs.Run{ID: "d2", Job: "drill", Action: "drill", Start: now.Add(-time.Hour), End: now.Add(-time.Hour + time.Minute), Outcome: jobs.OutcomeFailed,
		Snapshot: "20261125T0300-ab", Error: "restore clickhouse into default_drill: object 7f3a damaged"}
	cases := []struct {
		name  string
		drill *jobs.Run
		want  []string
		first string // expected as the page's first problem; empty: no drill problem
	}{
		{"none yet", nil, []string{"No restore drill yet", "tracevault drill"}, ""},
		{"proven", ok, []string{`id="last-drill"`, "succeeded", "20261125T0300-ab", "RTO 42s", "clickhouse 30s", "postgres 12s", "RPO 3 h"}, ""},
		{"failed", bad, []string{"failed", "object 7f3a damaged"}, "restore drill d2 of snapshot 20261125T0300-ab failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := sampleSource()
			src.st.LastDrill = c.drill
			src.st.Problems = jobs.StatusProblems(src.st)
			_, body := get(t, New(Options{Version: "test"}, src), "/")
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			i := strings.Index(body, "restore drill d")
			switch {
			case c.first == "" && i >= 0:
				t.Error("a drill problem without a failed drill")
			case c.first != "" && (i < 0 || !strings.Contains(body, c.first) || i > strings.Index(body, "no complete snapshot holds postgres")):
				t.Errorf("the failed drill is not the first problem:\n%s", body)
			}
		})
	}
}
