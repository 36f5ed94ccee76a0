package main

import (
	"strings"
	"testing"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// TestDrillLines: a refused drill shows no RTO, and --keep names what it kept.
func TestDrillLines(t *testing.T) {
	ch := jobs.DrillSource{Source: "clickhouse", Targets: []string{"default_drill", "ux_db_drill"}, RestoreSeconds: 2.5}
	pg := jobs.DrillSource{Source: "postgres", Targets: []string{"langfuse_drill"}, RestoreSeconds: 1}
	tests := []struct {
		name    string
		res     jobs.DrillResult
		line    func(*jobs.DrillResult) string
		want    []string
		wantNot []string
	}{
		{name: "refused", res: jobs.DrillResult{Snapshot: "20261124T0315", Outcome: "failed", Refused: true}, line: drillHeadline,
			want: []string{"refused before restoring anything"}, wantNot: []string{"RTO", "()"}},
		{name: "measured", res: jobs.DrillResult{Snapshot: "s1", Outcome: "succeeded", RTOSeconds: 3.5, Sources: []jobs.DrillSource{ch, pg}}, line: drillHeadline,
			want: []string{"succeeded: RTO 3.5s (clickhouse 2.5s into default_drill,ux_db_drill; postgres 1.0s into langfuse_drill)"}},
		{name: "kept names targets", res: jobs.DrillResult{Kept: true, Sources: []jobs.DrillSource{ch, pg, {Source: "blobs", Targets: []string{"file:///x"}}}}, line: keptLine,
			want: []string{"clickhouse default_drill, ux_db_drill", "postgres langfuse_drill"}, wantNot: []string{"blobs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.line(&tt.res)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("%q must not say %q", got, w)
				}
			}
		})
	}
}

// TestZKRestoreLine: a dry run says what it would create, update and keep, and the refusal it
// stands in for.
func TestZKRestoreLine(t *testing.T) {
	got := zkRestoreLine(&zookeeper.RestoreReport{Existing: 99, Ephemeral: 2, WouldRefuse: "restore zookeeper under /clickhouse: nodes already exist"}, "/clickhouse", true)
	for _, w := range []string{"would create 0 nodes", "would keep 99 existing", "without --replace the restore would refuse: restore zookeeper under /clickhouse"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q lacks %q", got, w)
		}
	}
	if got := zkRestoreLine(&zookeeper.RestoreReport{Updated: 99}, "/clickhouse", true); !strings.Contains(got, "would update 99 existing") || strings.Contains(got, "refuse") {
		t.Errorf("dry run with --replace: %q", got)
	}
}
