package demo

import (
	"reflect"
	"testing"
	"time"
)

func TestGenerateIsDeterministicAndSpread(t *testing.T) {
	o := Options{Traces: 2000, Seed: 42}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	w := newWorld(o.Seed)
	a := generateChunk(o, w, 0, 0, o.Traces)
	b := generateChunk(o, w, 0, 0, o.Traces)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed and chunk generated different rows")
	}
	o2 := o
	o2.Seed = 43
	if reflect.DeepEqual(a[0].cols[0], generateChunk(o2, w, 0, 0, o.Traces)[0].cols[0]) {
		t.Fatal("a different seed generated the same trace ids")
	}

	months := map[time.Month]int{}
	for _, ts := range a[0].cols[1].([]time.Time) {
		months[ts.Month()]++
	}
	if len(months) != o.Months {
		t.Errorf("traces fall into %d months, want %d: %v", len(months), o.Months, months)
	}
	for _, s := range a {
		for i, c := range s.cols {
			if n := reflect.ValueOf(c).Len(); n != s.n {
				t.Errorf("%s.%s has %d values, want %d", s.table, s.names[i], n, s.n)
			}
		}
	}
	if obs := a[1].n; obs < o.Traces || obs > o.Traces*observationsMax {
		t.Errorf("%d observations for %d traces, want 1..%d each", obs, o.Traces, observationsMax)
	}
}

func TestClickHouseStatements(t *testing.T) {
	tests := []struct {
		cluster, want string
	}{
		{"default", "CREATE TABLE IF NOT EXISTS demo_x.traces ON CLUSTER default ("},
		{"", "CREATE TABLE IF NOT EXISTS demo_x.traces  ("},
	}
	for _, tt := range tests {
		stmts := ClickHouseStatements("demo_x", tt.cluster)
		// The database plus the 13 objects of the Langfuse architecture.
		if len(stmts) != 14 {
			t.Fatalf("cluster %q: %d statements, want 14", tt.cluster, len(stmts))
		}
		if got := firstLine(stmts[1]); got != tt.want {
			t.Errorf("cluster %q: got %q, want %q", tt.cluster, got, tt.want)
		}
	}
}
