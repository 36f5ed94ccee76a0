package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

func TestDrillDiskCheck(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		url     string
		need    int64
		want    string // in the result, or in the error when refused
		refused bool
	}{
		{"file://" + dir, 1, "bytes free", false},
		{"file://" + dir, 1 << 62, "not enough disk", true},
		{"file://" + dir + "/missing", 1, "measure free space", true},
		{"azblob://tracevault/prod", 1 << 62, "skipped: the repository azblob", false},
	}
	for _, c := range cases {
		got, err := diskCheck(c.url, c.need)
		text := got
		if err != nil {
			text = err.Error()
		}
		if (err != nil) != c.refused || !strings.Contains(text, c.want) {
			t.Errorf("diskCheck(%s, %d) = %q, %v; want %q (refused %v)", c.url, c.need, got, err, c.want, c.refused)
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
