package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// TestShowPrintsCut: 'show' says the set's cut, or that an older snapshot has none.
func TestShowPrintsCut(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 3, 0, 1, 250e6, time.UTC)
	tests := []struct {
		name string
		cut  *store.Cut
		want string
	}{
		{"recorded", store.NewCut([]store.SourceCut{{Source: "postgres", Time: t0, Position: "lsn 0/3000148"}, {Source: "clickhouse", Time: t0.Add(7 * time.Millisecond)}}),
			"cut      2026-11-25T03:00:01.250Z: every write acknowledged before it is in the snapshot; skew 7ms between sources: postgres 03:00:01.250 (lsn 0/3000148), clickhouse 03:00:01.257\n"},
		{"old snapshot", nil, "cut      not recorded\n"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		printManifest(&out, &store.Manifest{ID: "20261125T030000Z-abcdef", Status: store.StatusComplete, Start: t0, End: t0, Cut: tt.cut}, nil)
		if !strings.Contains(out.String(), tt.want) {
			t.Errorf("%s: show printed\n%s\nwant the line %q", tt.name, out.String(), tt.want)
		}
	}
}
