package clickhouse

import (
	"testing"
	"time"
)

func TestVersionColumn(t *testing.T) {
	tests := []struct{ create, want string }{
		{"CREATE TABLE d.traces (`id` String, `event_ts` DateTime) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/traces', '{replica}', event_ts) PARTITION BY toYYYYMM(timestamp) ORDER BY id", "event_ts"},
		{"CREATE TABLE d.t (id String, v UInt64) ENGINE = ReplacingMergeTree(v) ORDER BY id", "v"},
		{"CREATE TABLE d.t (id String, `v v` UInt64) ENGINE = ReplacingMergeTree(`v`, is_deleted) ORDER BY id", "v"},
		// 26.7: a replica path with a comma and parentheses in it, and is_deleted after the version.
		{"CREATE TABLE d.t (id String) ENGINE = ReplicatedReplacingMergeTree('/t/{uuid},(x)', '{replica}', event_ts, is_deleted) ORDER BY id", "event_ts"},
		{"CREATE TABLE d.t (id String) ENGINE = ReplacingMergeTree ORDER BY id", ""},
		{"CREATE TABLE d.t (id String) ENGINE = ReplicatedReplacingMergeTree('/p', '{replica}') ORDER BY id", ""},
		{"CREATE TABLE d.t (id String) ENGINE = ReplacingMergeTree() ORDER BY id", ""},
		{"CREATE TABLE d.t (id String) ENGINE = ReplacingMergeTree(toUInt64(v)) ORDER BY id", ""},
		{"CREATE TABLE d.t (id String) ENGINE = MergeTree ORDER BY id", ""},
		{"CREATE TABLE d.t (id String) ENGINE = ReplacingMergeTree('unterminated", ""},
		{"CREATE TABLE d.t (id String) ENGINE = ReplacingMergeTree(v", ""},
	}
	for _, tt := range tests {
		if got := versionColumn(tt.create); got != tt.want {
			t.Errorf("versionColumn(%q) = %q, want %q", tt.create, got, tt.want)
		}
	}
}

func TestSourceCut(t *testing.T) {
	released := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return released.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name     string
		tables   []TableRecord
		want     time.Time
		position string
	}{
		{"no table", nil, released, ""},
		{"earliest table wins", []TableRecord{
			{Cut: at(5), VersionColumn: "event_ts", Partitions: []PartitionRecord{{newestTime: at(4)}, {newestTime: at(1)}}},
			{Cut: at(2), VersionColumn: "v", Partitions: []PartitionRecord{{}}},
		}, at(2), "newest event_ts exported 2026-11-27T12:00:04Z"},
		// A replica behind by its delay pulls the cut before the release.
		{"delayed replica", []TableRecord{{Cut: at(-3)}, {Cut: at(1)}}, at(-3), ""},
	}
	for _, tt := range tests {
		c := newSourceCut(released)
		for _, rec := range tt.tables {
			c.add(rec)
		}
		if !c.time().Equal(tt.want) || c.position() != tt.position {
			t.Errorf("%s: cut %s (%q), want %s (%q)", tt.name, c.time(), c.position(), tt.want, tt.position)
		}
	}
}

// TestReplicaCut: a replica's delay, counted by the server in whole seconds from the oldest
// write it lacks (its time truncated to the second), bounds the cut from the second the delay
// was read in, so a write acknowledged within that second is never claimed.
func TestReplicaCut(t *testing.T) {
	at := time.Date(2026, 11, 28, 6, 54, 15, 320_000_000, time.UTC)
	for _, tc := range []struct {
		name       string
		seconds    uint64
		replicated bool
		want       time.Time
	}{
		// The chaos run's case: a write at 06:54:00.096 unfetched, delay 15 read at 06:54:15.32.
		{"behind", 15, true, time.Date(2026, 11, 28, 6, 54, 0, 0, time.UTC)},
		{"a write of this second unfetched", 0, true, time.Date(2026, 11, 28, 6, 54, 15, 0, time.UTC)},
		{"not replicated: every write is local", 0, false, at},
	} {
		got := measuredDelay{at: at, seconds: tc.seconds, replicated: tc.replicated}.cut()
		if !got.Equal(tc.want) {
			t.Errorf("%s: cut %s, want %s", tc.name, got.Format(time.RFC3339Nano), tc.want.Format(time.RFC3339Nano))
		}
		if written := time.Date(2026, 11, 28, 6, 54, 0, 96_000_000, time.UTC); tc.name == "behind" && !got.Before(written) {
			t.Errorf("the cut %s claims the unfetched write of %s", got.Format(time.RFC3339Nano), written.Format(time.RFC3339Nano))
		}
	}
}
