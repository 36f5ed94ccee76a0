package devstack

import "testing"

func TestOrphaned(t *testing.T) {
	alive := func(pid int) bool { return pid == 4242 }
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"chaos_4496_209042667", true},
		{"chaos_4496_209042667_drill", true},
		{"it_drill_5592_325611219_drill", true},
		{"chaos_modern_31_5", true},
		{"chaos_4242_209042667", false},     // its process still runs
		{"it_pg_4242_1_drill", false},       // the same, with a suffix
		{"bench_1200_12m", false},           // the bench's seed cache, named by size
		{"bench_modern_1000000_12m", false}, // the same
		{"bench_pgbench_25", false},         // one number only
		{"langfuse", false},                 // a developer's database
		{"chaos_1_209042667", false},        // pid 1 is never a test
		{"chaos_4496_2090426671234", false}, // more than nine digits of nanoseconds
		{"Chaos_4496_209042667", false},     // not a name ScratchName makes
	} {
		if got := orphaned(tt.name, alive); got != tt.want {
			t.Errorf("orphaned(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
