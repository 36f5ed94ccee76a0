package main

import (
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/progress"
)

// TestFailureSummary: a failed run's summary never claims more done than planned, and names the
// unit that did not finish rather than the one that began last.
func TestFailureSummary(t *testing.T) {
	pg := progress.Unit{Source: "postgres", Table: "public.traces"}
	zk := progress.Unit{Source: "zookeeper"}
	tests := []struct {
		name    string
		s       progress.State
		want    []string
		wantNot []string
	}{
		{name: "postgres failed, zookeeper finished last", s: progress.State{Units: 50, PlannedUnits: 49, Current: zk, Open: []progress.Unit{pg}},
			want: []string{"done 50 units (49 planned ahead)", "unfinished: postgres public.traces"}, wantNot: []string{"50 of 49", "zookeeper"}},
		{name: "nothing open", s: progress.State{Units: 3, PlannedUnits: 5, Current: zk},
			want: []string{"done 3 of 5 planned units", "stopped after zookeeper"}},
		{name: "nothing begun", s: progress.State{PlannedUnits: 5},
			want: []string{"stopped after nothing yet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := failureSummary("backup", "failed", tt.s)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("summary %q lacks %q", got, w)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("summary %q must not say %q", got, w)
				}
			}
		})
	}
}
