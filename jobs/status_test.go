package jobs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestStatusProblems: each condition the page must never hide is a problem with a fix, and a
// healthy status has none.
func TestStatusProblems(t *testing.T) {
	now := time.Now().UTC()
	okRun := &Run{ID: "r1", Job: "nightly", Start: now.Add(-time.Hour), Outcome: OutcomeSucceeded}
	healthy := func() Status {
		return Status{Now: now,
			Jobs:      []JobStatus{{Name: "nightly", Action: "backup", Schedule: "0 3 * * *", LastRun: okRun}},
			Snapshots: []SnapshotSummary{{ID: "20261127T0300-aa", Status: store.StatusComplete}},
			Freshness: []Freshness{{Source: "clickhouse", Snapshot: "20261127T0300-aa", AgeSeconds: 3600, IntervalSeconds: 86400, Level: LevelOK}},
		}
	}
	tests := []struct {
		name   string
		change func(*Status)
		want   []string // in What, then in Fix
	}{
		{"healthy", func(*Status) {}, nil},
		{"last run failed", func(s *Status) {
			s.Jobs[0].LastRun = &Run{ID: "r2", Start: now, Outcome: OutcomeFailed, Error: "connection refused"}
		}, []string{"job nightly", "r2 failed", "connection refused", "tracevault backup"}},
		{"last run interrupted, job running again", func(s *Status) {
			s.Jobs[0].Running = true
			s.Jobs[0].LastRun = &Run{ID: "r3", Start: now, Outcome: OutcomeInterrupted, Error: "daemon stopped"}
		}, []string{"r3 interrupted", "daemon stopped"}},
		{"source past 1.5 intervals (amber)", func(s *Status) {
			s.Freshness[0].AgeSeconds, s.Freshness[0].Level, s.Freshness[0].Reason = 2*86400, LevelWarn, "a scheduled backup was missed"
		}, []string{"clickhouse", "48h0m0s old", "missed", "tracevault backup --only clickhouse"}},
		{"source never backed up", func(s *Status) {
			s.Freshness = append(s.Freshness, Freshness{Source: "postgres", Level: LevelBad, Reason: "no complete snapshot holds postgres"})
		}, []string{"postgres: no complete snapshot", "tracevault backup --only postgres"}},
		{"no job covers a source", func(s *Status) {
			s.Freshness[0].IntervalSeconds, s.Freshness[0].Level, s.Freshness[0].Reason = 0, LevelWarn, "no [[jobs]] backup covers clickhouse"
		}, []string{"no [[jobs]] backup covers clickhouse", "add a [[jobs]] backup"}},
		{"newest snapshot partial", func(s *Status) {
			s.Snapshots = append([]SnapshotSummary{{ID: "20261127T0400-bb", Status: store.StatusPartial, Error: "clickhouse: boom"}}, s.Snapshots...)
		}, []string{"newest snapshot 20261127T0400-bb is partial", "clickhouse: boom", "--allow-partial"}},
		{"damaged manifest", func(s *Status) {
			s.DamagedManifests = []store.DamagedManifest{{Name: "snapshots/20261101T0300-cc.json", Error: "decode: invalid character\x00\x01binary"}}
		}, []string{"damaged manifest snapshots/20261101T0300-cc.json", "decode: invalid character […]", "tracevault delete --damaged"}},
		{"blob files missing", func(s *Status) {
			s.Snapshots[0].BlobCheck = &blobs.Check{Table: "default.blob_storage_file_log", Files: 9, Missing: 2, MissingExamples: []string{"p1/events/a.json", "p1/events/b.json"}}
		}, []string{"20261127T0300-aa", "names 2 files the container does not hold", "p1/events/a.json", "restore ID --only blobs"}},
		{"blob check unreadable", func(s *Status) {
			s.Snapshots[0].BlobCheck = &blobs.Check{Error: "read default.blob_storage_file_log on 127.0.0.1:9000: connection refused"}
		}, []string{"could not be checked", "connection refused", "[clickhouse]"}},
		{"blob check clean, or on an older snapshot only", func(s *Status) {
			s.Snapshots[0].BlobCheck = &blobs.Check{Files: 9, Unreferenced: 3}
			s.Snapshots = append(s.Snapshots, SnapshotSummary{ID: "20261126T0300-zz", Status: store.StatusComplete, BlobCheck: &blobs.Check{Missing: 5}})
		}, nil},
		{"catalog unreadable", func(s *Status) { s.SnapshotsError = "permission denied" }, []string{"catalog unreadable: permission denied"}},
		{"run history unreadable", func(s *Status) { s.RunsError = "permission denied" }, []string{"run history unreadable"}},
	}
	for _, tt := range tests {
		s := healthy()
		tt.change(&s)
		got := StatusProblems(s)
		if len(tt.want) == 0 {
			if len(got) != 0 {
				t.Errorf("%s: problems %+v, want none", tt.name, got)
			}
			continue
		}
		if len(got) != 1 {
			t.Errorf("%s: %d problems %+v, want 1", tt.name, len(got), got)
			continue
		}
		text := got[0].What + "\n" + got[0].Fix
		for _, w := range tt.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: problem lacks %q:\n%s", tt.name, w, text)
			}
		}
		if got[0].Fix == "" {
			t.Errorf("%s: problem without a fix", tt.name)
		}
	}
}

// TestRunErrorsAreSafeText: a failed run whose error embeds the binary tail of a Native stream is
// stored and read back as capped, printable text without the data.
func TestRunErrorsAreSafeText(t *testing.T) {
	ctx := context.Background()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h := &History{Repo: repo, Limit: 10}
	tail := "load partition 202611: unexpected EOF\x00\x01\x02\xff trace output: my secret prompt" + strings.Repeat("\x07data", 200)
	r := Run{ID: newRunID(), Job: "nightly", Start: time.Now().UTC(), Outcome: OutcomeFailed, Error: tail}
	if err := h.Record(ctx, r); err != nil {
		t.Fatal(err)
	}
	runs, err := h.Recent(ctx, 1)
	if err != nil || len(runs) != 1 {
		t.Fatalf("recent: %v, %d runs", err, len(runs))
	}
	if got := runs[0].Error; got != "load partition 202611: unexpected EOF […]" {
		t.Errorf("stored error %q", got)
	}
	// A record written before errors were sanitised is cleaned on read.
	r.ID, r.Start = "r0", r.Start.Add(-time.Minute)
	if err := repo.PutJSON(ctx, runName(r), r); err != nil {
		t.Fatal(err)
	}
	runs, _ = h.Recent(ctx, 2)
	for _, run := range runs {
		if strings.Contains(run.Error, "secret") || len(run.Error) > 600 {
			t.Errorf("run %s error %q carries data", run.ID, run.Error)
		}
	}
}
