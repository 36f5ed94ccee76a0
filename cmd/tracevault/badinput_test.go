package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

// buildBinary builds tracevault once per test run: these tests run the real process, so a panic
// shows as it would to a user (exit 2 and a goroutine dump), not as a recovered test failure.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tracevault")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// craftSnapshot commits a manifest with the given components and sections, as a backup (or
// someone with write access to the repository) would leave it.
func craftSnapshot(t *testing.T, repo *store.Repository, status string, sections map[string]any) string {
	t.Helper()
	m := store.NewManifest(nil)
	m.Status = status
	if status != store.StatusComplete {
		m.Error = "clickhouse: connection refused"
	}
	for src, sec := range sections {
		raw, err := json.Marshal(sec)
		if err != nil {
			t.Fatal(err)
		}
		m.Sections[src] = raw
		m.Components = append(m.Components, store.Component{Source: src, Start: m.Start, End: m.Start, Status: store.StatusComplete})
	}
	if err := repo.CommitManifest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// TestBadInputsExitCleanly runs the built binary over bad flags, arguments and snapshots: each
// is refused with the documented exit code and a message naming what was wrong, and nothing
// panics. With the stack, a PostgreSQL section without pre-data is planned too.
func TestBadInputsExitCleanly(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	ctx := context.Background()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + filepath.Join(dir, "repo")})
	if err != nil {
		t.Fatal(err)
	}
	traces := clickhouse.TableRecord{Table: clickhouse.Table{Database: "default", Name: "traces", Engine: "ReplicatedReplacingMergeTree",
		Create: "CREATE TABLE default.traces (id String, event_ts DateTime) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/default/traces', '{replica}', event_ts) PARTITION BY toYYYYMM(event_ts) ORDER BY id"},
		Partitions: []clickhouse.PartitionRecord{{Partition: clickhouse.Partition{ID: "202605", Rows: 10}}}}
	noPreData := postgres.Section{Format: postgres.FormatVersion, Database: postgres.DatabaseInfo{Name: "langfuse"}}
	complete := craftSnapshot(t, repo, store.StatusComplete, map[string]any{
		config.SourceClickHouse: clickhouse.Section{Tables: []clickhouse.TableRecord{traces}},
		config.SourcePostgres:   noPreData,
	})
	partial := craftSnapshot(t, repo, store.StatusPartial, map[string]any{config.SourceZooKeeper: map[string]any{}})
	// A second repository whose only snapshot is partial, for "restore latest".
	onlyPartialRepo, err := store.Open(ctx, store.Options{URL: "file://" + filepath.Join(dir, "partial-repo")})
	if err != nil {
		t.Fatal(err)
	}
	onlyPartial := craftSnapshot(t, onlyPartialRepo, store.StatusPartial, map[string]any{config.SourceZooKeeper: map[string]any{}})
	partialCfg := filepath.Join(dir, "partial.toml")
	if err := os.WriteFile(partialCfg, []byte(fmt.Sprintf("[storage]\nurl = \"file://%s/partial-repo\"\n", dir)), 0o600); err != nil {
		t.Fatal(err)
	}

	toml := fmt.Sprintf("[storage]\nurl = \"file://%s/repo\"\n", dir)
	// A migration target that names nothing to move to.
	moveTarget := filepath.Join(dir, "target.toml")
	if err := os.WriteFile(moveTarget, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	env, stackErr := devstack.Load()
	if stackErr == nil {
		toml += fmt.Sprintf("[postgres]\ndsn = %q\n", env.PGDSN)
	} else if os.Getenv("CI") != "" {
		t.Fatalf("CI=true needs the stack for the PostgreSQL case: %v", stackErr)
	}
	cfg := filepath.Join(dir, "tracevault.toml")
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string
		stack  bool // needs the PostgreSQL server
	}{
		{"empty --partitions", []string{"restore", complete, "--only", "clickhouse", "--partitions", ""}, 2, []string{"--partitions given an empty value"}, false},
		{"empty --tables", []string{"restore", complete, "--only", "clickhouse", "--tables", ""}, 2, []string{"--tables given an empty value"}, false},
		{"empty element in --tables", []string{"restore", complete, "--only", "clickhouse", "--tables", "default.traces,"}, 2, []string{"--tables"}, false},
		{"blank --tables=", []string{"restore", complete, "--only", "clickhouse", "--tables= "}, 2, []string{"--tables"}, false},
		{"empty snapshot id", []string{"restore", "", "--only", "clickhouse"}, 2, []string{"argument 1", "empty"}, false},
		{"empty --only on backup", []string{"backup", "--only", ""}, 2, []string{"--only"}, false},
		{"migrate-cluster --only zookeeper", []string{"migrate-cluster", "--to", moveTarget, "--only", "zookeeper", "--dry-run"}, 2,
			[]string{`--only "zookeeper": migrate-cluster moves postgres, clickhouse, blobs`}, false},
		{"migrate-cluster to nothing", []string{"migrate-cluster", "--to", moveTarget, "--dry-run"}, 2, []string{"--to names no target"}, false},
		{"empty --root on zk dump", []string{"zk", "dump", "--root", ""}, 2, []string{"--root"}, false},
		{"empty --config", []string{"--config", "", "list"}, 2, []string{"--config"}, false},
		{"empty delete id", []string{"delete", ""}, 2, []string{"empty"}, false},
		{"empty replica", []string{"restore-replica", ""}, 2, []string{"empty"}, false},
		{"--force is gone", []string{"restore", complete, "--only", "clickhouse", "--force"}, 2, []string{"--replace", "--allow-partial"}, false},
		{"bad glob", []string{"restore", complete, "--only", "clickhouse", "--tables", "default.[tr"}, 2, []string{"bad glob"}, false},
		{"--partitions without clickhouse", []string{"restore", complete, "--only", "postgres", "--partitions", "202605"}, 2, []string{"--partitions goes with --only clickhouse"}, false},
		{"no --only", []string{"restore", complete}, 2, []string{"--only is required"}, false},
		{"tables match nothing", []string{"restore", complete, "--only", "clickhouse", "--tables", "default.trace"}, 1,
			[]string{"--tables default.trace matches no table of snapshot " + complete}, false},
		{"one glob of two matches nothing", []string{"restore", complete, "--only", "clickhouse", "--tables", "default.traces,nope.*"}, 1,
			[]string{"--tables nope.* matches no table"}, false},
		{"partition matches nothing", []string{"restore", complete, "--only", "clickhouse", "--partitions", "202606"}, 1,
			[]string{"--partitions 202606", "no such partition"}, false},
		{"partition of other tables", []string{"restore", complete, "--only", "clickhouse", "--tables", "default.traces", "--partitions", "202605,209901"}, 1,
			[]string{"--partitions 209901", "--tables default.traces"}, false},
		{"partial snapshot", []string{"restore", partial, "--only", "zookeeper", "--root", "/clickhouse"}, 1, []string{partial + " is partial", "--allow-partial"}, false},
		{"unknown snapshot", []string{"restore", "19990101", "--only", "clickhouse"}, 1, nil, false},
		{"latest when only a partial one exists", []string{"--config", partialCfg, "restore", "latest", "--only", "zookeeper", "--root", "/clickhouse"}, 1,
			[]string{"no complete snapshot", onlyPartial + ", is partial", "restore " + onlyPartial + " --allow-partial"}, false},
		{"no snapshot and no --to", []string{"restore", "--only", "postgres"}, 2, []string{"name the snapshot", "--to"}, false},
		{"--to with a snapshot id", []string{"restore", complete, "--only", "postgres", "--to", "2026-11-27T10:15:00Z"}, 2, []string{"drop the snapshot ID"}, false},
		{"--to without postgres", []string{"restore", "--only", "clickhouse", "--to", "2026-11-27T10:15:00Z"}, 2, []string{"--only postgres"}, false},
		{"--to not a time", []string{"restore", "--only", "postgres", "--to", "yesterday"}, 2, []string{"RFC 3339"}, true},
		{"--to-lsn not an LSN", []string{"restore", "--only", "postgres", "--to-lsn", "16-B3"}, 2, []string{"16/B374D848"}, true},
		{"--to with no chain", []string{"restore", "--only", "postgres", "--to", "2026-11-27T10:15:00Z"}, 1, []string{"no point-in-time recovery chain", "pitr = true"}, true},
		{"--chain without --to", []string{"restore", complete, "--only", "postgres", "--chain", "20261127T100000Z-1D49000"}, 2, []string{"--chain goes with --to"}, false},
		{"postgres section without pre-data", []string{"restore", complete, "--only", "postgres", "--pg-database", "tv_never_created_x"}, 1,
			[]string{"no pre-data", complete}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.stack && stackErr != nil {
				t.Skipf("no stack: %v", stackErr)
			}
			cmd := exec.Command(bin, append([]string{"--config", cfg}, tt.args...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(stderr.String(), "panic:") || strings.Contains(stderr.String(), "goroutine ") {
				t.Fatalf("panicked:\n%s", stderr.String())
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
		})
	}
}
