package main

import (
	"strings"
	"testing"

	"github.com/tracevault/tracevault/jobs"
)

// TestUndoMigration: the undo of --snapshot-before reverts the schema first (the restore alone
// only reloads rows), then restores the data.
func TestUndoMigration(t *testing.T) {
	up := func(v int64) jobs.MigrateStep { return jobs.MigrateStep{Version: v, Direction: "up", Target: v} }
	down := func(v, to int64) jobs.MigrateStep { return jobs.MigrateStep{Version: v, Direction: "down", Target: to} }
	tests := []struct {
		name     string
		database string
		steps    []jobs.MigrateStep
		want     string
	}{
		{name: "two up", steps: []jobs.MigrateStep{up(3), up(4)}, want: "tracevault migrate --target clickhouse down 2"},
		{name: "one down goes back to it", database: "langfuse", steps: []jobs.MigrateStep{down(4, 3), down(3, 2)}, want: "tracevault migrate --target clickhouse --database langfuse goto 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := undoMigration("clickhouse", tt.database, tt.steps); got != tt.want {
				t.Errorf("undoMigration = %q, want %q", got, tt.want)
			}
		})
	}
	text := undoText("clickhouse", "", []jobs.MigrateStep{up(3)}, "tracevault restore S1 --only clickhouse --tables 'default.*' --replace")
	first, second := strings.Index(text, "migrate --target clickhouse down 1"), strings.Index(text, "tracevault restore S1")
	if first < 0 || second < first || !strings.Contains(text, "drops nothing the migration created") {
		t.Errorf("undo text must revert the schema, then restore the data, and say what the restore alone does not:\n%s", text)
	}
}
