package store

import (
	"strings"
	"testing"
	"time"
)

func TestNewCut(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		sources []SourceCut
		want    time.Time
		skew    time.Duration
	}{
		{"one source", []SourceCut{{Source: "postgres", Time: t0}}, t0, 0},
		{"the earliest wins", []SourceCut{{Source: "postgres", Time: t0.Add(40 * time.Millisecond)}, {Source: "clickhouse", Time: t0}}, t0, 40 * time.Millisecond},
		// 61903 ns is 6.1902999…e-05 s as a float64: a truncating conversion loses a nanosecond.
		{"nanoseconds survive the seconds field", []SourceCut{{Time: t0}, {Time: t0.Add(61903 * time.Nanosecond)}}, t0, 61903 * time.Nanosecond},
		{"three", []SourceCut{{Time: t0.Add(time.Second)}, {Time: t0.Add(3 * time.Second)}, {Time: t0.Add(2 * time.Second)}}, t0.Add(time.Second), 2 * time.Second},
	}
	for _, tt := range tests {
		c := NewCut(tt.sources)
		if !c.Time.Equal(tt.want) || c.Skew() != tt.skew {
			t.Errorf("%s: cut %s skew %s, want %s skew %s", tt.name, c.Time, c.Skew(), tt.want, tt.skew)
		}
	}
	if NewCut(nil) != nil {
		t.Error("a set without source cuts has a cut")
	}
}

// TestManifestWithoutCut: a manifest written before cuts were recorded still loads, and its cut
// reads "not recorded".
func TestManifestWithoutCut(t *testing.T) {
	id := "20261124T031500Z-1a2b3c"
	old := `{"id":"` + id + `","start":"2026-11-24T03:15:00Z","end":"2026-11-24T03:16:00Z","status":"complete","host":"h","components":[{"source":"postgres","start":"2026-11-24T03:15:00Z","end":"2026-11-24T03:16:00Z","status":"complete"}],"objects":[]}`
	m, err := parseManifest(manifestName(id), strings.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	if m.Cut != nil || m.Cut.String() != "not recorded" {
		t.Errorf("cut %v reads %q", m.Cut, m.Cut.String())
	}
}
