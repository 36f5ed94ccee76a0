package jobs

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/config"
)

// The sources a migration moves: --only, else every one the target file names; each needs
// both sides configured, and ZooKeeper is not moved on its own.
func TestMoveSources(t *testing.T) {
	all := &config.Config{}
	all.Postgres.DSN, all.ClickHouse.Addresses, all.Blobs.URL = "postgres://a/db", []string{"a:9000"}, "azblob://c"
	chOnly := &config.Config{}
	chOnly.ClickHouse.Addresses = []string{"b:9000"}
	tests := []struct {
		name        string
		cfg, target *config.Config
		only        []string
		want, err   string
	}{
		{"the target's sources", all, all, nil, "postgres,clickhouse,blobs", ""},
		{"a ClickHouse target", all, chOnly, nil, "clickhouse", ""},
		{"--only, in moving order", all, all, []string{"blobs", "postgres"}, "postgres,blobs", ""},
		{"--only a source the target lacks", all, chOnly, []string{"postgres"}, "", "the target's [postgres] dsn"},
		{"--only a source the configuration lacks", chOnly, all, []string{"blobs"}, "", "the source's [blobs] url"},
		{"zookeeper", all, all, []string{"zookeeper"}, "", `--only "zookeeper": migrate-cluster moves postgres, clickhouse, blobs`},
		{"an empty target", all, &config.Config{}, nil, "", "--to names no target"},
	}
	for _, tt := range tests {
		got, err := moveSources(tt.cfg, tt.target, tt.only)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != tt.want {
			t.Errorf("%s: %v, %v; want %s", tt.name, got, err, tt.want)
		}
	}
}

// A plan's refusals name their source, stop a run before it writes, and --dry-run prints them.
func TestMovePlanRefusals(t *testing.T) {
	p := &ClusterMigrationPlan{Sources: []string{"postgres", "blobs"}, Moves: []SourceMove{
		{Source: "postgres", From: "a:5432/langfuse", To: "b:5432/langfuse", What: "database langfuse: 8 tables", Refused: []string{"the target database b:5432/langfuse holds 3 tables"}},
		{Source: "blobs", From: "azblob://a", To: "azblob://b", What: "2 blobs, 10 B", Notes: []string{"the first pass creates it"}},
	}, Refused: []string{"the target already holds db on b:9000 (1 tables)"}}
	if got := strings.Join(p.refused(), "|"); got != "clickhouse: the target already holds db on b:9000 (1 tables)|postgres: the target database b:5432/langfuse holds 3 tables" {
		t.Errorf("refused %q", got)
	}
	m := &ClusterMigration{Plan: p}
	if _, err := m.Run(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("a refused plan ran: %v", err)
	}
	var out bytes.Buffer
	p.Write(&out)
	for _, want := range []string{"moves: postgres, blobs", "\nrefused: the target already holds db", "postgres: a:5432/langfuse -> b:5432/langfuse: database langfuse: 8 tables", "  refused: the target database", "blobs: azblob://a -> azblob://b: 2 blobs", "  note: the first pass creates it"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the plan printed\n%s\nwithout %q", out.String(), want)
		}
	}
}

// A source's pass record survives a restart; one of a move between other servers is refused.
func TestMoveStateResumes(t *testing.T) {
	path := moveStatePath(filepath.Join(t.TempDir(), "t.toml"), "postgres")
	st, err := loadMoveState(path, "a:5432/db", "b:5432/db")
	if err != nil {
		t.Fatal(err)
	}
	m := &ClusterMigration{log: quiet}
	rep, err := m.begin(st, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	again, err := loadMoveState(path, "a:5432/db", "b:5432/db")
	if err != nil || !again.Started || len(again.Passes) != 0 {
		t.Fatalf("after a begun pass: %+v, %v; want started, no pass done", again, err)
	}
	if _, err := m.finish(st, rep); err != nil {
		t.Fatal(err)
	}
	if again, err = loadMoveState(path, "a:5432/db", "b:5432/db"); err != nil || len(again.Passes) != 1 || again.Passes[0].Pass != 1 {
		t.Fatalf("after a pass: %+v, %v; want one pass", again, err)
	}
	if _, err := loadMoveState(path, "a:5432/db", "c:5432/db"); err == nil || !strings.Contains(err.Error(), "remove it to start over") {
		t.Errorf("another target: %v, want refused", err)
	}
}

// A run's report: each source's pass in its own words, a cutover's downtime, and in JSON the
// ClickHouse pass's fields at the top, as a ClickHouse-only run has always printed them.
func TestMoveReportWrite(t *testing.T) {
	pg := &MovePass{Source: "postgres", Pass: 2, Cutover: true, How: "pitr-catch-up", Transactions: 3, Changes: 45, ReachedLSN: "0/1A2B3C", Duration: Duration(1500 * time.Millisecond),
		Proof: &MoveProof{Compared: 2, Equal: true, What: "row counts and content checksums"}}
	bl := &MovePass{Source: "blobs", Pass: 2, Cutover: true, How: "copy", Snapshot: "S2", Written: 3, Bytes: 2048, Identical: 4}
	tests := []struct {
		name string
		rep  MoveReport
		text []string
		json string
	}{
		{"clickhouse alone", MoveReport{PassReport: &PassReport{Pass: 1, Snapshot: "S1", BehindPartitions: 2, BehindRows: 10}},
			[]string{"pass 1 from snapshot S1: the target was 2 partitions, 10 rows behind"}, `"pass":1,"cutover":false,"snapshot":"S1"`},
		{"postgres and blobs", MoveReport{Postgres: pg, Blobs: bl, Took: Duration(2 * time.Second)},
			[]string{"postgres cutover pass 2 (pitr-catch-up): replayed 3 transactions, 45 changes, to commit 0/1A2B3C in 1.5s",
				"postgres proof: 2 tables compared, row counts and content checksums equal",
				"blobs cutover pass 2 (copy of snapshot S2): wrote 3 blobs (2.0 KiB) missing or changed on the target, 4 identical",
				"downtime: 2s (the whole cutover run)"}, `"postgres":{"source":"postgres","pass":2`},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		tt.rep.Write(&out)
		for _, want := range tt.text {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: printed\n%s\nwithout %q", tt.name, out.String(), want)
			}
		}
		data, err := json.Marshal(&tt.rep)
		if err != nil || !strings.Contains(string(data), tt.json) {
			t.Errorf("%s: JSON %s (%v), want it to hold %s", tt.name, data, err, tt.json)
		}
	}
}
