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
