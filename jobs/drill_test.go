package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

func TestDrillDiskCheck(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir() // one filesystem
	ch := func(dir string, need int64) landing { return landing{what: "clickhouse", dir: dir, need: need} }
	pg := func(dir string, need int64) landing { return landing{what: "postgres", dir: dir, need: need} }
	cases := []struct {
		name    string
		lands   []landing
		want    string // in the result, or in the error when refused
		refused bool
	}{
		{"fits", []landing{ch(dir, 1), pg(dir, 1)}, "2 B to restore", false},
		{"too big", []landing{ch(dir, 1<<62)}, "the snapshot restores 4.0 EiB onto it", true},
		{"both sources together too big", []landing{ch(dir, 1<<61), pg(other, 1<<61+1<<60)}, "not enough disk", true},
		{"replicas on one filesystem count once", []landing{ch(dir, 10), ch(other, 10), ch(dir, 10)}, "10 B to restore", false},
		{"another host's directory", []landing{ch("/nonexistent/clickhouse/", 1<<62), pg(dir, 1)}, "not measured: the data directories of clickhouse", false},
		{"sizes are for people", []landing{ch(dir, 3<<29)}, "1.5 GiB to restore", false},
		{"postgres data_directory unreadable", []landing{pg("", 1<<62)}, "not measured: the data directories of postgres", false},
	}
	for _, c := range cases {
		got, err := diskCheck(c.lands)
		text := got
		if err != nil {
			text = err.Error()
		}
		if (err != nil) != c.refused || !strings.Contains(text, c.want) {
			t.Errorf("%s: diskCheck = %q, %v; want %q (refused %v)", c.name, got, err, c.want, c.refused)
		}
	}
}

func TestRecoveryPoints(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	comp := func(src, status string) store.Component { return store.Component{Source: src, Status: status} }
	snaps := []store.Manifest{
		{ID: "a", Start: t0, Status: store.StatusComplete, Components: []store.Component{comp("postgres", store.StatusComplete), comp("clickhouse", store.StatusComplete)}},
		{ID: "b", Start: t0.Add(time.Hour), Status: store.StatusComplete, Components: []store.Component{comp("clickhouse", store.StatusComplete)}},
		// A partial set proves nothing about any of its sources.
		{ID: "c", Start: t0.Add(2 * time.Hour), Status: store.StatusPartial, Components: []store.Component{comp("postgres", store.StatusComplete), comp("clickhouse", "failed")}},
	}
	got := recoveryPoints(snaps)
	if !got["postgres"].Equal(t0) || !got["clickhouse"].Equal(t0.Add(time.Hour)) || len(got) != 2 {
		t.Errorf("recovery points %v; want postgres from a, clickhouse from b", got)
	}
}
